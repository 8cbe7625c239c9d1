"""A bundle's wheels as a simple repository: PEP 503 HTML and PEP 691 JSON (with PEP 700 sizes).

Both ``offpkg serve`` (dynamic, with content negotiation) and ``offpkg index``
(static files under ``simple/`` inside the bundle) use these pages. Links are
relative (``../../wheels/NAME.whl#sha256=...``) so the same pages work served from
the bundle root by offpkg, by nginx, or by ``python -m http.server``.

Every page is generated from the verified manifest only: names, hashes, sizes
and Requires-Python come from ``offpkg.json``, never from the file system.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import InputError, UsageError, VerificationError
from ..manifest import Manifest, Package
from ..redact import redact_url
from .exactfile import changed_since_verified, open_in, open_root, send_exact

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.1"  # PEP 700: "versions" and per-file "size"
INDEX_DIR = "simple"


@dataclass(frozen=True)
class Project:
    name: str  # PEP 503 normalised
    files: tuple[Package, ...]

    @property
    def versions(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.files:
            seen.setdefault(p.version, None)
        return sorted(seen, key=_version_key)


def _version_key(v: str) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(v))
    except InvalidVersion:  # pragma: no cover - the manifest holds wheel versions
        return (1, v)


def projects(manifest: Manifest) -> dict[str, Project]:
    """{normalised name: Project} of every wheel in the bundle (requirements and tools)."""
    groups: dict[str, list[Package]] = {}
    for p in manifest.packages:
        name = canonicalize_name(parse_wheel_filename(p.filename)[0])
        groups.setdefault(name, []).append(p)
    return {n: Project(n, tuple(sorted(files, key=lambda p: p.filename))) for n, files in sorted(groups.items())}


def file_url(pkg: Package, depth: int = 2) -> str:
    """The link from a page ``depth`` levels below the bundle root (simple/<name>/) to the wheel."""
    return "../" * depth + quote(pkg.path) + f"#sha256={pkg.sha256}"


# ------------------------------------------------------------------ HTML (PEP 503)

_HEAD = ('<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="{v}">\n'
         "    <title>{title}</title>\n  </head>\n  <body>\n")
_TAIL = "  </body>\n</html>\n"


def root_html(names: Iterable[str]) -> str:
    rows = [f'    <a href="{quote(n)}/">{html.escape(n)}</a><br>\n' for n in sorted(names)]
    return _HEAD.format(v=API_VERSION, title="Simple index") + "".join(rows) + _TAIL


def project_html(project: Project) -> str:
    rows = []
    for p in project.files:
        attrs = f'href="{html.escape(file_url(p), quote=True)}"'
        if p.requires_python:
            attrs += f' data-requires-python="{html.escape(p.requires_python, quote=True)}"'
        rows.append(f"    <a {attrs}>{html.escape(p.filename)}</a><br>\n")
    return (_HEAD.format(v=API_VERSION, title=f"Links for {html.escape(project.name)}")
            + f"    <h1>Links for {html.escape(project.name)}</h1>\n" + "".join(rows) + _TAIL)


# ------------------------------------------------------------------ JSON (PEP 691 / 700)

def root_json(names: Iterable[str]) -> str:
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in sorted(names)]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def project_json(project: Project) -> str:
    files = []
    for p in project.files:
        entry: dict[str, object] = {"filename": p.filename, "url": file_url(p).split("#", 1)[0],
                                    "hashes": {"sha256": p.sha256}, "size": p.size, "yanked": False}
        if p.requires_python:
            entry["requires-python"] = p.requires_python
        files.append(entry)
    doc = {"meta": {"api-version": API_VERSION}, "name": project.name, "versions": project.versions, "files": files}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------ the static tree

def static_files(manifest: Manifest) -> dict[str, str]:
    """{bundle-relative path: text} of the static index written by ``offpkg index``.

    ``simple/index.html`` and ``simple/<name>/index.html`` for any static web
    server; ``index.json`` beside each for servers configured to answer
    ``Accept: application/vnd.pypi.simple.v1+json`` with it (see docs/fleet.md).
    """
    projs = projects(manifest)
    out = {f"{INDEX_DIR}/index.html": root_html(projs), f"{INDEX_DIR}/index.json": root_json(projs)}
    for name, proj in projs.items():
        out[f"{INDEX_DIR}/{name}/index.html"] = project_html(proj)
        out[f"{INDEX_DIR}/{name}/index.json"] = project_json(proj)
    return out


def is_index_path(path: str) -> bool:
    return PurePosixPath(path).parts[:1] == (INDEX_DIR,)


# ------------------------------------------------------------------ content negotiation (PEP 691)

_OFFERS = {
    JSON_TYPE: JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    HTML_TYPE: HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
    "text/html": "text/html",
    "*/*": "text/html",
    "text/*": "text/html",
}


def negotiate(accept: str | None) -> str | None:
    """The media type to answer an Accept header with (no header: text/html); None: 406."""
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for order, item in enumerate(accept.split(",")):
        fields = [f.strip() for f in item.split(";")]
        offer = _OFFERS.get(fields[0].lower())
        if offer is None:
            continue
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        # Highest q wins; among equals, the first listed (clients list their preference first).
        if best is None or (q, -order) > best[:2]:
            best = (q, -order, offer)
    return best[2] if best else None


# ------------------------------------------------------------------ the server (offpkg serve)

def _printable(text: str) -> str:
    """A request line safe to log: control characters escaped (no log injection)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: IndexServer
    server_version = "offpkg-serve"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(send_body=False)

    def _handle(self, send_body: bool) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        if "\x00" in path or not path.startswith("/"):
            return self._plain(400, "bad request\n", send_body)
        if path == "/":
            return self._redirect("/simple/")
        if path == "/simple":
            return self._redirect("/simple/")
        if path.startswith("/simple/"):
            return self._page(path[len("/simple/"):], parse_qs(split.query), send_body)
        # Anything else is one of the bundle's verified files, looked up by its exact
        # manifest path: no URL is ever mapped onto the file system, so nothing outside
        # the bundle (or not listed in it) can be reached.
        entry = self.server.files.get(path[1:])
        if entry is None:
            return self._plain(404, "not found\n", send_body)
        self._file(entry, send_body)

    def _page(self, rest: str, query: dict[str, list[str]], send_body: bool) -> None:
        fmt = query.get("format", [None])[0]
        if fmt:
            fmt = fmt.replace(" ", "+")  # an unencoded '+' in ?format=...v1+json arrives as a space
        ctype = negotiate(fmt or self.headers.get("Accept"))
        if ctype is None:
            return self._plain(406, f"not acceptable; this index offers {JSON_TYPE}, {HTML_TYPE} and text/html\n",
                               send_body)
        as_json = ctype == JSON_TYPE
        projs = self.server.projects
        if rest == "":
            body = root_json(projs) if as_json else root_html(projs)
            return self._send(200, ctype, body.encode("utf-8"), send_body, vary=True)
        name = rest[:-1] if rest.endswith("/") else rest
        if not name or "/" in name:
            return self._plain(404, "not found\n", send_body)
        canon = canonicalize_name(name)
        if canon not in projs:
            return self._plain(404, f"no project {canon!r} in this bundle\n", send_body)
        if canon != name or not rest.endswith("/"):
            return self._redirect(f"/simple/{quote(canon)}/")
        proj = projs[canon]
        # Pages live at /simple/<name>/ so their relative links reach /wheels/... and /tools/...
        body = project_json(proj) if as_json else project_html(proj)
        self._send(200, ctype, body.encode("utf-8"), send_body, vary=True)

    def _file(self, entry: tuple[str, int, str], send_body: bool) -> None:
        rel, size, sha = entry
        if rel in self.server.in_memory:  # offpkg.json and SHA256SUMS: the verified bytes, kept
            return self._send(200, "application/octet-stream", self.server.in_memory[rel], send_body)
        fd = open_in(self.server.root_fd, rel)
        if fd is None or os.fstat(fd).st_size != size:
            if fd is not None:
                os.close(fd)
            self.server.log(f"refusing {_printable(rel)}: it is no longer the verified file")
            return self._plain(404, "not found\n", send_body)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", f'"{sha}"')
            self.end_headers()
            if send_body:
                problem = send_exact(fd, size, sha, self.wfile.write)
                if problem:
                    # Short of Content-Length: the client sees a broken download, never other bytes.
                    self.close_connection = True
                    self.server.log(f"stopped sending {_printable(rel)}: it {problem}")
        finally:
            os.close(fd)

    def _send(self, code: int, ctype: str, body: bytes, send_body: bool, vary: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if "html" in ctype or "text" in ctype else ""))
        self.send_header("Content-Length", str(len(body)))
        if vary:
            self.send_header("Vary", "Accept")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _plain(self, code: int, text: str, send_body: bool) -> None:
        self._send(code, "text/plain", text.encode("utf-8"), send_body)

    def _redirect(self, location: str) -> None:
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Secrets in a query string (?token=...) are masked; control characters escaped.
        method, _, rest = self.requestline.partition(" ")
        target, _, proto = rest.rpartition(" ") if " " in rest else (rest, "", "")
        if target.startswith("/"):
            target = redact_url("http://offpkg" + target)[len("http://offpkg"):]
        line = " ".join(x for x in (method, target, proto) if x)
        self.server.log(f'{self.client_address[0]} "{_printable(line)}" {code}')

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        self.server.log(_printable(format % args))

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # a client went away mid-download
            self.close_connection = True


class IndexServer(http.server.ThreadingHTTPServer):
    """Serves one verified bundle read-only: ``/simple/`` (PEP 503/691) and the bundle's own files."""

    daemon_threads = True

    def __init__(self, bundle_dir: Path, manifest: Manifest, host: str = "127.0.0.1", port: int = 8080,
                 log: Callable[[str], None] | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.projects = projects(manifest)
        root = Path(bundle_dir).resolve()
        self.root_fd = open_root(str(root))
        self.files: dict[str, tuple[str, int, str]] = {
            path: (path, size, sha) for path, (sha, size) in manifest.all_entries().items()}
        # The manifest and SHA256SUMS are small: read once (no symlink followed), served from memory.
        self.in_memory: dict[str, bytes] = {}
        for name in ("offpkg.json", "SHA256SUMS"):
            fd = open_in(self.root_fd, name)
            if fd is None:
                continue
            with os.fdopen(fd, "rb") as f:
                self.in_memory[name] = f.read(64 << 20)
            self.files[name] = (name, len(self.in_memory[name]), "")
        if changed_since_verified(self.in_memory, manifest):
            os.close(self.root_fd)
            raise VerificationError(f"{bundle_dir}: offpkg.json or SHA256SUMS changed after verification; "
                                    "not serving it", hint="make sure nothing writes to the bundle, then retry")
        self.log = log or (lambda line: None)
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def server_close(self) -> None:
        super().server_close()
        try:
            os.close(self.root_fd)
        except OSError:
            pass

    def url(self, host: str) -> str:
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/simple/"


# ------------------------------------------------------------------ offpkg index: the static tree in the bundle

_TMP_PREFIX = ".offpkg-index-"


@dataclass
class IndexResult:
    bundle: Path
    manifest: Manifest
    written: list[str]  # bundle-relative paths of the index files
    projects: int


def _tolerable(problem: str) -> bool:
    """Verification problems that re-indexing repairs: an earlier run of `offpkg index` was interrupted."""
    return problem.startswith((f"{INDEX_DIR}/", "SHA256SUMS:"))


def write_static_index(bundle_dir: Path) -> IndexResult:
    """Write ``simple/`` into a bundle directory and list every new file in offpkg.json and SHA256SUMS.

    The bundle is verified first (wheels, files, locks). The new tree and the new
    manifest are written in a temporary directory inside the bundle; ``simple/`` is
    swapped in, and offpkg.json then SHA256SUMS are replaced last, each atomically.
    Running it again regenerates the index (also after an interrupted run).
    """
    from ..bundle import write_manifest
    from ..fsutil import remove
    from ..hashing import sha256_file
    from ..manifest import MANIFEST_NAME, SUMS_NAME, FileEntry
    from ..verify import verify_bundle

    root = Path(bundle_dir)
    if not root.is_dir():
        raise InputError(f"{root} is not a bundle directory")
    for leftover in root.glob(_TMP_PREFIX + "*"):
        remove(leftover)  # from an interrupted run
    report = verify_bundle(root)
    blocking = [p for p in report.problems if not _tolerable(p)]
    if blocking:
        raise VerificationError(f"{root} failed verification; not indexing it", blocking,
                                hint="copy the bundle again from its source, or rebuild it")
    manifest = report.manifest
    assert manifest is not None
    texts = static_files(manifest)
    work = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + "new-", dir=root))
    old = root / f"{_TMP_PREFIX}old"
    try:
        entries = []
        for rel, text in sorted(texts.items()):
            p = work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(text.encode("utf-8"))
            digest, size = sha256_file(p)
            entries.append(FileEntry(rel, digest, size))
        kept = tuple(f for f in manifest.files if not is_index_path(f.path))
        new = replace(manifest, files=kept + tuple(entries))
        write_manifest(work, new)
        for name in (MANIFEST_NAME, SUMS_NAME):
            with open(work / name, "rb") as f:
                os.fsync(f.fileno())
        # Swap: simple/ first, then the manifest, then SHA256SUMS last.
        if (root / INDEX_DIR).exists() or (root / INDEX_DIR).is_symlink():
            os.replace(root / INDEX_DIR, old)
        os.replace(work / INDEX_DIR, root / INDEX_DIR)
        os.replace(work / MANIFEST_NAME, root / MANIFEST_NAME)
        os.replace(work / SUMS_NAME, root / SUMS_NAME)
    finally:
        remove(work)
        remove(old)
    return IndexResult(root, new, sorted(texts), len(projects(new)))


def index_bundle(src: Path, output: Path | None = None, force: bool = False) -> IndexResult:
    """``offpkg index``: in place for a bundle directory; into ``output`` (any bundle kind) otherwise."""
    from ..bundle import output_kind
    from ..fsutil import check_output, commit, link_or_copy, staging
    from ..install import opened_bundle

    src = Path(src)
    if not src.exists():
        raise InputError(f"{src} does not exist", hint="give the path of a bundle directory or archive")
    if output is None:
        if not src.is_dir():
            raise UsageError(f"{src} is an archive; `offpkg index` writes into a bundle directory",
                             hint=f"write a new bundle with the index: offpkg index {src} -o NEW{_suffix(src)} "
                                  "(or a directory), or extract it first")
        return write_static_index(src)
    output = Path(output)
    check_output(output, force)
    kind = output_kind(output)
    with opened_bundle(src) as bdir, staging(output, directory=True) as tmp:
        stage = tmp / "bundle"
        stage.mkdir()
        # Hard links where possible: the copy is only read, and every file we change is replaced, not rewritten.
        for p in sorted(bdir.rglob("*")):
            rel = p.relative_to(bdir)
            if p.is_dir() and not p.is_symlink():
                (stage / rel).mkdir(parents=True, exist_ok=True)
            elif p.is_file() and not p.is_symlink():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(p, stage / rel)
        result = write_static_index(stage)
        if kind == "dir":
            commit(stage, output, force)
        else:
            archive = tmp / output.name
            if kind == "sh":
                from ..selfextract import write_self_extracting

                write_self_extracting(stage, archive)
            else:
                from ..archive import write_tar

                write_tar(stage, archive, compression="zst" if kind == "tar.zst" else None)
            commit(archive, output, force)
    result.bundle = output
    return result


def _suffix(p: Path) -> str:
    for s in (".tar.zst", ".tar", ".sh"):
        if p.name.endswith(s):
            return s
    return ".tar"
