"""Unit tests of the fragile parsers: pins and resolver errors of uv and pip, pip's report,
select_file, the venv's pip.conf, traceback condensing and a child's JSON output.

The tool messages below were captured from real runs (uv 0.13, pip 23-25) against the
test index; test_live_resolver_messages checks the same parsing on messages made now.
"""

from __future__ import annotations

import json

import pytest

from offpkg._subprocess import Completed, condense_tracebacks, parse_json_output
from offpkg.backends import PackageResolutionError, Pin, PipBackend, Sources, UvBackend, parse_pins
from offpkg.backends.base import resolution_error
from offpkg.backends.pip import parse_report
from offpkg.errors import InputError, NoWheelError, ResolutionError, SubprocessError
from offpkg.install import venv_pip_conf
from offpkg.net.index import DistFile
from offpkg.resolve import select_file
from offpkg.target import Target


# ------------------------------------------------------------------ pins

def test_parse_pins_reads_uv_and_pip_compile_output() -> None:
    text = ("alpha==1.0 \\\n    --hash=sha256:aa\n    # via -r r.in\nBeta_Pkg==1.1\n    # via alpha\n"
            "--index-url https://x/simple\n-e ./local\nzeta===2.0rc1\nranged>=1\n"
            "gamma==2.0 ; python_version >= '3.8'\n# comment==1.0\n\n")
    assert parse_pins(text) == [Pin("alpha", "1.0"), Pin("beta-pkg", "1.1"), Pin("zeta", "2.0rc1"),
                                Pin("gamma", "2.0")]


def test_parse_pins_ignores_what_is_not_a_requirement() -> None:
    assert parse_pins("not a requirement at all ==\n===\n@@\n") == []


def test_pip_report() -> None:
    report = {"version": "1", "install": [{"metadata": {"name": "Alpha_X", "version": "1.0"}},
                                          {"metadata": {"name": "beta", "version": "1.1"}}]}
    assert parse_report(json.dumps(report)) == [Pin("alpha-x", "1.0"), Pin("beta", "1.1")]
    for bad in ("", "[]", '{"install": [{}]}', '{"install": [{"metadata": {"name": "a"}}]}'):
        with pytest.raises(ResolutionError, match="report"):
            parse_report(bad)


# ------------------------------------------------------------------ resolver errors

UV_NOT_FOUND = ("error: No solution found when resolving dependencies\n  cause: Because doesnotexist was not found "
                "in the package registry and you require doesnotexist, we can conclude that your requirements are "
                "unsatisfiable.")
UV_NO_VERSION = ("error: No solution found when resolving dependencies\n  cause: Because there is no version of "
                 "alpha==9 and you require alpha==9, we can conclude that your requirements are unsatisfiable.")
UV_NO_VERSIONS = "  x No solution found\n  `-> Because there are no versions of nowheel and you require nowheel, ..."
UV_NO_WHEELS = ("  x No solution found when resolving dependencies:\n  `-> Because nowheel==1.0 has no wheels with a "
                "matching platform tag (e.g., `manylinux_2_28_x86_64`) and you require nowheel==1.0, ...")
UV_CONFLICT = ("  `-> Because needsoldgamma==1.0 depends on gamma<2 and you require gamma>=2, we can conclude that "
               "your requirements and needsoldgamma==1.0 are incompatible.")
PIP_NOT_FOUND = ("ERROR: Could not find a version that satisfies the requirement doesnotexist (from versions: none)\n"
                 "ERROR: No matching distribution found for doesnotexist")


@pytest.mark.parametrize("text, package", [
    (UV_NOT_FOUND, "doesnotexist"), (UV_NO_VERSION, "alpha"), (UV_NO_VERSIONS, "nowheel"),
    (UV_NO_WHEELS, "nowheel"), (PIP_NOT_FOUND, "doesnotexist"),
])
def test_resolver_messages_name_the_package(text, package) -> None:
    err = resolution_error(SubprocessError("resolving failed", details=text), "uv")
    assert isinstance(err, PackageResolutionError) and err.package == package
    assert package in err.message and err.details == text


def test_resolver_message_without_a_package_stays_generic() -> None:
    err = resolution_error(SubprocessError("x", details=UV_CONFLICT + "\nsomething else"), "pip")
    assert type(err) is ResolutionError  # a conflict names no single missing package
    generic = resolution_error(SubprocessError("x", details="error: the index returned garbage"), "pip")
    assert type(generic) is ResolutionError and "(pip)" in generic.message


@pytest.mark.parametrize("backend", [UvBackend, PipBackend])
@pytest.mark.parametrize("req, package", [("doesnotexist", "doesnotexist"), ("alpha==9", "alpha")])
def test_live_resolver_messages(index, tmp_path, backend, req, package) -> None:
    reqs = tmp_path / "r.in"
    reqs.write_text(req + "\n")
    with pytest.raises(ResolutionError) as exc:
        backend().resolve(reqs, [], Target.host(), Sources((index.url,)), tmp_path)
    assert isinstance(exc.value, PackageResolutionError) and exc.value.package == package, exc.value.details


# ------------------------------------------------------------------ select_file

TARGET = Target.from_options("3.11", ["manylinux_2_28_x86_64"])


def _f(name: str, *, yanked: bool = False, rp: str | None = None) -> DistFile:
    return DistFile(name, f"https://x/{name}", "0" * 64, requires_python=rp, yanked=yanked)


def test_select_file_prefers_the_best_tag_then_index_order() -> None:
    files = [_f("pkg-1.0-py3-none-any.whl"), _f("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
             _f("pkg-1.0-cp311-cp311-win_amd64.whl"), _f("pkg-1.0.tar.gz"), _f("pkg-1.1-py3-none-any.whl")]
    sel = select_file(Pin("pkg", "1.0"), files, TARGET)
    assert sel.file.filename == "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl" and not sel.needs_build


def test_select_file_normalises_names_and_versions() -> None:
    sel = select_file(Pin("my-pkg", "1.0"), [_f("My_Pkg-1.0.0-py3-none-any.whl")], TARGET)
    assert sel.file.filename == "My_Pkg-1.0.0-py3-none-any.whl"


def test_select_file_yanked_only_as_a_last_resort() -> None:
    y, ok = _f("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked=True), _f("pkg-1.0-py3-none-any.whl")
    assert select_file(Pin("pkg", "1.0"), [y, ok], TARGET).file is ok
    assert select_file(Pin("pkg", "1.0"), [y], TARGET).file is y


def test_select_file_requires_python_and_sdist_fallback() -> None:
    files = [_f("pkg-1.0-py3-none-any.whl", rp=">=3.12"), _f("pkg-1.0.tar.gz"),
             _f("pkg-1.0-py2-none-any.whl", rp="not a specifier")]
    sel = select_file(Pin("pkg", "1.0"), files, TARGET)
    assert sel.file.filename == "pkg-1.0.tar.gz" and sel.needs_build


def test_select_file_no_fit_names_the_wheels_seen() -> None:
    with pytest.raises(NoWheelError) as exc:
        select_file(Pin("pkg", "1.0"), [_f("pkg-1.0-cp311-cp311-win_amd64.whl"), _f("garbage.whl")], TARGET)
    assert "pkg==1.0" in exc.value.message and "win_amd64" in (exc.value.hint or "")


# ------------------------------------------------------------------ the venv's pip.conf

def test_venv_pip_conf_points_at_a_kept_bundle(tmp_path) -> None:
    conf = venv_pip_conf(tmp_path / "b" / "wheels")
    assert f"find-links = {(tmp_path / 'b' / 'wheels').resolve()}\n" in conf
    assert "no-index = true" in conf and "\n[global]\n" in "\n" + conf


def test_venv_pip_conf_without_wheels_keeps_no_index_only() -> None:
    conf = venv_pip_conf(None)
    assert "find-links" not in conf and "no-index = true" in conf
    assert "index-url" not in conf and "trusted-host" not in conf


def test_venv_pip_conf_never_takes_a_path_that_adds_lines(tmp_path) -> None:
    evil = tmp_path / "w\nindex-url = http://127.0.0.1:9/"
    conf = venv_pip_conf(evil)
    assert "index-url" not in conf and "find-links" not in conf


# ------------------------------------------------------------------ tracebacks and child JSON

def test_condense_tracebacks_keeps_the_error_line() -> None:
    text = ("Collecting x\nTraceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    boom()\n"
            "\nDuring handling of the above exception, another exception occurred:\n\n"
            "Traceback (most recent call last):\n  File \"b.py\", line 2\nOSError: [Errno 28] No space left on device\n"
            "done\n")
    assert condense_tracebacks(text) == "Collecting x\nOSError: [Errno 28] No space left on device\ndone"
    assert condense_tracebacks("plain\noutput") == "plain\noutput"


def _done(stdout: str, stderr: str = "") -> Completed:
    return Completed(["py"], 0, stdout, stderr)


def test_parse_json_output() -> None:
    assert parse_json_output(_done('{"a": 1}\n'), "probing", "hint") == {"a": 1}
    # a noisy startup (sitecustomize printing) before the document: the last line is the document
    assert parse_json_output(_done('hello from sitecustomize\n[1, 2]\n'), "x", "h", kind=list) == [1, 2]
    for bad, kind in (("not json", dict), ("[1]", dict), ('{"a": 1}', list), ("", dict)):
        with pytest.raises(InputError, match="not the JSON document expected") as exc:
            parse_json_output(_done(bad, "some warning"), "probing py", "give a working python", kind=kind)
        assert exc.value.hint == "give a working python" and "some warning" in (exc.value.details or "")
