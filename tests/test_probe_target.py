"""Targets and the probe: tags, markers, manylinux expansion, the stdlib script."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from packaging import tags as ptags

from offpkg import _probe
from offpkg.errors import InputError, UsageError
from offpkg.target import Target


def test_host_probe_tags_equal_packaging_sys_tags() -> None:
    """The same tags as packaging, in the same order.

    packaging 26.3 moved the bare ``linux_<arch>`` platform from last to first
    (26.2 and pip 23.2's vendored copy have it last, as the probe does), so the
    order is compared with those tags set aside; the sets must be equal.
    """
    ref = [str(t) for t in ptags.sys_tags()]
    mine = list(Target.host().tags)
    assert set(mine) == set(ref) and len(mine) == len(ref)

    def bare_linux(t: str) -> bool:
        return t.split("-")[-1].startswith("linux_")

    assert [t for t in mine if not bare_linux(t)] == [t for t in ref if not bare_linux(t)]


def test_probe_markers_equal_packaging_default_environment() -> None:
    from packaging.markers import default_environment

    assert _probe.markers() == default_environment()


def test_probe_script_gives_same_json_as_offpkg_probe(tmp_path, env, offpkg) -> None:
    script = offpkg(["probe", "--script"], env)
    assert script.returncode == 0
    path = tmp_path / "probe.py"
    path.write_text(script.stdout)
    # The script must need nothing but the stdlib: run it isolated (-I) with no offpkg on the path.
    by_script = subprocess.run([sys.executable, "-I", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    by_offpkg = offpkg(["probe"], env)
    assert by_script.returncode == 0, by_script.stderr
    assert json.loads(by_script.stdout) == json.loads(by_offpkg.stdout)
    assert json.loads(by_script.stdout)["gpu"] is None  # no GPU on this machine


def test_probe_output_file_and_gpu_env_overrides(tmp_path, env, offpkg) -> None:
    env = dict(env, OFFPKG_CUDA_DRIVER_VERSION="535.54.03", OFFPKG_CUDA_COMPUTE_CAP="8.0,8.6")
    proc = offpkg(["probe", "-o", str(tmp_path / "t.json")], env)
    assert proc.returncode == 0, proc.stderr
    gpu = json.loads((tmp_path / "t.json").read_text())["gpu"]
    assert gpu["driver_version"] == "535.54.03"
    assert gpu["cuda_max"] == "12.2"
    assert [d["compute_cap"] for d in gpu["devices"]] == ["8.0", "8.6"]
    assert gpu["source"] == "env"


@pytest.mark.parametrize("driver,os_name,cuda", [
    ("470.57.02", "linux", "11.4"), ("535.54.03", "linux", "12.2"), ("580.65.06", "linux", "13.0"),
    ("560.94", "windows", "12.6"), ("400.0", "linux", None), (None, "linux", None),
])
def test_cuda_for_driver(driver, os_name, cuda) -> None:
    assert _probe.cuda_for_driver(driver, os_name) == cuda


def test_manylinux_expansion_includes_every_accepted_tag() -> None:
    plats = _probe.expand_platform("manylinux_2_28_x86_64")
    assert plats[0] == "manylinux_2_28_x86_64"
    for tag in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
                "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"):
        assert tag in plats
    # The legacy alias follows its PEP 600 name, and order is best-first.
    assert plats.index("manylinux2014_x86_64") == plats.index("manylinux_2_17_x86_64") + 1
    assert plats[-1] == "linux_x86_64"
    # aarch64 starts at manylinux2014 (glibc 2.17).
    arm = _probe.expand_platform("manylinux_2_28_aarch64")
    assert "manylinux_2_16_aarch64" not in arm and "manylinux2014_aarch64" in arm
    assert _probe.expand_platform("manylinux2014_x86_64")[0] == "manylinux_2_17_x86_64"


def test_target_from_options_matches_packaging_tag_order() -> None:
    t = Target.from_options("3.10", ["manylinux_2_28_x86_64"])
    ref = [str(x) for x in ptags.cpython_tags((3, 10), ["cp310"], list(t.platforms))]
    ref += [str(x) for x in ptags.compatible_tags((3, 10), "cp310", list(t.platforms))]
    assert list(t.tags) == ref
    assert t.markers["python_version"] == "3.10" and t.markers["sys_platform"] == "linux"
    assert t.glibc == (2, 28)
    # A tokenizers-style wheel fits; a manylinux_2_34 one does not.
    assert t.accepts_wheel("tokenizers-0.22.1-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert not t.accepts_wheel("x-1-cp310-cp310-manylinux_2_34_x86_64.whl")
    assert not t.accepts_wheel("x-1-cp311-cp311-manylinux_2_17_x86_64.whl")


def test_windows_target() -> None:
    t = Target.from_options("3.12", ["win_amd64"])
    assert t.os == "windows" and t.markers["sys_platform"] == "win32" and t.markers["platform_machine"] == "AMD64"
    assert t.accepts_wheel("x-1-cp312-cp312-win_amd64.whl")


def test_bad_target_inputs(tmp_path) -> None:
    with pytest.raises(UsageError):
        Target.from_options("3", ["manylinux_2_28_x86_64"])
    with pytest.raises(UsageError):
        Target.from_options("3.10", ["many linux"])
    with pytest.raises(InputError, match="does not exist"):
        Target.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Target.from_file(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"python": {}}')
    with pytest.raises(InputError, match="partial.json: python.implementation"):
        Target.from_file(tmp_path / "partial.json")


@pytest.mark.parametrize("key,value,needle", [
    ("tags", [1], "tags"), ("tags", ["nodashes"], "wheel tags"), ("markers", [["a"]], "markers"),
    ("platforms", [], "platforms"), ("libc", {"name": "glibc", "version": "x"}, "libc"), ("gpu", [1], "gpu"),
])
def test_hostile_target_descriptions(tmp_path, key, value, needle) -> None:
    data = Target.from_options("3.10", ["manylinux_2_28_x86_64"]).to_json()
    data[key] = value
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=needle):
        Target.from_file(tmp_path / "t.json")


def test_target_roundtrips_through_json(tmp_path) -> None:
    t = Target.from_options("3.10", ["manylinux_2_28_x86_64"])
    (tmp_path / "t.json").write_text(json.dumps(t.to_json()))
    assert Target.from_file(tmp_path / "t.json").tags == t.tags
