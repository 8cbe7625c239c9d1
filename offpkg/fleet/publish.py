"""Publish a bundle's wheels to a PyPI-compatible server (pypiserver, devpi, Artifactory, Nexus).

The upload itself is twine's (its library: ``twine.settings.Settings`` and
``twine.commands.upload.upload``), so the legacy upload API is not written here again.
Before uploading, the server's simple page of each project is read through offpkg's
network layer: a file already there with the same sha256 is skipped. (twine's own
``--skip-existing`` is not used: twine allows it only for the servers it knows by name.) A file there with the
same name but another hash is an error: the server would keep serving the other bytes,
and ``pip install --require-hashes -r requirements.txt`` on the nodes would fail.

Nodes then install with plain pip or uv:
``pip install --index-url URL/simple --require-hashes -r requirements.txt`` (from the bundle).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError, NetworkError, UsageError, VerificationError
from ..redact import register_secret


@dataclass
class PublishResult:
    url: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0


def _simple_url(upload_url: str) -> str:
    """pypiserver and devpi serve /simple/ beside the upload endpoint (its root)."""
    return upload_url.rstrip("/") + "/simple/"


def publish(bundle: Path, url: str, *, simple_url: str | None = None, username: str | None = None,
            password: str | None = None) -> PublishResult:
    """Verify the bundle, then upload each of its wheels that the server lacks."""
    from ..install import opened_bundle
    from ..net.index import IndexClient
    from ..verify import verify_bundle

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--to {url!r} is not an http(s) URL", hint="e.g. --to http://pypi.internal:8080/")
    username = username or os.environ.get("OFFPKG_PUBLISH_USERNAME") or os.environ.get("TWINE_USERNAME")
    password = password or os.environ.get("OFFPKG_PUBLISH_PASSWORD") or os.environ.get("TWINE_PASSWORD")
    if password:
        register_secret(password)
    report = verify_bundle(bundle)
    if not report.ok:
        raise VerificationError(f"{bundle} does not verify; nothing is published", problems=report.problems)
    result = PublishResult(url)
    with opened_bundle(bundle) as d:
        manifest = report.manifest
        assert manifest is not None
        wheels = [p for p in manifest.requirement_packages]
        simple = simple_url or _simple_url(url)
        client = IndexClient([simple], timeout=30)
        present: dict[str, str | None] = {}
        for name in sorted({p.name for p in wheels}):
            try:
                for f in client.files(name):
                    # Only files the server itself holds: pypiserver, devpi and Nexus may redirect
                    # a project they lack to an upstream index, whose copy is not this server's.
                    if urlsplit(f.url).netloc == urlsplit(simple).netloc:
                        present[f.filename] = f.sha256
            except InputError:
                continue  # the project is not on the server yet
            except NetworkError as exc:
                if "404" not in exc.message:
                    raise
        todo: list[Path] = []
        for p in wheels:
            if p.filename in present:
                if present[p.filename] not in (None, p.sha256):
                    raise VerificationError(
                        f"{url} already has {p.filename} with sha256 {present[p.filename]}, not the bundle's {p.sha256}",
                        hint="remove it from the server (or publish to another index); nodes installing with "
                             "--require-hashes would refuse the server's copy")
                result.skipped.append(p.filename)
            else:
                todo.append(d / p.path)
        if todo:
            _twine_upload(todo, url, username, password)
            result.uploaded = [t.name for t in todo]
            result.uploaded_bytes = sum(t.stat().st_size for t in todo)
    return result


def _twine_upload(files: list[Path], url: str, username: str | None, password: str | None) -> None:
    import requests
    from twine import exceptions as twine_exc
    from twine.commands.upload import upload
    from twine.settings import Settings

    # An open server (pypiserver -a . -P .) takes any name: twine still asks for one.
    settings = Settings(repository_url=url, username=username or "offpkg", password=password or "",
                        non_interactive=True, disable_progress_bar=True, verbose=False)
    out = io.StringIO()
    # twine reports through rich on stdout and logging: keep it off offpkg's own output
    # (it would break --json); it is replayed in the error when the upload fails.
    logging.getLogger("twine").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            upload(settings, [str(f) for f in files])
    except twine_exc.TwineException as exc:
        raise NetworkError(f"uploading to {url} failed: {exc}", details=out.getvalue()[-2000:] or None,
                           hint="check the URL and the credentials (OFFPKG_PUBLISH_USERNAME/_PASSWORD)") from None
    except requests.RequestException as exc:  # HTTP errors and connection errors come through twine
        status = getattr(getattr(exc, "response", None), "status_code", None)
        what = f"HTTP {status}" if status else type(exc).__name__
        raise NetworkError(f"uploading to {url} failed ({what})", details=out.getvalue()[-2000:] or None,
                           hint="check the URL and the credentials (OFFPKG_PUBLISH_USERNAME/_PASSWORD)") from None
