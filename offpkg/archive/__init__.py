"""Archives: safe extraction, deterministic writing, streaming member hashes.

A bundle crosses an air gap and is unpacked as root, so nothing in an archive is
trusted. Every member is checked by our own rules *before* anything is written
(Python's ``filter='data'`` has been bypassed by several CVEs, so it is only an
extra layer here); extraction goes into a private temporary sibling directory that
is renamed onto the destination only when everything succeeded. Data is streamed
(never a whole member in memory).

Supported formats, detected by magic bytes: tar, tar.gz, tar.zst, tar.bz2, tar.xz
and zip. An archive may sit at an offset inside a larger file (a self-extracting
bundle: a shell header, then ``__OFFPKG_PAYLOAD_BELOW__``, then the tar).

The package is split by concept:

- :mod:`.rules`: member-name normalisation and the safety checks (``_Checker``);
- :mod:`.formats`: format detection, decompression, self-extracting payload offsets;
- :mod:`.readers`: tar and zip member readers;
- :mod:`.extract`: :func:`safe_extract`;
- :mod:`.members`: :func:`hash_members` and :func:`read_member`;
- :mod:`.write`: :func:`write_tar`.
"""

from __future__ import annotations

from .extract import safe_extract
from .formats import FORMATS, PAYLOAD_MARKER, detect_format, payload_offset
from .members import each_member, hash_members, read_member
from .rules import display_name
from .write import write_tar

__all__ = [
    "FORMATS",
    "PAYLOAD_MARKER",
    "detect_format",
    "display_name",
    "each_member",
    "hash_members",
    "payload_offset",
    "read_member",
    "safe_extract",
    "write_tar",
]
