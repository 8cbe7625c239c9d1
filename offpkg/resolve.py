"""From requirements to a lock: the exact file of every distribution, for the target.

The backend (uv or pip) resolves the dependency closure to ``name==version``
pins for the target's Python and platform. offpkg then looks every pin up on
the indexes and picks the wheel whose tags rank best for the target (its own
ordered tag list, so ``manylinux_2_28`` hosts get ``manylinux_2_17`` wheels).
A pin with no fitting wheel falls back to its sdist, which the bundle builds
into a wheel here; if that is impossible it is an error naming the package
and the tags tried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import lockcache
from .backends import Backend, PackageResolutionError, Pin, Sources
from .errors import (AuthError, InputError, NetworkError, NoWheelError, OffpkgError, ResolutionError,
                     SubprocessError)
from .lockcache import LockCache
from .net.index import DistFile, IndexClient, IndexUnavailable, normalise_base
from .pythons import check_target_python
from .reqfile import ReqFile
from .target import Target


@dataclass(frozen=True)
class Selection:
    pin: Pin
    file: DistFile
    # True when no wheel fits: ``file`` is an sdist to build into one.
    needs_build: bool = False


# ---------------------------------------------------------------- requirement input

def read_requirement_lines(path: Path) -> tuple[list[str], list[Path]]:
    """Requirements of a requirements file (following ``-r``) and the constraint files it names.

    A file with direct references (URLs, VCS, paths) is read with :func:`collect_inputs`;
    here they are an error naming the file and line.
    """
    from .reqfile import read_file

    rf = read_file(path)
    _no_direct(rf)
    return rf.requirements, rf.constraints


def _no_direct(rf: ReqFile) -> None:
    if rf.direct:
        ref = rf.direct[0]
        raise InputError(f"{ref.where}: {ref.name or ref.url} is a direct reference ({ref.kind}); this command "
                         "resolves from indexes only",
                         hint="`offpkg bundle` builds and carries direct references")


def check_requirement(text: str, where: str) -> str:
    """A PEP 508 requirement without a URL (for commands that take no direct references)."""
    from .reqfile import parse_line

    req, ref = parse_line(text, where, Path.cwd())
    if ref is not None:
        _no_direct(ReqFile(direct=[ref]))
    return req  # type: ignore[return-value]


def collect_inputs(args: list[str], files: list[Path], constraint_files: list[Path]) -> ReqFile:
    """Everything the requirement arguments and files say: requirements, constraints, index options and
    direct references (see :mod:`offpkg.reqfile`)."""
    from .reqfile import parse_args, read_file

    out = parse_args(args)
    out.constraints = list(constraint_files) + out.constraints
    for f in files:
        out.merge(read_file(f))
    for c in out.constraints:
        _no_direct(read_file(c))  # validate early: a bad constraint file is bad input too
    if not out.requirements and not out.direct:
        raise InputError("nothing to bundle: give requirements, -r FILE or --stack NAME")
    return out


def collect_requirements(args: list[str], files: list[Path], constraint_files: list[Path]) -> tuple[list[str], list[Path]]:
    rf = collect_inputs(args, files, constraint_files)
    _no_direct(rf)
    return rf.requirements, rf.constraints


# ---------------------------------------------------------------- file selection

def _version(v: str) -> Version | None:
    try:
        return Version(v)
    except InvalidVersion:
        return None


# Memoised: a project page repeats the same name spelling and each version string
# once per file (torch: ~50 files per release).
_canon = functools.lru_cache(maxsize=4096)(canonicalize_name)
_cached_version = functools.lru_cache(maxsize=16384)(_version)


def _name_version_parts(filename: str) -> tuple[str, str] | None:
    """(canonical name, version string) the way packaging's filename parsers split them, or
    None when they would reject the name outright. A cheap pre-filter: a file whose parts do
    not match the pin cannot match after the full parse either (same split, same canonical
    name, same version comparison); a file that passes is still parsed in full."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-", 2)
        # parse_wheel_filename: 4 or 5 dashes; name and version are the first two parts.
        return (_canon(parts[0]), parts[1]) if len(parts) == 3 else None
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            name, sep, version = filename[: -len(ext)].rpartition("-")
            return (_canon(name), version) if sep else None
    return None  # other archives: DistFile.name_version() gives None for them too


def select_file(pin: Pin, files: list[DistFile], target: Target, ranks: dict | None = None) -> Selection:
    want = _version(pin.version)
    ranks = ranks if ranks is not None else target.tag_rank()
    pyver = Version(target.markers.get("python_full_version") or target.python_version + ".0")
    candidates: list[tuple[int, int, DistFile]] = []
    sdists: list[DistFile] = []
    wheel_tags: list[str] = []
    for order, f in enumerate(files):
        quick = _name_version_parts(f.filename)
        if quick is None or quick[0] != pin.name or (quick[1] != pin.version and _cached_version(quick[1]) != want):
            continue
        nv = f.name_version()
        if not nv or canonicalize_name(nv[0]) != pin.name or nv[1] != want:
            continue
        if f.requires_python:
            try:
                if pyver not in SpecifierSet(f.requires_python):
                    continue
            except InvalidSpecifier:
                pass
        if f.is_wheel:
            wheel_tags.append(f.filename)
            rank = target.wheel_rank(f.filename, ranks)
            if rank is not None:
                # Yanked files only when nothing else fits; then the best tag; then index order.
                candidates.append((int(f.yanked) * 10**6 + rank, order, f))
        elif f.is_sdist:
            sdists.append(f)
    if candidates:
        return Selection(pin, min(candidates, key=lambda c: (c[0], c[1]))[2])
    if sdists:
        return Selection(pin, sdists[0], needs_build=True)
    shown = ", ".join(sorted(set(wheel_tags))[:6]) or "none"
    raise NoWheelError(
        f"no wheel of {pin.name}=={pin.version} fits the target {target.describe()}",
        hint=f"tags tried: {', '.join(target.tags[:4])} ... ({len(target.tags)} in all); "
             f"wheels on the index: {shown}. Pick another version, or build the wheel on a machine like the target "
             "and pass it with --find-links")


def lock(requirements: list[str], constraints: list[Path], target: Target, sources: Sources, backend: Backend,
         client: IndexClient, workdir: Path, on_select: Callable[[Selection], None] | None = None,
         lock_cache: LockCache | None = None) -> list[Selection]:
    """The selections of every pin, in the resolver's order. ``on_select`` is called with each
    selection as soon as it is made (as the index pages come in), e.g. to start its download.

    With ``lock_cache``, the pins of an earlier run with the same inputs are reused when every
    pinned project's page still says what it said then (offpkg.lockcache explains why that is enough).
    """
    check_target_python(target)  # one clear error for a python below the floor, not the resolver's
    k = lockcache.key(requirements, constraints, target.to_json(), sources, backend.name) if lock_cache else None
    record = lock_cache.load(k) if lock_cache else None
    if record is not None:
        pins = [Pin(n, v) for n, v in record[0]]
        try:
            sels, pages = _select_all(pins, target, client, None)
        except OffpkgError:
            sels = None  # a page that cannot be read now, or a file gone: resolve afresh
        if sels is not None and pages == record[1]:
            lock_cache.hits += 1
            for s in sels:
                if on_select is not None:
                    on_select(s)
            return sels
    reqfile = workdir / "requirements.in"
    reqfile.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    pins = _resolve_with_fallback(reqfile, requirements, constraints, target, sources, backend, client, workdir)
    sels, pages = _select_all(pins, target, client, on_select)
    if lock_cache is not None:
        lock_cache.store(k, [(p.name, p.version) for p in pins], pages)
    return sels


def _select_all(pins: list[Pin], target: Target, client: IndexClient,
                on_select: Callable[[Selection], None] | None) -> tuple[list[Selection], dict[str, str]]:
    """Each pin's file, read from its project page (8 pages at a time), and a digest of each page."""
    ranks = target.tag_rank()
    digests: dict[str, str] = {}
    chosen: dict[int, Selection] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = {pool.submit(client.files, p.name): i for i, p in enumerate(pins)}
        try:
            for fut in as_completed(pages):
                i = pages[fut]
                files = fut.result()
                digests[pins[i].name] = lockcache.page_digest(files)
                sel = chosen[i] = select_file(pins[i], files, target, ranks)
                if on_select is not None:
                    on_select(sel)
        except BaseException:
            for fut in pages:
                fut.cancel()
            raise
    return [chosen[i] for i in range(len(pins))], digests


def _resolve_with_fallback(reqfile: Path, requirements: list[str], constraints: list[Path], target: Target,
                           sources: Sources, backend: Backend, client: IndexClient, workdir: Path) -> list[Pin]:
    """Pins from the backend, trying the next mirror as primary while the current one cannot be reached.

    Whether a mirror is unreachable (connection error, timeout, 5xx) is asked of the
    index itself (one project page, with retries), not guessed from uv's or pip's wording.
    """
    client.use_fallbacks(sources.fallbacks)
    mirrors = [*sources.index_urls[:1], *sources.fallbacks] if sources.index_urls else []
    attempts = [replace(sources, index_urls=(m, *sources.index_urls[1:]),
                        fallbacks=tuple(x for x in mirrors if x != m)) for m in mirrors] or [sources]
    probe_name = Requirement(requirements[0]).name if requirements else "pip"

    def reachable(n: int, primary: str | None) -> bool:
        """False (and the mirror marked dead) when ``primary`` cannot answer; raises if it was the last."""
        if primary is None or "://" not in primary or primary.startswith("file:"):
            return True
        try:
            client.project_page(primary, probe_name, fresh_ok=False)  # is it up now (not: was it)?
        except IndexUnavailable as down:
            client.dead.add(primary)
            if n < len(attempts) - 1:
                client.notes.append(f"{down.message}; resolving with the next mirror")
                return False
            # Not a resolution problem: say that the index is down (exit code 5).
            raise IndexUnavailable(down.message + (" (nor any fallback mirror)" if n else ""),
                                   hint=down.hint) from None
        except AuthError:
            raise  # the index refuses our credentials: that, not "no version satisfies", is the error
        except NetworkError:
            pass  # it answers (a 5xx, a bad page): the resolver will say what is wrong
        return True

    last = len(attempts) - 1
    for n, src in enumerate(attempts):
        primary = normalise_base(src.index_urls[0]) if src.index_urls else None
        # A dead primary costs uv/pip several retries (minutes if it stalls): ask it once first.
        if (primary in client.dead and n < last) or not reachable(n, primary):
            continue
        try:
            return backend.resolve(reqfile, constraints, target, src, workdir)
        except (ResolutionError, SubprocessError) as exc:
            if not reachable(n, primary):  # it went down while the resolver ran
                continue
            if isinstance(exc, PackageResolutionError):
                raise _classify(exc, target, client) from None
            raise
    # reachable() raises on the last mirror, so every path above returns or raises.
    raise AssertionError("mirror fallback ended without a result")


def _classify(exc: PackageResolutionError, target: Target, client: IndexClient) -> Exception:
    """Turn a resolver failure on one package into unknown package / no wheel / conflict."""
    try:
        files = client.files(exc.package)
    except AuthError:
        raise
    except OffpkgError:
        return exc  # the page cannot be read now: the resolver's own message stands
    where = ", ".join(client.index_urls + client.find_links) or "the index"
    if not files:
        from .redact import redact_text

        return InputError(f"unknown package {exc.package!r}: it is not on {redact_text(where)}",
                          hint="check the spelling, or the --index-url / --find-links options")
    ranks = target.tag_rank()
    fits = [f for f in files if (f.is_wheel and target.wheel_rank(f.filename, ranks) is not None) or f.is_sdist]
    if not fits:
        shown = ", ".join(sorted({f.filename for f in files if f.is_wheel})[:6])
        return NoWheelError(
            f"no wheel of {exc.package} fits the target {target.describe()}, and it has no sdist",
            hint=f"tags tried: {', '.join(target.tags[:4])} ... ({len(target.tags)} in all); wheels on the index: "
                 f"{shown}. Choose a target it supports, or build the wheel on a host like the target and pass "
                 "--find-links")
    return exc
