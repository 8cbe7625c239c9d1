"""Self-extracting bundles: one ``.sh`` file that verifies itself and installs offline.

Layout of the file::

    #!/bin/sh header (templates/selfextract.sh) with the payload's offset, size, sha256
    __OFFPKG_PAYLOAD_BELOW__
    <a plain, reproducible tar of the bundle directory>

On the target, ``sh stack.sh --venv DIR`` needs only python3 (which the bundle's
install.sh needs anyway): the header checks the payload's size and sha256, unpacks
it with python's tarfile under its own member checks (regular files and
directories only; no absolute or ``..`` names) into a temp dir, runs the bundle's
install.sh (SHA256SUMS + manifest verification, then the offline install) and
removes the temp dir. Python rather than ``tar`` does the unpacking so that the
checks do not depend on which tar the host has.

offpkg itself reads these files like any other archive: ``archive.payload_offset``
finds the tar after the marker line (see :func:`read_header` for the header's own
numbers, which :func:`check_payload` compares against the file). :func:`check_header`
compares the whole header byte for byte with the one offpkg renders for that payload,
since the header is the one part of the file that no hash or signature covers.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .archive import PAYLOAD_MARKER, payload_offset, write_tar
from .errors import InputError
from .hashing import sha256_file

TEMPLATE = "selfextract.sh"
_FIELDS = ("PAYLOAD_OFFSET", "PAYLOAD_SIZE", "PAYLOAD_SHA256")
_MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class PayloadInfo:
    """What a self-extracting file's header says about its payload."""

    offset: int
    size: int
    sha256: str


def _template() -> str:
    from ._templates import read_template

    return read_template(TEMPLATE)


def render_header(offset: int, size: int, sha256: str) -> bytes:
    """The shell header with the payload's numbers filled in, ending with the marker line."""
    text = (_template().replace("@OFFPKG_VERSION@", __version__)
            .replace("@PAYLOAD_OFFSET@", str(offset))
            .replace("@PAYLOAD_SIZE@", str(size))
            .replace("@PAYLOAD_SHA256@", sha256))
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8") + PAYLOAD_MARKER


def build_header(size: int, sha256: str) -> bytes:
    """The header whose stated offset equals its own length (a fixed point: digits may grow)."""
    offset = 0
    for _ in range(8):
        header = render_header(offset, size, sha256)
        if len(header) == offset:
            return header
        offset = len(header)
    raise AssertionError("self-extracting header length did not settle")  # pragma: no cover


def write_self_extracting(stage_dir: Path, out_file: Path, *, mtime: int | None = None) -> PayloadInfo:
    """Write ``out_file``: the shell header, the marker line, then a plain tar of ``stage_dir``.

    The tar is reproducible (archive.write_tar: sorted, fixed mtimes from
    SOURCE_DATE_EPOCH, owners 0/0), and so is the header, so the same bundle gives
    a byte-identical file. Written to a temporary sibling and renamed into place.
    """
    stage_dir, out_file = Path(stage_dir), Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_tar = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".payload.tar", dir=out_file.parent)
    os.close(fd)
    fd, tmp_out = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".partial", dir=out_file.parent)
    os.close(fd)
    try:
        write_tar(stage_dir, Path(tmp_tar), mtime=mtime)
        digest, size = sha256_file(Path(tmp_tar))
        header = build_header(size, digest)
        with open(tmp_out, "wb") as dst, open(tmp_tar, "rb") as src:
            dst.write(header)
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp_out, 0o755)
        # The reader's view must agree with the header's: the marker is found where we put it.
        found = payload_offset(Path(tmp_out))
        if found != len(header):
            raise AssertionError(f"payload marker found at {found}, header says {len(header)}")  # pragma: no cover
        os.replace(tmp_out, out_file)
    finally:
        for p in (tmp_tar, tmp_out):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    return PayloadInfo(len(header), size, digest)


def read_header(path: Path) -> PayloadInfo:
    """The payload offset, size and sha256 written in a self-extracting file's header."""
    path = Path(path)
    offset = payload_offset(path)
    if offset > _MAX_HEADER:
        raise InputError(f"{path}: the self-extracting header is implausibly long ({offset} bytes)")
    with open(path, "rb") as f:
        head = f.read(offset).decode("utf-8", errors="replace")
    values: dict[str, str] = {}
    for name in _FIELDS:
        m = re.search(rf"^OFFPKG_{name}=(\S+)$", head, re.MULTILINE)
        if not m:
            raise InputError(f"{path} has no OFFPKG_{name} line in its header: not a self-extracting offpkg bundle",
                             hint="was it written by `offpkg bundle -o NAME.sh`?")
        values[name] = m.group(1)
    if not (values["PAYLOAD_OFFSET"].isdigit() and values["PAYLOAD_SIZE"].isdigit()
            and re.fullmatch(r"[0-9a-f]{64}", values["PAYLOAD_SHA256"])):
        raise InputError(f"{path}: the self-extracting header is malformed (offset, size or sha256)")
    return PayloadInfo(int(values["PAYLOAD_OFFSET"]), int(values["PAYLOAD_SIZE"]), values["PAYLOAD_SHA256"])


def check_payload(path: Path) -> list[str]:
    """Problems with a self-extracting file's payload against its own header (empty when intact).

    This is exactly what the shell header checks on the target before unpacking.
    """
    path = Path(path)
    info = read_header(path)
    problems: list[str] = []
    marker_at = payload_offset(path)
    if info.offset != marker_at:
        problems.append(f"header says the payload starts at byte {info.offset}, the marker line ends at {marker_at}")
        return problems
    actual = path.stat().st_size
    if actual != info.offset + info.size:
        problems.append(f"file is {actual} bytes, the header says {info.offset + info.size}"
                        + (" (truncated)" if actual < info.offset + info.size else ""))
        return problems
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(info.offset)
        left = info.size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != info.sha256:
        problems.append(f"payload sha256 is {h.hexdigest()}, the header says {info.sha256}")
    return problems


def check_header(path: Path) -> list[str]:
    """Problems with a self-extracting file's shell header (empty when it is exactly offpkg's own).

    The header is the code ``sh FILE`` runs, and it lies outside the payload, the
    manifest and the signature; so it must be, byte for byte, the header this offpkg
    renders for that payload. A bundle written by another offpkg version may differ
    only because its template did: the message says so.
    """
    path = Path(path)
    try:
        info = read_header(path)
    except InputError as exc:
        return [exc.message]
    with open(path, "rb") as f:
        head = f.read(info.offset + 1)[: info.offset]
    want = build_header(info.size, info.sha256)
    if head == want:
        return []
    line = next((i for i, (a, b) in enumerate(zip(head.splitlines(), want.splitlines()), 1) if a != b),
                min(len(head.splitlines()), len(want.splitlines())) + 1)
    m = re.search(rb"written by offpkg ([0-9A-Za-z.+!_-]{1,40})\)", head[:4096])
    other = m.group(1).decode() if m else None
    why = (f"; it says it was written by offpkg {other}, this is {__version__}: verify it with that version"
           if other and other != __version__ else "")
    return [f"the self-extracting header is not the one offpkg {__version__} writes for this payload "
            f"(it differs at line {line}): `sh {path.name}` would run code that no check covers{why}"]
