"""Speculative downloads: the big files start before the resolver has answered.

A cold bundle of a GPU stack is mostly bytes (torch and the CUDA runtime, ~2.5 of 2.9 GB),
and the resolver takes seconds before it names them. Those files are usually predictable:
the newest release of a top-level requirement that fits the target, and the ``==`` pins
in that wheel's own metadata (torch pins every ``nvidia-*`` runtime wheel exactly). So
while the resolver runs, offpkg reads those pages and metadata and starts downloading.

Nothing here decides what goes into the bundle: the lock does. Each guess downloads into
the content-addressed cache under its index's sha256, exactly as a normal download would.
When the lock is known, :meth:`Prefetch.settle` keeps the downloads the lock wants (the
real fetch waits on their cache lock and then finds them verified) and stops the others.
Any failure of a guess is ignored: the real fetch does its own work and reports its own errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.parser import HeaderParser

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .backends import Pin
from .net.cache import Cache
from .net.fetch import FetchPolicy, Fetcher, FetchRequest
from .net.index import DistFile, IndexClient
from .target import Target

# Guesses from metadata go this deep: torch -> cuda-toolkit[...]==X -> its nvidia-* pins.
DEPTH = 3
# Only files at least this large are worth a guess: small ones are fetched in a blink anyway.
MIN_SIZE = 8 << 20


def _applies(req: Requirement, target: Target, extras: tuple[str, ...]) -> bool:
    """Whether the requirement's marker holds on the target, for no extra or one of ``extras``."""
    if req.marker is None:
        return True
    env = dict(target.markers)
    return any(req.marker.evaluate(env | {"extra": e}) for e in ("", *extras))


class Prefetch:
    def __init__(self, cache: Cache, policy: FetchPolicy, client: IndexClient,
                 progress: Callable[[int], None] | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.cache, self.policy, self.client, self.progress, self.warn = cache, policy, client, progress, warn
        self._lock = threading.Lock()
        self._started: dict[str, tuple[Fetcher, DistFile]] = {}
        self._stopped = threading.Event()
        self._exact: set[str] = set()  # projects guessed from an exact pin
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="offpkg-prefetch")

    def start(self, requirements: Iterable[str], targets: list[Target]) -> None:
        """Begin guessing in the background; returns at once."""
        reqs = list(requirements)
        for t in targets:
            for r in reqs:
                self._pool.submit(self._guess, r, t, DEPTH)

    def settle(self, wanted: set[str]) -> set[str]:
        """The lock is known: keep the guesses it wants, stop the rest; returns the names kept."""
        self._stopped.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            started = dict(self._started)
        kept = set()
        for name, (fetcher, _) in started.items():
            if name in wanted:
                kept.add(name)
            else:
                threading.Thread(target=fetcher.cancel, daemon=True).start()
        return kept

    def stop(self) -> None:
        self.settle(set())

    # ------------------------------------------------------------------ guessing
    def _guess(self, requirement: str, target: Target, depth: int) -> None:
        try:
            self._guess_one(requirement, target, depth)
        except Exception:  # noqa: BLE001 - a guess that fails costs nothing; the real fetch reports
            pass

    def _guess_one(self, requirement: str, target: Target, depth: int) -> None:
        if self._stopped.is_set():
            return
        try:
            req = Requirement(requirement)
        except InvalidRequirement:
            return
        if req.url or not _applies(req, target, ()):
            return
        files = self.client.files(req.name)
        best = self._choose(req, files, target)
        if best is None:
            return
        big = best.size is None or best.size >= MIN_SIZE  # HTML pages give no size: guess
        exact = any(sp.operator == "==" for sp in req.specifier)
        # A range deep in the tree (cusolver -> nvidia-cublas, any version) is a poor guess next to the
        # exact pin that usually names the same project: download exact pins at any depth, ranges only
        # for the requirements themselves and their direct dependencies.
        if big and (exact or depth >= DEPTH - 1):
            self._submit(best, exact)
        # Follow the metadata of big wheels (torch -> triton, nvidia-*) and of exact pins
        # (cuda-toolkit[...]==X: a small wheel whose extras pin the big runtime wheels).
        if depth > 1 and best.is_wheel and (big or exact):
            for dep in self._requirements_of(best, target, tuple(sorted(req.extras))):
                self._pool.submit(self._guess, dep, target, depth - 1)

    @staticmethod
    def _choose(req: Requirement, files: list[DistFile], target: Target) -> DistFile | None:
        """The file the resolver most likely picks: the newest allowed version's best wheel."""
        from .resolve import select_file

        versions: set[Version] = set()
        for f in files:
            nv = f.name_version()
            if nv and not f.yanked and not nv[1].is_prerelease and nv[1] in req.specifier:
                versions.add(nv[1])
        if not versions:
            return None
        v = max(versions)
        try:
            sel = select_file(Pin(canonicalize_name(req.name), str(v)), files, target, target.tag_rank())
        except Exception:  # noqa: BLE001 - no fitting file: nothing to guess
            return None
        return None if sel.needs_build else sel.file

    def _requirements_of(self, f: DistFile, target: Target, extras: tuple[str, ...]) -> list[str]:
        """The Requires-Dist of a wheel (its METADATA, by PEP 658 or range requests) that apply to the target."""
        from . import net

        if not f.url.startswith(("http://", "https://")) or "?" in f.url or "#" in f.url:
            return []  # a signed or tokened link: leave it to the real fetch
        text = net.wheel_metadata(f, session=self.client.session, timeout=self.policy.timeout)
        if not text or len(text) > (4 << 20):
            return []
        out = []
        for line in HeaderParser().parsestr(text).get_all("Requires-Dist") or []:
            try:
                dep = Requirement(line)
            except InvalidRequirement:
                continue
            if _applies(dep, target, extras):
                out.append(line.split(";", 1)[0].strip())
        return out

    def _submit(self, f: DistFile, exact: bool) -> None:
        if not f.sha256 or self.cache.lookup(f.sha256, f.filename) is not None:
            return  # unhashed (pinned on first download: the real fetch's job), or already here
        project = (f.name_version() or (f.filename, None))[0]
        with self._lock:
            if self._stopped.is_set() or f.filename in self._started:
                return
            if project in self._exact and not exact:
                return  # an exact pin of this project was guessed already
            if exact:
                self._exact.add(project)
            # One attempt, no retries: a guess that meets trouble leaves the file to the real fetch.
            fetcher = Fetcher(self.cache, replace(self.policy, workers=1, retries=0),
                              session=self.client.session, progress=self.progress, warn=self.warn,
                              client=self.client)
            self._started[f.filename] = (fetcher, f)
        fetcher.submit(FetchRequest(f))
