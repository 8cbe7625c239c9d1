"""Direct references into carried wheels: download, hash, build on the build host, record the source.

For every :class:`offpkg.reqfile.DirectRef`:

- a wheel URL (``name @ https://.../x.whl`` or a bare URL line) is downloaded through the
  network layer (hash-checked when the reference names a sha256) and carried as it is;
- an sdist URL is downloaded and built into a wheel here;
- a VCS reference (``git+https://...@REF``, ``git+file://...``) is cloned, checked out at
  REF, and built into a wheel; the commit is recorded;
- a local path (a project folder, a wheel, an sdist) is built (or taken) likewise; a git
  work tree records its commit.

The wheels go into one folder used as find-links, each requirement becomes
``name==version``, and :func:`check_locked` makes sure resolution took exactly these
files (the same dependency-confusion care as a configured mirror: a same-named release
on an index must not replace a direct reference). The manifest records each one under
``extra.built_from``.

This module never prints; it raises offpkg errors.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ._subprocess import isolated_env, run
from .errors import InputError
from .hashing import sha256_file
from .redact import redact_url, secrets_in_url
from .reqfile import DirectRef

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Backend, Sources
    from .net.cache import Cache


@dataclass(frozen=True)
class Prepared:
    requirements: list[str]  # one name[extras]==version (; marker) per reference
    find_links: Path  # the folder holding the wheels
    records: list[dict[str, Any]]  # for the manifest (extra.built_from)
    files: dict[str, str]  # canonical name -> sha256 of the carried wheel


def _wheel_name_version(path: Path) -> tuple[str, str]:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise InputError(f"{path.name} is not a valid wheel file name: {exc}") from None
    return canonicalize_name(name), str(version)


def _download(ref: DirectRef, cache: Cache, timeout: float, dest: Path) -> Path:
    from .net.fetch import Fetcher, FetchPolicy, FetchRequest
    from .net.index import DistFile, register_url_secrets

    register_url_secrets(ref.url)
    clean = ref.url.split("#", 1)[0]
    filename = Path(unquote(urlsplit(clean).path)).name
    got = Fetcher(cache, FetchPolicy(timeout=timeout)).fetch(FetchRequest(DistFile(filename, clean, ref.sha256)))
    if ref.sha256 and got.sha256 != ref.sha256:
        raise InputError(f"{ref.where}: {filename} has sha256 {got.sha256}, not {ref.sha256} as the requirement says",
                         hint="the file changed on the server, or the hash is wrong")
    out = dest / filename
    shutil.copyfile(got.path, out)
    return out


def _git_env(url: str, workdir: Path) -> tuple[str, dict[str, str]]:
    """The URL without its userinfo, and an environment passing it to git as a header (never on argv)."""
    home = workdir / "git-home"
    home.mkdir(exist_ok=True)
    env = isolated_env(home=str(home))
    env["GIT_TERMINAL_PROMPT"] = "0"
    parts = urlsplit(url)
    if parts.username is None:
        return url, env
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    from .redact import register_secret

    register_secret(token)
    env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
               GIT_CONFIG_VALUE_0=f"Authorization: Basic {token}")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""
    return urlunsplit(parts._replace(netloc=netloc)), env


def _split_vcs(url: str) -> tuple[str, str | None]:
    """``git+https://h/r.git@v1.0#egg=x`` -> (``https://h/r.git``, ``v1.0``)."""
    u = url.split("#", 1)[0][len("git+"):]
    parts = urlsplit(u)
    path, ref = parts.path, None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
    return urlunsplit(parts._replace(path=path)), ref or None


def _clone(ref: DirectRef, workdir: Path) -> tuple[Path, str, str | None]:
    repo_url, rev = _split_vcs(ref.url)
    url, env = _git_env(repo_url, workdir)
    dest = Path(tempfile.mkdtemp(prefix="vcs-", dir=workdir))
    shown = redact_url(repo_url)
    run(["git", "clone", "--quiet", "--no-checkout", url, str(dest)], env=env, what=f"cloning {shown}",
        hint="check the repository URL and that git can reach it", timeout=1800)
    run(["git", "-C", str(dest), "checkout", "--quiet", rev or "HEAD"], env=env,
        what=f"checking out {rev or 'HEAD'} of {shown}", hint="check that the branch, tag or commit exists")
    commit = run(["git", "-C", str(dest), "rev-parse", "HEAD"], env=env, what="reading the commit").stdout.strip()
    return dest, commit, rev


def _git_commit(path: Path, workdir: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    home = workdir / "git-home"
    home.mkdir(exist_ok=True)
    got = run(["git", "-C", str(path), "rev-parse", "HEAD"], env=isolated_env(home=str(home)), check=False,
              what="reading the commit")
    return got.stdout.strip() if got.returncode == 0 else None


def prepare(refs: list[DirectRef], backend: Backend, sources: Sources, cache: Cache, workdir: Path, *,
            timeout: float = 30.0) -> Prepared:
    """Turn ``refs`` into wheels in ``workdir/direct`` and pinned requirements (see the module doc)."""
    out = workdir / "direct"
    out.mkdir(parents=True, exist_ok=True)
    build = workdir / "direct-build"
    build.mkdir(exist_ok=True)
    reqs: list[str] = []
    records: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    for ref in refs:
        commit = rev = None
        if ref.kind == "wheel":
            wheel = _download(ref, cache, timeout, build) if "://" in ref.url else Path(ref.url)
        elif ref.kind == "sdist":
            sdist = _download(ref, cache, timeout, build) if "://" in ref.url else Path(ref.url)
            wheel = backend.build_wheel(sdist, build, sources, workdir)
        elif ref.kind == "vcs":
            tree, commit, rev = _clone(ref, workdir)
            wheel = backend.build_wheel(tree, build, sources, workdir)
        else:
            commit = _git_commit(Path(ref.url), workdir)
            wheel = backend.build_wheel(Path(ref.url), build, sources, workdir)
        name, version = _wheel_name_version(wheel)
        if ref.name is not None and ref.name != name:
            raise InputError(f"{ref.where}: the requirement names {ref.name}, but {redact_url(ref.url)} is {name}",
                             hint="fix the name before @ (or #egg=)")
        if name in files:
            raise InputError(f"{ref.where}: {name} is given by two direct references")
        dest = out / wheel.name
        if wheel.resolve() != dest.resolve():
            shutil.copyfile(wheel, dest)
        sha = sha256_file(dest)[0]
        if ref.kind == "wheel" and ref.sha256 and sha != ref.sha256:
            raise InputError(f"{ref.where}: {wheel.name} has sha256 {sha}, not {ref.sha256} as the requirement says")
        files[name] = sha
        line = name + (f"[{','.join(ref.extras)}]" if ref.extras else "") + f"=={version}"
        reqs.append(line + (f"; {ref.marker}" if ref.marker else ""))
        records.append({"name": name, "version": version, "filename": dest.name, "sha256": sha, "kind": ref.kind,
                        "source": redact_url(ref.url) if secrets_in_url(ref.url) else ref.url, "ref": rev,
                        "commit": commit, "built": ref.kind != "wheel", "where": ref.where})
    return Prepared(reqs, out, records, files)


def check_locked(files: dict[str, str], locked: list[tuple[str, str, str]]) -> None:
    """Each direct reference resolved to exactly its own wheel: (name, filename, sha256) of the lock."""
    for name, filename, sha in locked:
        want = files.get(canonicalize_name(name))
        if want is not None and sha != want:
            raise InputError(f"{name} was given as a direct reference, but resolution picked {filename} from an "
                             f"index (sha256 {sha[:12]}…), not the referenced file",
                             hint="an index carries a release of the same name and version: remove it from the "
                                  "indexes, or pin the referenced file's hash")
