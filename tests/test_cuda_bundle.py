"""`offpkg bundle --cuda` end to end against a local index laid out like the PyTorch index.

The index (tests/torchindex.py) serves /whl/cpu, /whl/cu126 and /whl/cu130 with tiny
labelled torch wheels whose metadata requires fake NVIDIA runtime wheels, and a
PyPI-like default index with PyPI's unlabelled CUDA 13 build (2.13.0 and a newer
2.13.1). Each test proves that exactly the right files land in the bundle and
nothing from another variant, with the uv and the pip backend.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg
from torchindex import CU126_RUNTIME, build_torch_index, serve_ranges, target_json, wheel_names

from offpkg.gpu.bundle import check_manifest
from offpkg.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["uv", "pip"]

COMMON = ["alpha-1.0-py3-none-any.whl", "beta-1.1-py3-none-any.whl", "filelock-3.20.0-py3-none-any.whl",
          "gamma-2.0-py3-none-any.whl"]
NV = "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
TRITON = "triton-3.7.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
TT = "cp311-cp311-manylinux_2_28_x86_64.whl"
CU126_WHEELS = sorted(COMMON + [f"nvidia_cublas_cu12-12.6.4.1-{NV}", f"nvidia_cuda_runtime_cu12-12.6.77-{NV}",
                                f"torch-2.13.0+cu126-{TT}", TRITON])
CU130_PYPI_WHEELS = sorted(COMMON + ["cuda_toolkit-13.0.2-py3-none-any.whl", f"nvidia_cublas-13.1.0.3-{NV}",
                                     f"nvidia_cuda_runtime-13.0.96-{NV}", f"torch-2.13.1-{TT}", TRITON])


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def tindex(tmp_path_factory):
    ti = build_torch_index(tmp_path_factory.mktemp("torchindex"))
    server, base = serve_ranges(ti.root)
    ti.base, ti.log = base, server.log
    yield ti
    server.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory, session_uv_cache):
    """Module-wide environment, target files and a memo of the bundles built."""
    base = tmp_path_factory.mktemp("cudabundle")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = base / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"), UV_CACHE_DIR=str(session_uv_cache),
               PYTHONUTF8="1", NO_COLOR="1", CI="1")
    targets = {}
    for name, driver, caps in [("a100-535", "535.54.03", ["8.0"]), ("h100-580", "580.65.06", ["9.0"]),
                               ("pascal-580", "580.65.06", ["6.1"]), ("old-470", "470.57.02", ["8.0"]),
                               ("nogpu", None, None)]:
        p = base / f"{name}.json"
        p.write_text(json.dumps(target_json(driver, caps)))
        targets[name] = p
    return {"base": base, "env": env, "targets": targets, "bundles": {}}


def _run(work, tindex, args: list[str], *, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return run_offpkg(["bundle", *args, "-i", tindex.pypi, "--no-tools", "--json"], env or work["env"])


@pytest.fixture(scope="module")
def make(work, tindex):
    """make(key, backend, *args) -> (bundle dir, JSON result); each bundle is built once per module."""

    def build(key: str, backend: str, *args: str, torch_index: bool = True) -> tuple[Path, dict]:
        memo = work["bundles"]
        if (key, backend) not in memo:
            out = work["base"] / f"{key}-{backend}"
            extra = ["--torch-index", tindex.whl] if torch_index else []
            env = dict(work["env"])
            if not torch_index:
                env["OFFPKG_TORCH_INDEX"] = tindex.whl
            proc = _run(work, tindex, [*args, *extra, "-o", str(out), "--backend", backend], env=env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            memo[(key, backend)] = (out, json.loads(proc.stdout))
        return memo[(key, backend)]

    return build


def _manifest(path: Path) -> Manifest:
    return Manifest.read(path)


def _labels(path: Path) -> set[str]:
    return {m.group(1) for w in wheel_names(path) if (m := re.match(r"torch(?:vision)?-[\d.]+\+(\w+)-", w))}


# ------------------------------------------------------------------ which files land in the bundle

def test_cpu_build_takes_only_the_cpu_index(make, work, tindex) -> None:
    # OFFPKG_TORCH_INDEX instead of --torch-index; a target with a GPU still gets cpu when asked.
    path, res = make("cpu", "uv", "torch", "torchvision", "alpha", "--cuda", "cpu",
                     "--target", str(work["targets"]["a100-535"]), torch_index=False)
    assert wheel_names(path) == sorted(COMMON + [f"torch-2.13.0+cpu-{TT}", f"torchvision-0.28.0+cpu-{TT}"])
    rec = res["cuda"]
    assert rec["variant"] == "cpu" and rec["label"] == "+cpu" and rec["from_pypi"] is False
    assert rec["torch_version"] == "2.13.0" and rec["pins"] == {"torch": "2.13.0+cpu", "torchvision": "0.28.0+cpu"}
    assert rec["min_driver"] is None and rec["index_url"] == f"{tindex.whl}/cpu"
    m = _manifest(path)
    assert list(m.indexes) == [tindex.pypi, f"{tindex.whl}/cpu"]
    assert "torch==2.13.0+cpu" in m.requirements and "torchvision==0.28.0+cpu" in m.requirements
    assert "torch==2.13.0+cpu \\" in (path / "requirements.txt").read_text()
    assert check_manifest(m, path) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_cu126_pinned_with_its_label_and_its_runtime(make, work, tindex, backend) -> None:
    """Driver 535 + A100 with --cuda cu126: the +cu126 torch and torchvision, the cu12 runtime wheels,
    and nothing of PyPI's newer plain torch 2.13.1 / torchvision 0.28.1 (the label pin wins)."""
    path, res = make("cu126", backend, "torch", "torchvision", "alpha", "--cuda", "cu126",
                     "--target", str(work["targets"]["a100-535"]))
    assert wheel_names(path) == sorted(CU126_WHEELS + [f"torchvision-0.28.0+cu126-{TT}"])
    assert _labels(path) == {"cu126"}
    rec = res["cuda"]
    assert rec["variant"] == "cu126" and rec["cuda"] == "12.6" and rec["label"] == "+cu126"
    # Driver 535 runs CUDA 12.6 only through minor-version compatibility: recorded as such.
    assert rec["min_driver"] == "525.60.13" and rec["own_min_driver"] == "560.28.03"
    assert rec["uses_minor_version_compat"] is True and "8.0" in rec["archs"]
    assert rec["pins"] == {"torch": "2.13.0+cu126", "torchvision": "0.28.0+cu126"}
    assert rec["index_url"] == f"{tindex.whl}/cu126"
    m = _manifest(path)
    assert m.cuda == rec
    assert check_manifest(m, path) == []
    req = (path / "requirements.txt").read_text()
    for name, version in CU126_RUNTIME:
        assert f"{name}=={version} \\" in req
    assert "2.13.1" not in req and "0.28.1" not in req


def test_uv_and_pip_agree(make, work) -> None:
    for key, args in [("cu126", ("torch", "torchvision", "alpha", "--cuda", "cu126", "--target",
                                 str(work["targets"]["a100-535"]))),
                      ("auto-h100", ("torch", "alpha", "--target", str(work["targets"]["h100-580"])))]:
        uv_path, _ = make(key, "uv", *args)
        pip_path, _ = make(key, "pip", *args)
        assert wheel_names(uv_path) == wheel_names(pip_path), key
        assert (uv_path / "requirements.txt").read_text().split("\n", 3)[-1] == \
            (pip_path / "requirements.txt").read_text().split("\n", 3)[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_h100_580_takes_pypis_cu130_build(make, work, tindex, backend) -> None:
    """Driver 580 + compute 9.0: cu130, which is PyPI's default build: the plain (newest) torch from the
    default index, the cuda-toolkit metapackage and exactly the components its requested extras pull."""
    path, res = make("auto-h100", backend, "torch", "alpha", "--target", str(work["targets"]["h100-580"]))
    names = wheel_names(path)
    assert names == CU130_PYPI_WHEELS
    assert not any("+" in n for n in names) and not any("cufft" in n for n in names)
    rec = res["cuda"]
    assert rec["variant"] == "cu130" and rec["from_pypi"] is True and rec["label"] is None
    assert rec["min_driver"] == "580.65.06" and rec["uses_minor_version_compat"] is False
    assert rec["pins"] == {"torch": "2.13.1"}
    m = _manifest(path)
    assert list(m.indexes) == [tindex.pypi]  # the PyTorch index is not added for PyPI's build
    assert "torch==2.13.1" in m.requirements
    assert check_manifest(m, path) == []


def test_auto_pascal_gets_cu126_even_with_a_new_driver(make, work) -> None:
    path, res = make("auto-pascal", "uv", "torch", "alpha", "--cuda", "auto",
                     "--target", str(work["targets"]["pascal-580"]))
    assert wheel_names(path) == CU126_WHEELS
    rec = res["cuda"]
    assert rec["variant"] == "cu126" and rec["uses_minor_version_compat"] is False
    assert rec["min_driver"] == "560.28.03" and "6.0" in rec["archs"]
    assert "cu130 wheels do not cover compute 6.1" in rec["reason"]


def test_gpu_less_target_gets_cpu(make, work) -> None:
    # torch among the requirements and no --cuda: planned anyway (auto); no GPU -> cpu.
    path, res = make("nogpu", "uv", "torch", "--target", str(work["targets"]["nogpu"]))
    assert wheel_names(path) == sorted(["filelock-3.20.0-py3-none-any.whl", f"torch-2.13.0+cpu-{TT}"])
    assert res["cuda"]["variant"] == "cpu"


def test_an_older_release_pinned_by_the_user(make, work) -> None:
    path, res = make("cu126-212", "uv", "torch==2.12.0", "torchvision", "--cuda", "cu126",
                     "--target", str(work["targets"]["a100-535"]))
    assert f"torch-2.12.0+cu126-{TT}" in wheel_names(path)
    # torchvision follows torch: 0.27.0 is the release whose metadata requires torch 2.12.0.
    assert f"torchvision-0.27.0+cu126-{TT}" in wheel_names(path)
    assert res["cuda"]["torch_version"] == "2.12.0"


# ------------------------------------------------------------------ clear errors

def test_driver_470_is_refused_naming_what_would_fit(work, tindex) -> None:
    out = work["base"] / "never-470"
    proc = _run(work, tindex, ["torch", "--torch", "2.13", "--target", str(work["targets"]["old-470"]),
                               "--torch-index", tindex.whl, "-o", str(out)])
    assert_clean_error(proc, 6, "no CUDA build of torch 2.13 runs on driver 470.57.02",
                       "torch 2.7", "525.60.13", "--cuda cpu")
    assert not out.exists()


def test_targets_that_need_different_builds(work, tindex) -> None:
    out = work["base"] / "never-two"
    proc = _run(work, tindex, ["torch", "--target", str(work["targets"]["a100-535"]),
                               "--target", str(work["targets"]["h100-580"]), "--torch-index", tindex.whl,
                               "-o", str(out)])
    assert_clean_error(proc, 6, "need different torch builds", "cu126", "cu130", "bundle each target separately")
    assert not out.exists()


def test_labelled_requirement_that_conflicts_with_the_build(work, tindex) -> None:
    proc = _run(work, tindex, ["torch==2.13.0+cpu", "--cuda", "cu126", "--target", str(work["targets"]["a100-535"]),
                               "--torch-index", tindex.whl, "-o", str(work["base"] / "never-label")])
    assert_clean_error(proc, 2, "torch==2.13.0+cpu", "conflicts", "2.13.0+cu126")


def test_variant_missing_from_the_index(work, tindex) -> None:
    # The local cu126 index has torch 2.12 and 2.13 only: --torch 2.11 is a clear error, no silent fallback.
    proc = _run(work, tindex, ["torch", "--cuda", "cu126", "--torch", "2.11", "--target",
                               str(work["targets"]["a100-535"]), "--torch-index", tindex.whl,
                               "-o", str(work["base"] / "never-211")])
    assert_clean_error(proc, 6, "torch 2.11 cu126 (+cu126)", "no wheel", f"{tindex.whl}/cu126")


def test_pytorch_index_given_as_extra_index_with_pypis_build(work, tindex) -> None:
    # A plain torch==2.13.0 pin would also match 2.13.0+cu130 from the extra index: refused.
    proc = _run(work, tindex, ["torch", "--target", str(work["targets"]["h100-580"]), "--extra-index-url",
                               f"{tindex.whl}/cu130", "--torch-index", tindex.whl,
                               "-o", str(work["base"] / "never-twin")])
    assert_clean_error(proc, 6, "labelled torch builds", "drop the PyTorch index")


# ------------------------------------------------------------------ check_manifest

def _swap_torch_wheel(bundle: Path, new_wheel: Path) -> None:
    """Put ``new_wheel`` in place of the bundle's torch wheel and rebuild every hash, lock and sum."""
    from offpkg.bundle import write_manifest
    from offpkg.hashing import sha256_file

    m = Manifest.read(bundle)
    old = next(p for p in m.packages if p.name == "torch")
    digest, size = sha256_file(new_wheel)
    (bundle / old.path).unlink()
    shutil.copyfile(new_wheel, bundle / "wheels" / new_wheel.name)
    new_version = new_wheel.name.split("-")[1]
    d = m.to_json()
    for p in d["packages"]:
        if p["name"] == "torch":
            p.update(filename=new_wheel.name, path=f"wheels/{new_wheel.name}", sha256=digest, size=size,
                     version=new_version)
    for rel in ("requirements.txt", "pylock.toml"):
        text = (bundle / rel).read_text()
        text = text.replace(old.sha256, digest).replace(old.filename, new_wheel.name)
        text = text.replace(f"torch=={old.version}", f"torch=={new_version}")
        text = text.replace(f'version = "{old.version}"', f'version = "{new_version}"')
        text = text.replace(f"size = {old.size}\n", f"size = {size}\n")
        (bundle / rel).write_text(text)
    for f in d["files"]:
        if f["path"] in ("requirements.txt", "pylock.toml"):
            f["sha256"], f["size"] = sha256_file(bundle / f["path"])
    write_manifest(bundle, Manifest.from_json(d))


def test_check_manifest_catches_a_swapped_wheel(make, work, tindex, tmp_path) -> None:
    from offpkg.verify import verify_bundle

    src, _ = make("cu126", "uv", "torch", "torchvision", "alpha", "--cuda", "cu126",
                  "--target", str(work["targets"]["a100-535"]))
    bundle = tmp_path / "swapped"
    shutil.copytree(src, bundle)
    _swap_torch_wheel(bundle, tindex.root / "store" / f"torch-2.13.0+cpu-{TT}")
    problems = check_manifest(Manifest.read(bundle), bundle)
    assert problems == ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl: is a +cpu build, but the bundle "
                        "records the +cu126 build"]
    # Every hash and lock agrees: verify's only findings are the CUDA check's.
    assert verify_bundle(bundle).problems == problems
    proc = run_offpkg(["verify", str(bundle), "--json"], work["env"])
    assert proc.returncode == 1 and "+cpu build" in proc.stdout, proc.stdout + proc.stderr


def test_check_manifest_catches_an_unlabelled_wheel_and_pypi_mixups(make, work, tindex, tmp_path) -> None:
    src, _ = make("cu126", "uv", "torch", "torchvision", "alpha", "--cuda", "cu126",
                  "--target", str(work["targets"]["a100-535"]))
    bundle = tmp_path / "plain"
    shutil.copytree(src, bundle)
    _swap_torch_wheel(bundle, tindex.root / "store" / f"torch-2.13.0-{TT}")
    problems = check_manifest(Manifest.read(bundle), bundle)
    assert any("no local label" in p for p in problems), problems
    # ... and the plain wheel's own CUDA 13 runtime (cuda-toolkit) is missing from this cu126 bundle.
    assert any("cuda-toolkit" in p and "not in the bundle" in p for p in problems), problems
    # A bundle of PyPI's build holding a labelled wheel.
    src130, _ = make("auto-h100", "uv", "torch", "alpha", "--target", str(work["targets"]["h100-580"]))
    b130 = tmp_path / "labelled"
    shutil.copytree(src130, b130)
    _swap_torch_wheel(b130, tindex.root / "store" / f"torch-2.13.0+cu130-{TT}")
    problems = check_manifest(Manifest.read(b130), b130)
    assert any("+cu130" in p and "PyPI's default" in p for p in problems), problems


def test_check_manifest_finds_missing_runtime_wheels_in_dirs_and_archives(make, work, tmp_path) -> None:
    from offpkg.archive import write_tar

    src, _ = make("auto-h100", "uv", "torch", "alpha", "--target", str(work["targets"]["h100-580"]))
    m = Manifest.read(src)
    d = m.to_json()
    d["packages"] = [p for p in d["packages"] if p["name"] != "nvidia-cublas"]
    broken = Manifest.from_json(d)
    problems = check_manifest(broken, src)
    assert problems == ["cuda-toolkit 13.0.2 (with its extras cublas, cudart) requires nvidia-cublas==13.*, which "
                        "is not in the bundle: the NVIDIA runtime is incomplete"]
    # The same check reads the wheels' METADATA from a .tar.zst (streamed) and a .tar (in place) bundle.
    for name, compression in (("b.tar.zst", "zst"), ("b.tar", None)):
        archive = tmp_path / name
        write_tar(src, archive, compression=compression)
        assert check_manifest(m, archive) == [], name
        assert check_manifest(broken, archive) == problems, name
    # Without the bundle only the label checks run.
    assert check_manifest(broken) == []


# ------------------------------------------------------------------ install-time check

def test_install_refuses_a_too_old_driver_and_force_overrides(make, work, tmp_path) -> None:
    path, _ = make("cu126", "uv", "torch", "torchvision", "alpha", "--cuda", "cu126",
                   "--target", str(work["targets"]["a100-535"]))
    env = dict(work["env"], OFFPKG_CUDA_DRIVER_VERSION="470.57.02", OFFPKG_CUDA_COMPUTE_CAP="8.0")
    venv = tmp_path / "v"
    proc = run_offpkg(["install", str(path), "--venv", str(venv)], env)
    assert_clean_error(proc, 6, "NVIDIA driver 470.57.02 is too old", "cu126", "525.60.13", "--force")
    assert not venv.exists()
    proc = run_offpkg(["install", str(path), "--venv", str(venv), "--force", "--json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)
    assert any("470.57.02" in w and "--force" in w for w in res["warnings"]), res
    assert "470.57.02" in proc.stderr  # and shown as a warning
    receipt = json.loads((venv / "offpkg-receipt.json").read_text())
    assert receipt["cuda"]["variant"] == "cu126"
    out = subprocess.run([str(venv / "bin/python"), "-c", "import torch, torchvision; print(torch.__version__)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "2.13.0+cu126", out.stderr


def test_install_on_a_fitting_driver_needs_no_force(make, work, tmp_path) -> None:
    path, _ = make("cu126", "uv", "torch", "torchvision", "alpha", "--cuda", "cu126",
                   "--target", str(work["targets"]["a100-535"]))
    env = dict(work["env"], OFFPKG_CUDA_DRIVER_VERSION="550.54.15", OFFPKG_CUDA_COMPUTE_CAP="8.6")
    proc = run_offpkg(["install", str(path), "--venv", str(tmp_path / "v"), "--json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["warnings"] == []


# ------------------------------------------------------------------ examples/ci

CI_FILES = [REPO / "examples/ci/github-actions.yml", REPO / "examples/ci/gitlab-ci.yml"]


def _offpkg_commands(text: str) -> list[list[str]]:
    """Every `offpkg ...` command line of a workflow file (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    cmds = []
    for line in joined.splitlines():
        s = line.strip().lstrip("-").strip()
        if s.startswith("run:"):
            s = s[4:].strip()
        if re.match(r"offpkg\s", s):
            argv = shlex.split(s.split(" #", 1)[0].replace("|| exit 1", "").strip())
            cmds.append(argv)
    return cmds


def _help(path: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "offpkg", *path, "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, (path, proc.stdout + proc.stderr)
    return proc.stdout


def test_ci_examples_use_real_offpkg_commands_with_json() -> None:
    target = json.loads((REPO / "examples/ci/target.json").read_text())
    assert target["gpu"]["driver_version"] == "580.65.06" and target["gpu"]["devices"][0]["compute_cap"] == "9.0"
    assert target["python"]["version"] == "3.11"
    helps: dict[str, str] = {}
    for f in CI_FILES:
        text = f.read_text()
        assert "set -euo pipefail" in text, f
        paths = []
        for argv in _offpkg_commands(text):
            assert "--json" in argv, (f.name, argv)  # machine-readable output; non-zero exit on failure
            path = argv[1:2]
            if "Commands:" in helps.setdefault(path[0], _help(path)):
                path = argv[1:3]  # a command group: `offpkg cuda plan`
            key = " ".join(path)
            paths.append(key)
            out = helps.setdefault(key, _help(path))
            for opt in (a.split("=", 1)[0] for a in argv[1 + len(path):] if a.startswith("-")):
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,=/]|$)", out, re.M), (f.name, key, opt)
            if key == "bundle":
                assert {"--stack", "gpu-ml", "--verify", "--cuda", "auto", "examples/ci/target.json"} <= set(argv)
        assert {"cuda plan", "bundle", "verify", "inspect"} <= set(paths), (f.name, paths)
    gh = CI_FILES[0].read_text()
    assert "actions/upload-artifact" in gh and "if-no-files-found: error" in gh
    assert "artifacts:" in CI_FILES[1].read_text()


# ------------------------------------------------------------------ a real stack from PyPI (network)

@pytest.mark.network
def test_cpu_small_stack_from_pypi_verified(env, tmp_path) -> None:
    out = tmp_path / "cpu-small"
    proc = run_offpkg(["bundle", "--stack", "cpu-small", "-o", str(out), "--verify", "--json", "--no-tools"], env,
                      timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)
    assert res["ok"] and res["verification"]["verified"] and res["cuda"] is None
    assert {"requests", "numpy", "tqdm", "packaging"} <= {p.name for p in Manifest.read(out).packages}
