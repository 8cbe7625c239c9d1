"""Requirement files as pip reads them: requirements, index options, direct references.

:func:`read_file` parses one file (following ``-r``) into a :class:`ReqFile`:

- plain PEP 508 requirements (``--hash`` options dropped: offpkg re-pins);
- ``-c`` constraint files;
- ``--index-url`` / ``--extra-index-url`` / ``--find-links`` / ``--no-index`` lines,
  which the command layer honours like its own options (the same dependency-confusion
  care: a direct reference's file is checked by hash after resolution);
- direct references: ``name @ URL``, bare URL lines to wheels and sdists, VCS
  (``git+https://...@REF``, ``git+file://...``) and local paths (a project folder, a
  wheel, an sdist), as :class:`DirectRef`; :mod:`offpkg.directref` turns them into
  wheels on the build host;
- ``-e`` / ``--editable``: refused with a clear message (an editable install links to a
  source tree on this machine).

This module never prints and touches no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import InputError

VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
WHEEL = ".whl"
SDIST = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
_IGNORED = ("--trusted-host", "--prefer-binary", "--only-binary", "--no-binary", "--pre", "--use-feature",
            "--require-hashes", "--progress-bar")


@dataclass(frozen=True)
class DirectRef:
    """A requirement that names its own source instead of a version on an index."""

    name: str | None  # from ``name @``, ``#egg=`` or the file name; None until built (a bare VCS URL)
    url: str  # as written (``file://``, ``https://``, ``git+...``) or an absolute local path
    kind: str  # "wheel" | "sdist" | "vcs" | "path"
    where: str  # "requirements.txt:3" or "command line"
    sha256: str | None = None  # from ``#sha256=`` or ``--hash=sha256:``
    extras: tuple[str, ...] = ()
    marker: str | None = None


@dataclass
class ReqFile:
    requirements: list[str] = field(default_factory=list)
    constraints: list[Path] = field(default_factory=list)
    direct: list[DirectRef] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False

    def merge(self, other: ReqFile) -> None:
        self.requirements += other.requirements
        self.constraints += other.constraints
        self.direct += other.direct
        self.index_url = other.index_url or self.index_url
        self.extra_index_urls += [u for u in other.extra_index_urls if u not in self.extra_index_urls]
        self.find_links += [u for u in other.find_links if u not in self.find_links]
        self.no_index = self.no_index or other.no_index


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with continuations joined, comments dropped, keeping the first line's number."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    # "#" starts a comment at the line start or after whitespace (a URL's #fragment stays).
    return [(no, s) for no, line in out if (s := re.sub(r"(^|\s)#.*$", "", line).strip())]


def _option(line: str, *names: str) -> str | None:
    """The value of ``--opt VALUE`` / ``--opt=VALUE`` / ``-o VALUE`` / ``-oVALUE`` when ``line`` is that option."""
    for n in names:
        if line == n:
            return ""
        if n.startswith("--") and line.startswith(n + "="):
            return line[len(n) + 1:].strip()
        if line.startswith(n + " "):
            return line[len(n) + 1:].strip()
        if not n.startswith("--") and line.startswith(n) and len(line) > len(n):
            return line[len(n):].strip()
    return None


def read_file(path: Path, _seen: frozenset[Path] = frozenset()) -> ReqFile:
    """Parse a requirements file (and the files it includes with ``-r``); InputError naming file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"requirements file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read requirements file {path}: {exc}",
                         hint="it must be a UTF-8 text file in pip's requirements format") from None
    if path.resolve() in _seen:
        raise InputError(f"requirements file {path} includes itself (-r loop)")
    seen = _seen | {path.resolve()}
    out = ReqFile()
    base = path.parent
    for no, line in _logical_lines(text):
        where = f"{path}:{no}"
        if (v := _option(line, "--requirement", "-r")) is not None:
            out.merge(read_file(base / v, seen))
        elif (v := _option(line, "--constraint", "-c")) is not None:
            out.constraints.append(base / v)
        elif _option(line, "--editable", "-e") is not None:
            raise InputError(f"{where}: editable requirement {line!r} cannot be carried offline: an editable install "
                             "links to a source tree on this machine",
                             hint="drop -e: offpkg then builds a wheel of the project and carries it")
        elif (v := _option(line, "--index-url", "-i")) is not None:
            out.index_url = _need(v, where, "--index-url")
        elif (v := _option(line, "--extra-index-url")) is not None:
            out.extra_index_urls.append(_need(v, where, "--extra-index-url"))
        elif (v := _option(line, "--find-links", "-f")) is not None:
            v = _need(v, where, "--find-links")
            out.find_links.append(v if "://" in v else str((base / v).resolve()))
        elif line == "--no-index":
            out.no_index = True
        elif line.startswith("-"):
            if line.startswith(_IGNORED):
                continue
            raise InputError(f"{where}: unsupported option {line.split()[0]!r} in a requirements file")
        else:
            req, ref = parse_line(line, where, base)
            if ref is not None:
                out.direct.append(ref)
            else:
                out.requirements.append(req)  # type: ignore[arg-type]
    return out


def _need(value: str, where: str, opt: str) -> str:
    if not value:
        raise InputError(f"{where}: {opt} needs a value")
    return value


def _hash_option(line: str) -> tuple[str, str | None]:
    """The line without ``--hash`` options, and the first sha256 they named."""
    sha = None
    for m in re.finditer(r"\s--hash[= ](\S+)", line):
        algo, _, digest = m.group(1).partition(":")
        if algo == "sha256" and sha is None:
            sha = digest.lower()
    return re.sub(r"\s--hash[= ]\S+", "", line).strip(), sha


def _fragment(url: str) -> dict[str, str]:
    frag = urlsplit(url).fragment
    return dict(p.split("=", 1) for p in frag.split("&") if "=" in p)


def _kind_of(target: str) -> str | None:
    """wheel / sdist / vcs / path for a URL or path string; None when it is neither."""
    low = target.lower()
    if low.startswith(VCS_PREFIXES):
        return "vcs"
    if "://" in target and not low.startswith("file://"):
        path = unquote(urlsplit(target).path).lower()
        return "wheel" if path.endswith(WHEEL) else "sdist" if path.endswith(SDIST) else "url"
    return "path"


def _looks_like_path(text: str) -> bool:
    return (text.startswith((".", "/", "~", "file://")) or "/" in text.split(";")[0] or "\\" in text
            or text.lower().endswith((WHEEL, *SDIST)))


def parse_line(line: str, where: str, base: Path) -> tuple[str | None, DirectRef | None]:
    """(a PEP 508 requirement, None) or (None, a direct reference) for one requirement line."""
    text, sha = _hash_option(line)
    low = text.lower()
    name: str | None = None
    extras: tuple[str, ...] = ()
    marker = None
    if low.startswith(VCS_PREFIXES) or re.match(r"^[a-z][a-z0-9+.-]*://", low):
        target = text.split(";", 1)[0].strip()
        marker = text.split(";", 1)[1].strip() if ";" in text else None
    elif _looks_like_path(text) and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*@", text):
        target = text.split(";", 1)[0].strip()
        marker = text.split(";", 1)[1].strip() if ";" in text else None
    else:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise InputError(f"{where}: {text!r} is not a valid requirement: {exc}",
                             hint="use PEP 508 syntax (requests>=2.31), a direct reference (name @ URL), a URL "
                                  "or a path") from None
        if not req.url:
            return str(req), None
        name = req.name
        # the URL as written (packaging normalises file:/// to file:/)
        m = re.match(r"^[^@]+@\s*(\S+)", text)
        target = m.group(1).rstrip(";") if m else req.url
        extras = tuple(sorted(req.extras))
        marker = str(req.marker) if req.marker is not None else None
    kind = _kind_of(target)
    if kind == "url":
        raise InputError(f"{where}: {target!r} is neither a wheel nor an sdist (.whl, .tar.gz, .zip)",
                         hint="point at a wheel or sdist file, or use git+https://...@REF for a repository")
    if kind == "vcs" and not target.lower().startswith("git+"):
        raise InputError(f"{where}: {target.split('+', 1)[0]} repositories are not supported; only git+",
                         hint="build a wheel of it and give its path")
    frag = _fragment(target)
    name = name or frag.get("egg")
    sha = sha or (frag.get("sha256") or "").lower() or None
    if kind == "path":
        raw = unquote(urlsplit(target).path) if target.lower().startswith("file://") else target
        p = (base / Path(raw).expanduser()).resolve() if not Path(raw).expanduser().is_absolute() \
            else Path(raw).expanduser()
        if not p.exists():
            raise InputError(f"{where}: {p} does not exist", hint="give the path of a project folder, wheel or sdist")
        low_p = p.name.lower()
        kind = "wheel" if low_p.endswith(WHEEL) else "sdist" if low_p.endswith(SDIST) else "path"
        if kind == "path" and not ((p / "pyproject.toml").is_file() or (p / "setup.py").is_file()):
            raise InputError(f"{where}: {p} is not a Python project (no pyproject.toml or setup.py)")
        target = str(p)
    if kind == "wheel" and name is None:
        name = Path(unquote(urlsplit(target).path)).name.split("-", 1)[0]
    if name is not None:
        name = canonicalize_name(name)
    return None, DirectRef(name=name, url=target, kind=kind, where=where, sha256=sha, extras=extras, marker=marker)


def parse_args(args: list[str], base: Path | None = None) -> ReqFile:
    """Requirements given on the command line: the same syntax as a file's requirement lines."""
    out = ReqFile()
    for a in args:
        req, ref = parse_line(a, "command line", base or Path.cwd())
        if ref is not None:
            out.direct.append(ref)
        else:
            out.requirements.append(req)  # type: ignore[arg-type]
    return out
