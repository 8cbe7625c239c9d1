"""Authenticity: OpenSSH signatures of a bundle's manifest and the trust anchor that checks them.

- :mod:`.sshsig`: make and check sshsig signatures with ``ssh-keygen -Y`` (why: see that module);
- :mod:`.check`: :func:`check_trust`, a bundle's signatures against an allowed_signers file;
- :mod:`.sign`: :func:`sign_bundle`, add a signature to a directory or archive bundle;
- :mod:`.tools`: the rules for the bundle's tools/ (offpkg never runs them).

The trust anchor comes from ``--trust FILE``, else the ``OFFPKG_TRUST`` environment
variable or the ``trust`` config key; when one is set, a bundle must carry a valid
signature by one of its signers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .check import TrustReport, check_trust
from .sign import SignResult, sign_bundle, sign_dir
from .sshsig import NAMESPACE, SIG_NAME

__all__ = ["NAMESPACE", "SIG_NAME", "SignResult", "TrustReport", "check_trust", "resolve_anchor", "sign_bundle",
           "sign_dir"]


def resolve_anchor(option: str | None, cfg: Any = None) -> Path | None:
    """The trust anchor: ``--trust`` first, then OFFPKG_TRUST / the ``trust`` config key (``cfg``)."""
    if option:
        return Path(option)
    value = cfg.get("trust") if cfg is not None else None
    return Path(value) if value else None
