"""Requirement files as pip reads them: index options, direct references (URLs, VCS, paths), editables.

Real parts: wheels and sdists from tests/pkgfactory.py served on 127.0.0.1, a real local git
repository with a tag, a real project folder, uv building them, and the offline install under
``unshare -n``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg, serve
from pkgfactory import Dist, build_sdist, build_wheel, write_simple_index

from offpkg.directref import check_locked
from offpkg.errors import InputError
from offpkg.reqfile import parse_line, read_file

GIT = shutil.which("git")


def _project(dist: Dist, parent: Path) -> Path:
    """A project folder (pyproject.toml with an in-tree backend) made from pkgfactory's sdist."""
    sdist = build_sdist(dist, parent / "sdists")
    with tarfile.open(sdist) as tf:
        tf.extractall(parent, filter="data")
    src = parent / f"{dist.snake}-{dist.version}"
    dest = parent / dist.name
    src.rename(dest)
    (dest / "PKG-INFO").unlink()
    return dest


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


# ------------------------------------------------------------------ parsing

def test_parse_lines(tmp_path: Path) -> None:
    proj = _project(Dist("localproj", "0.3"), tmp_path)
    _, ref = parse_line("https://h.example/dl/foo_bar-1.0-py3-none-any.whl#sha256=" + "a" * 64, "f:1", tmp_path)
    assert ref is not None and (ref.name, ref.kind, ref.sha256) == ("foo-bar", "wheel", "a" * 64)
    _, ref = parse_line("pkg[x] @ https://h.example/pkg-2.0.tar.gz ; python_version >= '3.8'", "f:2", tmp_path)
    assert ref is not None and (ref.name, ref.kind, ref.extras) == ("pkg", "sdist", ("x",))
    assert ref.marker == 'python_version >= "3.8"'
    _, ref = parse_line("git+https://h.example/r.git@v1.0#egg=thing", "f:3", tmp_path)
    assert ref is not None and (ref.name, ref.kind) == ("thing", "vcs")
    _, ref = parse_line("./localproj", "f:4", tmp_path)
    assert ref is not None and (ref.kind, ref.url) == ("path", str(proj))
    req, ref = parse_line("requests>=2 --hash=sha256:" + "b" * 64, "f:5", tmp_path)
    assert (req, ref) == ("requests>=2", None)
    with pytest.raises(InputError, match="neither a wheel nor an sdist"):
        parse_line("https://h.example/page.html", "f:6", tmp_path)
    with pytest.raises(InputError, match="only git"):
        parse_line("hg+https://h.example/r", "f:7", tmp_path)
    with pytest.raises(InputError, match="not a Python project"):
        (tmp_path / "empty").mkdir()
        parse_line("./empty", "f:8", tmp_path)


def test_read_file_options_and_editables(tmp_path: Path) -> None:
    (tmp_path / "links").mkdir()
    (tmp_path / "inc.txt").write_text("--extra-index-url https://extra.example/simple\nbeta\n")
    f = tmp_path / "r.txt"
    f.write_text("--index-url https://idx.example/simple\n-r inc.txt\n-f links\n--trusted-host idx.example\n"
                 "alpha  # comment\n")
    rf = read_file(f)
    assert rf.requirements == ["beta", "alpha"] and rf.index_url == "https://idx.example/simple"
    assert rf.extra_index_urls == ["https://extra.example/simple"]
    assert rf.find_links == [str((tmp_path / "links").resolve())]
    e = tmp_path / "e.txt"
    e.write_text("alpha\n--editable ./src\n")
    with pytest.raises(InputError) as ei:
        read_file(e)
    assert "e.txt:2" in ei.value.message and "editable" in ei.value.message and "drop -e" in ei.value.hint


def test_check_locked_refuses_another_file_of_the_same_name() -> None:
    check_locked({"gamma": "1" * 64}, [("gamma", "gamma-2.0-py3-none-any.whl", "1" * 64), ("alpha", "a.whl", "x")])
    with pytest.raises(InputError, match="direct reference"):
        check_locked({"gamma": "1" * 64}, [("Gamma", "gamma-2.0-py3-none-any.whl", "2" * 64)])


# ------------------------------------------------------------------ bundled and installed offline

@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Files served for direct references (dl/), and an extra index named only inside the requirement file."""
    root = tmp_path_factory.mktemp("direct")
    dl = root / "dl"
    build_wheel(Dist("directwheel", "0.1", ["gamma"]), dl)
    build_sdist(Dist("directsdist", "0.2"), dl)
    build_wheel(Dist("fromextra", "1.0"), root / "extra-files")
    write_simple_index(root / "extra-files", root / "extra")
    server, base = serve(root)
    yield {"base": base, "root": root}
    server.shutdown()


@pytest.mark.skipif(GIT is None, reason="git is not installed (CI installs it: .ci/setup-system.sh)")
def test_requirement_file_with_urls_git_paths_and_index_options(index, sources, tmp_path, env, offline) -> None:
    base = sources["base"]
    repo = _project(Dist("gitpkg", "1.0"), tmp_path)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1.0")
    tagged = _git(repo, "rev-parse", "HEAD")
    # a later commit with another version: @v1.0 must build the tagged one
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0"', 'version = "2.0"'))
    _git(repo, "commit", "-qam", "v2")
    _project(Dist("localproj", "0.3"), tmp_path)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(
        f"--extra-index-url {base}/extra/simple\n"
        f"{base}/dl/directwheel-0.1-py3-none-any.whl\n"
        f"directsdist @ {base}/dl/directsdist-0.2.tar.gz\n"
        f"gitpkg @ git+file://{repo}@v1.0\n"
        "./localproj\n"
        "alpha\n"
        "fromextra\n")
    out = tmp_path / "bundle"
    proc = run_offpkg(["bundle", "-r", str(reqs), "-i", index.url, "-o", str(out), "--no-tools", "--json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = {r["name"]: r for r in json.loads(proc.stdout)["built_from"]}
    assert set(built) == {"directwheel", "directsdist", "gitpkg", "localproj"}
    assert (built["directwheel"]["kind"], built["directwheel"]["built"]) == ("wheel", False)
    assert (built["directsdist"]["kind"], built["directsdist"]["built"]) == ("sdist", True)
    assert (built["gitpkg"]["version"], built["gitpkg"]["ref"], built["gitpkg"]["commit"]) == ("1.0", "v1.0", tagged)
    assert built["gitpkg"]["source"].startswith("git+file:") and str(repo) in built["gitpkg"]["source"]
    assert built["localproj"]["kind"] == "path" and built["localproj"]["commit"] is None
    manifest = json.loads((out / "offpkg.json").read_text())
    recorded = {r["name"]: r for r in manifest["extra"]["built_from"]}
    assert recorded["gitpkg"]["source"] == f"git+file://{repo}@v1.0"  # as written
    assert {n: (r["sha256"], r["commit"]) for n, r in recorded.items()} == \
        {n: (r["sha256"], r["commit"]) for n, r in built.items()}
    wheels = sorted(p.name for p in (out / "wheels").iterdir())
    for name in ("directwheel-0.1", "directsdist-0.2", "gitpkg-1.0", "localproj-0.3", "fromextra-1.0", "gamma-2.0"):
        assert any(w.startswith(name + "-") for w in wheels), (name, wheels)
    by_name = {p["name"]: p for p in manifest["packages"]} if isinstance(manifest.get("packages"), list) else None
    if by_name:
        assert by_name["gitpkg"]["sha256"] == built["gitpkg"]["sha256"]
    venv = tmp_path / "venv"
    proc = run_offpkg(["install", str(out), "--venv", str(venv), "--json"], env, offline=offline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = subprocess.run([*offline, str(venv / "bin" / "python"), "-c",
                          "import directwheel, directsdist, gitpkg, localproj, alpha, fromextra; "
                          "print(gitpkg.__version__, directsdist.FROM_SDIST)"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["1.0", "True"]


def test_bad_direct_references_are_clear_errors(index, sources, tmp_path, env) -> None:
    base = sources["base"]
    for line, words in [
        (f"other @ {base}/dl/directwheel-0.1-py3-none-any.whl", "is directwheel"),
        (f"{base}/dl/directwheel-0.1-py3-none-any.whl#sha256={'0' * 64}", "sha256"),
        (f"{base}/dl/missing-1.0-py3-none-any.whl", "missing-1.0"),
        ("-e ./src", "editable"),
    ]:
        f = tmp_path / "r.txt"
        f.write_text(line + "\n")
        proc = run_offpkg(["bundle", "-r", str(f), "-i", index.url, "-o", str(tmp_path / "b"), "--no-tools"], env)
        assert_clean_error(proc, proc.returncode, words)
        assert proc.returncode != 0 and not (tmp_path / "b").exists()
