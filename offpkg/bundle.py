"""Assemble a bundle: lock for the target(s), fetch into the cache, lay out the files.

Layout of a bundle (a directory, or the same tree in one ``.tar``/``.tar.zst``)::

    offpkg.json        the manifest (offpkg.manifest)
    SHA256SUMS         sha256sum -c on a host without offpkg
    requirements.txt   every distribution ==pinned with --hash (first target)
    requirements/      one file per target when there are several
    pylock.toml        PEP 751 lock of the same set
    pip.conf           no-index + find-links for the offline host
    install.sh         bootstrap for a host with only python3 (install.ps1 for Windows)
    wheels/            exactly the locked wheels
    tools/             pip (for hosts without ensurepip), uv, bootstrap.py, probe.py
    sbom.cdx.json      CycloneDX 1.6 SBOM of the carried files (offpkg.review.sbom)
    THIRD_PARTY_NOTICES  the wheels' own license files

Everything is built in a temporary sibling of the output and renamed into place
only when complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import time
import threading
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from . import __version__
from .backends import Backend, Sources
from .net.cache import Cache
from .errors import InputError, NoWheelError
from .events import Events
from .net.fetch import Fetched, FetchPolicy, Fetcher, FetchRequest
from .fsutil import check_output, commit, link_or_copy, staging
from .hashing import sha256_file
from .net.index import DistFile, IndexClient
from .manifest import MANIFEST_NAME, SUMS_NAME, FileEntry, Manifest, Package
from .redact import strip_credentials
from . import lockcache
from .lockcache import LockCache
from .prefetch import Prefetch
from .pythons import tool_notes, uv_missing_reason
from .bundletools import tool_selections
from .lockfiles import PIP_CONF, _pylock, _requirements_txt  # noqa: F401 - PIP_CONF stays importable from here
from .resolve import Selection, lock
from .trust.pins import check_bundle_pins
from ._templates import read_template
from .target import Target


@dataclass
class BundleOptions:
    requirements: list[str]
    targets: list[Target]
    sources: Sources
    backend: Backend
    output: Path
    constraints: list[Path] = field(default_factory=list)
    cache: Cache = field(default_factory=Cache)
    force: bool = False
    tools: bool = True
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    # Filled by CUDA planning (offpkg.gpu.cuda): recorded in the manifest.
    cuda: dict[str, Any] | None = None
    stack: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # SPDX ids/globs (or "unknown") that refuse the bundle (offpkg.review.licenses).
    deny_licenses: list[str] = field(default_factory=list)
    # SSH keys that sign offpkg.json (offpkg.trust), in order: offpkg.json.sig.
    sign_keys: list[Path] = field(default_factory=list)
    # False (--refresh): resolve afresh even when an earlier run's pins could be reused (offpkg.lockcache).
    reuse_lock: bool = True
    # --base: an offpkg.updates.delta.BaseState; the bundle is written as a delta of it.
    base: Any = None
    # The --hash pins of the user's requirement and constraint files (offpkg.trust.pins).
    hash_pins: Any = None


@dataclass
class BundleResult:
    path: Path
    manifest: Manifest
    seconds: float
    downloaded_bytes: int
    cached_files: int
    built_from_sdist: list[str]
    timings: dict[str, float]
    reused_locks: int = 0  # targets whose resolution was reused (offpkg.lockcache)
    # {"pinned": [...], "from_index": [...]} when the user pinned hashes: whose hashes came from where.
    hash_pins: dict[str, list[str]] | None = None


def output_kind(path: Path) -> str:
    name = path.name
    if name.endswith(".tar.zst"):
        return "tar.zst"
    if name.endswith(".tar"):
        return "tar"
    if name.endswith(".sh"):
        return "sh"
    return "dir"


def created_timestamp() -> str:
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        try:
            ts = int(sde)
        except ValueError:
            raise InputError(f"SOURCE_DATE_EPOCH={sde!r} is not an integer") from None
    else:
        ts = int(time.time())
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template(name: str) -> str:
    return read_template(name)


def _probe_source() -> str:
    return (resources.files("offpkg") / "_probe.py").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- steps


def lock_all(opts: BundleOptions, client: IndexClient, workdir: Path, events: Events,
             on_select: Any = None, lock_cache: LockCache | None = None) -> list[list[Selection]]:
    locks: list[list[Selection]] = []
    if not opts.requirements:  # e.g. a bundle of a conda environment only
        return [[] for _ in opts.targets]
    for i, target in enumerate(opts.targets):
        events.stage("resolve", f"resolving for {target.describe()}")
        wd = workdir / f"t{i}"
        wd.mkdir()
        locks.append(lock(opts.requirements, opts.constraints, target, opts.sources, opts.backend, client, wd,
                          on_select=on_select, lock_cache=lock_cache))
        events.done("resolve")
    direct = opts.extra.get("direct_files")
    if direct:  # direct references (offpkg.directref): resolution must have taken exactly their files
        from .directref import check_locked

        check_locked(direct, [(s.pin.name, s.file.filename, s.file.sha256 or (
            sha256_file(s.file.local_path)[0] if s.file.local_path else "")) for sels in locks for s in sels])
    return locks


def _build_sdists(opts: BundleOptions, target: Target, sels: list[Selection], fetched: dict[str, Fetched],
                  workdir: Path, events: Events) -> dict[str, Fetched]:
    """Build every sdist selection into a wheel that fits the target; returns {sdist filename: built wheel}."""
    out: dict[str, Fetched] = {}
    builddir = workdir / "built"
    builddir.mkdir(exist_ok=True)
    for s in sels:
        if not s.needs_build:
            continue
        sdist = fetched[s.file.filename]
        events.stage("build", f"building {s.file.filename} into a wheel")
        wheel = opts.backend.build_wheel(sdist.path, builddir, opts.sources, workdir)
        events.done("build")
        if target.wheel_rank(wheel.name) is None:
            kind = "a platform-specific wheel" if not wheel.name.endswith("-none-any.whl") else "a wheel"
            raise NoWheelError(
                f"{s.pin.name}=={s.pin.version} has no wheel for the target {target.describe()}, and its sdist builds "
                f"{kind} here ({wheel.name}) that the target cannot install",
                hint=f"tags tried: {', '.join(target.tags[:4])} ...; build the wheel on a host like the target "
                     "and pass it with --find-links")
        digest, size = sha256_file(wheel)
        dest = opts.cache.path(digest, wheel.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            os.replace(wheel, dest)
        out[s.file.filename] = Fetched(wheel.name, dest, digest, size, False, "")
    return out


def write_layout(stage: Path, opts: BundleOptions, locks: list[list[Selection]],
                 fetched: dict[str, Fetched], built: dict[str, Fetched], tools: list[Fetched],
                 review: Any = None) -> Manifest:
    """Write every file of the bundle into ``stage``; returns the manifest written."""
    wheels = stage / "wheels"
    wheels.mkdir(parents=True)
    by_file: dict[str, Package] = {}
    for ti, sels in enumerate(locks):
        for s in sels:
            f = built.get(s.file.filename) or fetched[s.file.filename]
            if f.filename in by_file:
                old = by_file[f.filename]
                if ti not in old.targets:
                    by_file[f.filename] = replace(old, targets=old.targets + (ti,))
                continue
            name, version, _, _ = parse_wheel_filename(f.filename)
            by_file[f.filename] = Package(
                name=canonicalize_name(name), version=str(version), filename=f.filename,
                path=f"wheels/{f.filename}", sha256=f.sha256, size=f.size,
                url=strip_credentials(s.file.url) if "://" in s.file.url and not s.file.url.startswith("file:") else None,
                built_from_sdist=s.needs_build, requires_python=s.file.requires_python, targets=(ti,))
            opts.cache.link_out(f.path, wheels / f.filename)
    packages = list(by_file.values())
    (stage / "tools").mkdir()  # bootstrap.py and probe.py always go there
    for f in tools:
        name, version, _, _ = parse_wheel_filename(f.filename)
        opts.cache.link_out(f.path, stage / "tools" / f.filename)
        packages.append(Package(name=canonicalize_name(name), version=str(version), filename=f.filename,
                                path=f"tools/{f.filename}", sha256=f.sha256, size=f.size, role="tool",
                                targets=tuple(range(len(opts.targets)))))
    reqs = [p for p in packages if p.role == "requirement"]
    header = [f"offpkg {__version__} bundle: every distribution pinned with its sha256",
              "requirements: " + ", ".join(opts.requirements)[:500]]
    files: dict[str, str] = {}
    files["requirements.txt"] = _requirements_txt(opts.targets[0], [p for p in reqs if 0 in p.targets], header)
    if len(opts.targets) > 1:
        for ti, t in enumerate(opts.targets):
            files[f"requirements/{t.id}.txt"] = _requirements_txt(t, [p for p in reqs if ti in p.targets], header)
    files["pylock.toml"] = _pylock(opts.targets, reqs)
    files["pip.conf"] = PIP_CONF
    files["install.sh"] = _template("install.sh")
    files["tools/bootstrap.py"] = _template("bootstrap.py")
    files["tools/probe.py"] = _probe_source()
    if any(t.os == "windows" for t in opts.targets):
        files["install.ps1"] = _template("install.ps1")
    created = created_timestamp()
    if review is not None:  # sbom.cdx.json, THIRD_PARTY_NOTICES: listed and hashed like every file
        files.update(review.files(targets=opts.targets, packages=packages, requirements=list(opts.requirements),
                                  created=created, bundle_name=opts.output.name,
                                  conda_path=(opts.extra.get("conda") or {}).get("path")))
    entries = []
    for rel, text in sorted(files.items()):
        p = stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        p.write_bytes(data)
        if rel.endswith(".sh"):
            p.chmod(0o755)
        entries.append(FileEntry(rel, hashlib.sha256(data).hexdigest(), len(data)))  # hashed in memory, not re-read
    if opts.extra.get("extra_files"):
        for rel, src in opts.extra["extra_files"]:
            p = stage / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(Path(src), p)
            digest, size = sha256_file(p)
            entries.append(FileEntry(rel, digest, size))
    manifest = Manifest(
        offpkg_version=__version__,
        created=created,
        targets=tuple(t.to_json() for t in opts.targets),
        requirements=tuple(opts.requirements),
        packages=tuple(packages),
        files=tuple(entries),
        indexes=tuple(strip_credentials(u) for u in opts.sources.index_urls),
        cuda=opts.cuda,
        conda=opts.extra.get("conda"),
        extra={k: v for k, v in opts.extra.items() if k not in ("extra_files", "conda", "direct_files")} | (
            {"stack": opts.stack} if opts.stack else {}),
    )
    write_manifest(stage, manifest)
    return manifest


def write_manifest(stage: Path, manifest: Manifest) -> None:
    """Write offpkg.json, then SHA256SUMS over every file (the manifest included)."""
    (stage / MANIFEST_NAME).write_text(manifest.dumps(), encoding="utf-8")
    digest, _ = sha256_file(stage / MANIFEST_NAME)
    lines = [(MANIFEST_NAME, digest)] + sorted((path, sha) for path, (sha, _) in manifest.all_entries().items())
    (stage / SUMS_NAME).write_text("".join(f"{sha}  {path}\n" for path, sha in sorted(lines, key=lambda x: x[0])),
                                   encoding="utf-8")


class _EarlyFetch:
    """Downloads started while the lock is still being made (one per file chosen), with their
    progress held back until the download stage (and its total) is known."""

    def __init__(self, opts: BundleOptions, client: IndexClient, events: Events) -> None:
        self.events = events
        self.started: set[str] = set()
        self._lock = threading.Lock()
        self._shown = False
        self._early = 0
        self.fetcher = Fetcher(opts.cache, opts.fetch_policy, session=client.session, progress=self._progress,
                               warn=events.warn, client=client)

    def _progress(self, n: int) -> None:
        with self._lock:
            if not self._shown:
                self._early += n
                return
        self.events.advance("download", n)

    def show(self, description: str, total: int | None) -> None:
        self.events.stage("download", description, total=total, bytes_=True)
        with self._lock:
            self._shown, early = True, self._early
        if early:
            self.events.advance("download", early)

    def submit(self, f: DistFile) -> None:
        if f.filename not in self.started:
            self.started.add(f.filename)
            self.fetcher.submit(FetchRequest(f))


def fetch_all(opts: BundleOptions, locks: list[list[Selection]], client: IndexClient, events: Events,
              tools: list[tuple[Target, DistFile | None, DistFile | None]] | None = None,
              early: _EarlyFetch | None = None) -> tuple[dict[str, Fetched], list[Fetched]]:
    wanted: dict[str, DistFile] = {}
    for sels in locks:
        for s in sels:
            wanted.setdefault(s.file.filename, s.file)
    tool_files: list[DistFile] = []
    if opts.tools:
        seen: set[str] = set()
        for t, pip, uv in (tools if tools is not None else tool_selections(opts, client)):
            if pip is None:
                events.warn("no pip wheel found for the bundle's tools/: hosts without ensurepip cannot bootstrap")
            if uv is None:
                events.warn(f"no uv wheel for {t.describe()} on the index{uv_missing_reason(t, client)}: install.sh "
                            f"on the target will use pip{f' {pip.name_version()[1]}' if pip and pip.name_version() else ''} "
                            "(offpkg install uses its own uv where it runs)")
            for f in (pip, uv):
                if f is not None and f.filename not in seen:
                    seen.add(f.filename)
                    tool_files.append(f)
                    wanted.setdefault(f.filename, f)
    total = sum(f.size or 0 for f in wanted.values())
    early = early or _EarlyFetch(opts, client, events)
    early.show(f"fetching {len(wanted)} files", total or None)
    for f in wanted.values():
        early.submit(f)
    results = early.fetcher.wait()
    events.done("download")
    fetched = {r.filename: r for r in results}
    return fetched, [fetched[f.filename] for f in tool_files]


def _all_reusable(opts: BundleOptions, lock_cache: LockCache | None) -> bool:
    """Whether every target has a resolution record to reuse (then there is nothing to guess)."""
    if lock_cache is None:
        return False
    return all(lock_cache.load(lockcache.key(opts.requirements, opts.constraints, t.to_json(), opts.sources,
                                             opts.backend.name)) for t in opts.targets)


class _Background:
    """``fn(*args)`` in a daemon thread: if the main work fails first, nobody waits for it
    (a stalled index would otherwise hold the error back for its timeouts)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True, name="offpkg-tools-lookup")
        self._thread.start()

    def _run(self, fn: Any, args: tuple[Any, ...]) -> None:
        try:
            self._out.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised in result()
            self._err.append(exc)

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def build_bundle(opts: BundleOptions, events: Events | None = None, *, verify_hook: Any = None) -> BundleResult:
    """Resolve, fetch and assemble a bundle at ``opts.output``.

    ``verify_hook(stage_dir, manifest) -> dict`` (the smoke test) runs on the
    finished staging directory before it is renamed into place; its result is
    written into the manifest, and it raises to fail the bundle.
    """
    events = events or Events()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    kind = output_kind(opts.output)
    check_output(opts.output, opts.force)
    opts.cache.root.mkdir(parents=True, exist_ok=True)
    opts.cache.clean_stale()
    client = IndexClient(list(opts.sources.index_urls), list(opts.sources.find_links), timeout=opts.fetch_policy.timeout,
                         fallbacks=list(opts.sources.fallbacks), page_cache=opts.cache.index_dir)
    with staging(opts.output, directory=True) as tmp:
        work = tmp / "work"
        work.mkdir()
        # The tools/ wheels (pip, uv) do not depend on the lock: look them up while the resolver runs.
        tool_lookup = _Background(tool_selections, opts, client)
        # Each file's download starts as soon as it is chosen, while the other index pages
        # are still coming in (the largest, torch, no longer waits for the last page).
        early = _EarlyFetch(opts, client, events)
        lock_cache = LockCache(opts.cache.root) if opts.reuse_lock else None
        # With nothing to reuse, guess the big files and start them before the resolver answers.
        prefetch = Prefetch(opts.cache, opts.fetch_policy, client, progress=early._progress, warn=events.warn)
        if opts.requirements and not _all_reusable(opts, lock_cache):
            prefetch.start(opts.requirements, opts.targets)
        try:
            locks = lock_all(opts, client, work, events, on_select=lambda s: early.submit(s.file),
                             lock_cache=lock_cache)
            prefetched = prefetch.settle({s.file.filename for sels in locks for s in sels})
            timings["resolve"] = time.monotonic() - t0  # downloads have started meanwhile
            t1 = time.monotonic()
            tool_sel = tool_lookup.result()
            fetched, tools = fetch_all(opts, locks, client, events, tool_sel, early)
        except BaseException:
            prefetch.stop()
            early.fetcher.cancel()
            raise
        timings["fetch"] = time.monotonic() - t1
        hash_pins = check_bundle_pins(opts.hash_pins, locks, fetched) if opts.hash_pins else None
        for note in tool_notes(tool_sel, client):  # e.g. a 3.8 target gets pip 25.0.1, the last pip for it
            events.note(note)
        built: dict[str, Fetched] = {}
        for t, sels in zip(opts.targets, locks):
            built.update(_build_sdists(opts, t, sels, fetched, work, events))
        stage = tmp / "bundle"
        t2 = time.monotonic()
        from .review.collect import for_bundle

        # Reads what will be carried (SBOM, notices); the license gate refuses here, before any layout.
        review = for_bundle(opts, [built.get(s.file.filename) or fetched[s.file.filename]
                                   for sels in locks for s in sels] + tools)
        manifest = write_layout(stage, opts, locks, fetched, built, tools, review)
        timings["layout"] = time.monotonic() - t2
        if verify_hook is not None:
            t3 = time.monotonic()
            verification = verify_hook(stage, manifest)
            manifest = replace(manifest, verification=verification)
            write_manifest(stage, manifest)
            timings["verify"] = time.monotonic() - t3
        if opts.base is not None:
            from .updates.delta import make_delta

            # Built and smoke-tested complete above; now drop what the base already holds.
            manifest, _ = make_delta(stage, manifest, opts.base)
            write_manifest(stage, manifest)
        if opts.sign_keys:
            from .trust import sign_dir

            for key in opts.sign_keys:  # last: the manifest (a delta's too) is final now
                sign_dir(stage, key)
        t4 = time.monotonic()
        if kind == "dir":
            commit(stage, opts.output, opts.force)
        else:
            from .archive import write_tar

            archive = tmp / opts.output.name
            if kind == "sh":
                from .selfextract import write_self_extracting

                write_self_extracting(stage, archive)
            else:
                write_tar(stage, archive, compression="zst" if kind == "tar.zst" else None)
            commit(archive, opts.output, opts.force)
        timings["write"] = time.monotonic() - t4
    if lock_cache is not None:
        lock_cache.commit()  # only now: the bundle is complete
    for note in client.notes:  # an index page came from a fallback mirror
        events.warn(note)
    # Files the guesses downloaded reach the real fetch through the cache: they were downloaded all the same.
    new = [f for f in fetched.values() if not f.from_cache or f.filename in prefetched]
    downloaded = sum(f.size for f in new)
    return BundleResult(opts.output, manifest, time.monotonic() - t0, downloaded,
                        len(fetched) - len(new),
                        [s.file.filename for sels in locks for s in sels if s.needs_build], timings,
                        reused_locks=lock_cache.hits if lock_cache else 0, hash_pins=hash_pins)
