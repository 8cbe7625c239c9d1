"""A private snapshot of a directory bundle: verify the copy, install from the copy (no TOCTOU).

``offpkg install DIR`` used to verify the directory and then read it again for the
install: whoever can write to DIR (a shared folder, a USB stick) could swap a wheel,
requirements.txt or pip.conf in between. Hard links and kept file descriptors do not
help against a writer who changes a file in place, so the snapshot is a copy.

The copy is bounded by the manifest, read first: only files the manifest lists are
copied, each opened without following symlinks (every directory on the way too) and
read up to its listed size plus one byte, so a file that is larger, a symlink, a
device or an unlisted file is a problem found before anything of it is copied. The
copy then goes through the full verification (hashes, locks) like any bundle.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..errors import EnvironmentProblem, ManifestError, VerificationError
from ..manifest import MANIFEST_NAME, SUMS_NAME, Manifest
from .limits import MAX_SIG, MAX_SUMS, bundle_limits, check_manifest_limits
from .sshsig import SIG_NAME

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_MAX_MANIFEST = 64 << 20
_CHUNK = 1 << 20
# Enough to see what is wrong; a hostile folder with 300,000 stray files is not listed in full.
_MAX_PROBLEMS = 50


def _read_fd(fd: int, limit: int) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _open_nofollow(dir_fd: int, name: str, *, directory: bool = False) -> int:
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | (_O_DIRECTORY if directory else 0)
    return os.open(name, flags, dir_fd=dir_fd)


def read_manifest_nofollow(root_fd: int, where: str) -> tuple[Manifest, bytes]:
    """The manifest read from the opened bundle directory (not through a symlink), with its bytes."""
    try:
        fd = _open_nofollow(root_fd, MANIFEST_NAME)
    except FileNotFoundError:
        raise ManifestError(f"{where} has no {MANIFEST_NAME}: it is not an offpkg bundle (or it is incomplete)",
                            hint="check the path; a bundle is the directory or archive written by `offpkg bundle`") \
            from None
    except OSError as exc:
        raise ManifestError(f"{where}/{MANIFEST_NAME} cannot be opened as a regular file ({exc.strerror})",
                            hint="a bundle holds only regular files; copy it again from its source") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ManifestError(f"{where}/{MANIFEST_NAME} is not a regular file")
        data = _read_fd(fd, _MAX_MANIFEST)
    finally:
        os.close(fd)
    if len(data) > _MAX_MANIFEST:
        raise ManifestError(f"{where}/{MANIFEST_NAME} is implausibly large (over {_MAX_MANIFEST} bytes)")
    return Manifest.loads(data, f"{where}/{MANIFEST_NAME}"), data


class _Copier:
    def __init__(self, src: Path, dest: Path, manifest: Manifest) -> None:
        self.src, self.dest = src, dest
        self.sizes = {path: size for path, (_, size) in manifest.all_entries().items()}
        # Not in the manifest (they cover it): a bound, not their size.
        self.sizes[SUMS_NAME] = MAX_SUMS
        self.sizes[SIG_NAME] = MAX_SIG
        self.problems: list[str] = []
        self.copied: set[str] = set()
        self.more = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more += 1

    def walk(self, dir_fd: int, rel: str) -> None:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            if rel == "" and e.name == MANIFEST_NAME:
                continue
            if e.is_symlink():
                self.problem(f"{path}: is a symbolic link; a bundle holds only regular files")
            elif e.is_dir(follow_symlinks=False):
                # An empty wheels/ (a conda-only bundle) is fine; whatever is inside is checked below.
                (self.dest / path).mkdir(mode=0o700)
                fd = _open_nofollow(dir_fd, e.name, directory=True)
                try:
                    self.walk(fd, path)
                finally:
                    os.close(fd)
            elif not e.is_file(follow_symlinks=False):
                self.problem(f"{path}: is not a regular file")
            elif path not in self.sizes:
                self.problem(f"{path}: present but not listed in the manifest")
            else:
                self.copy(dir_fd, e.name, path)

    def copy(self, dir_fd: int, name: str, path: str) -> None:
        limit = self.sizes[path]
        try:
            fd = _open_nofollow(dir_fd, name)
        except OSError as exc:  # swapped for a symlink (ELOOP) or removed since the listing
            self.problem(f"{path}: cannot be opened as a regular file ({exc.strerror})")
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.problem(f"{path}: is not a regular file")
                return
            if st.st_size > limit:
                says = "the limit is" if path in (SUMS_NAME, SIG_NAME) else "the manifest says"
                self.problem(f"{path}: size is {st.st_size} bytes, {says} {limit}")
                return
            out = os.open(self.dest / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
            try:
                copied = 0
                while copied <= limit:
                    chunk = os.read(fd, min(_CHUNK, limit + 1 - copied))
                    if not chunk:
                        break
                    copied += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
            finally:
                os.close(out)
            if copied > limit:
                self.problem(f"{path}: grew past the {limit} bytes the manifest lists while it was read")
            self.copied.add(path)
        finally:
            os.close(fd)


def snapshot_dir(src: Path, dest: Path) -> Manifest:
    """Copy the directory bundle ``src`` into the new private directory ``dest``; the manifest read first.

    Raises VerificationError listing what is wrong (symlinks, unlisted or oversized files)
    before anything is installed, UnsafeArchiveError when the manifest asks for more than
    the configured limits, EnvironmentProblem when the copy would not fit; the copy itself
    still has to be verified.
    """
    try:
        root_fd = os.open(src, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise ManifestError(f"cannot open the bundle directory {src}: {exc.strerror}") from None
    try:
        manifest, data = read_manifest_nofollow(root_fd, str(src))
        total = check_manifest_limits(manifest, src, bundle_limits())
        free = shutil.disk_usage(dest.parent).free
        if total + len(data) + MAX_SUMS > free:
            raise EnvironmentProblem(f"not enough space in {dest.parent} for a private copy of {src} "
                                     f"({total} bytes; {free} free)",
                                     hint="free space there, or point TMPDIR at a larger file system")
        dest.mkdir(mode=0o700)
        (dest / MANIFEST_NAME).write_bytes(data)  # the very bytes that were parsed
        copier = _Copier(src, dest, manifest)
        try:
            copier.walk(root_fd, "")
        except OSError as exc:
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise EnvironmentProblem(f"no space left for a private copy of {src} in {dest.parent}",
                                         hint="free space there, or point TMPDIR at a larger file system") from None
            raise
    finally:
        os.close(root_fd)
    if copier.problems:
        if copier.more:
            copier.problems.append(f"... and {copier.more} more problem(s)")
        raise VerificationError(f"{src} failed verification; nothing was installed", copier.problems,
                                hint="copy the bundle again from its source; do not edit bundles by hand")
    return manifest
