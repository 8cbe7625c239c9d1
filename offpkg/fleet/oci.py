"""A small client for OCI registries (the distribution spec), on offpkg's network layer.

Only what bundles need: check, upload and download blobs by digest, put and get one
image manifest. Why not oras-py: its downloads are not digest-checked while streaming
and do not resume, it keeps its own session (so it would not share offpkg's CA bundle,
proxies, redaction and retries), and it would add a dependency for ~200 lines of HTTP
(docs/fleet.md).

Auth follows the registry's ``WWW-Authenticate`` challenge: Basic, or Bearer (a token
from the realm, asked with the user's credentials). Credentials come from the
environment (``OFFPKG_REGISTRY_USERNAME``/``OFFPKG_REGISTRY_PASSWORD``) or the user's
Docker config (``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``, ``auths``);
they are registered with offpkg's redaction and never printed, logged or written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

from ..errors import InputError, NetworkError, UsageError, VerificationError
from ..redact import register_secret

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CHUNK = 1 << 20
# A registry's answer we parse as JSON (a manifest, a token) is small; bound it.
MAX_JSON = 16 << 20


@dataclass(frozen=True)
class Reference:
    """``oci://HOST[:PORT]/REPO[:TAG|@sha256:...]``."""

    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> Reference:
        m = re.fullmatch(r"oci://([A-Za-z0-9.-]+(?::\d+)?)/([a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                         r"(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127})|@(sha256:[0-9a-f]{64}))?", ref)
        if not m:
            raise UsageError(f"{ref!r} is not an OCI reference",
                             hint="write oci://REGISTRY/REPOSITORY:TAG, e.g. oci://registry.example:5000/ml/gpu-stack:2026-12")
        return cls(m.group(1), m.group(2), m.group(3) or m.group(4) or "latest")

    def __str__(self) -> str:
        sep = "@" if self.tag.startswith("sha256:") else ":"
        return f"oci://{self.registry}/{self.repository}{sep}{self.tag}"


def _docker_config_auth(registry: str) -> tuple[str, str] | None:
    d = os.environ.get("DOCKER_CONFIG")
    path = Path(d) / "config.json" if d else Path.home() / ".docker" / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the Docker config {path}: {exc}",
                         hint="fix the file, or pass credentials in OFFPKG_REGISTRY_USERNAME/OFFPKG_REGISTRY_PASSWORD") from None
    auths = cfg.get("auths") or {}
    for key in (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"the Docker config {path} has an unreadable auth entry for {registry}") from None
            return user, pw
        if entry.get("username"):
            return entry["username"], entry.get("password") or ""
    if (cfg.get("credHelpers") or {}).get(registry) or cfg.get("credsStore"):
        raise InputError(f"the Docker config {path} keeps the credentials for {registry} in a credential helper, "
                         "which offpkg does not run",
                         hint="pass them in OFFPKG_REGISTRY_USERNAME and OFFPKG_REGISTRY_PASSWORD")
    return None


def credentials(registry: str) -> tuple[str, str] | None:
    user = os.environ.get("OFFPKG_REGISTRY_USERNAME")
    if user:
        creds = (user, os.environ.get("OFFPKG_REGISTRY_PASSWORD", ""))
    else:
        creds = _docker_config_auth(registry)
    if creds and creds[1]:
        register_secret(creds[1])
        register_secret(base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode())
    return creds


class Registry:
    """One repository on one registry. ``plain_http`` for registries without TLS (e.g. on loopback)."""

    def __init__(self, ref: Reference, *, plain_http: bool = False, session: Any = None, timeout: float = 60) -> None:
        from ..net.index import make_session

        self.ref = ref
        self.base = f"{'http' if plain_http else 'https'}://{ref.registry}/v2/{ref.repository}/"
        self.session = session or make_session(8)
        self.timeout = timeout
        self._auth: str | None = None  # the Authorization header that worked
        self._creds = credentials(ref.registry)

    # ------------------------------------------------------------------ HTTP with auth
    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
                **kw: Any) -> Any:
        import requests

        url = urljoin(self.base, url)
        for attempt in (0, 1):
            h = dict(headers or {})
            if self._auth:
                h["Authorization"] = self._auth
            try:
                r = self.session.request(method, url, headers=h, timeout=self.timeout, allow_redirects=True, **kw)
            except requests.RequestException as exc:
                raise NetworkError(f"cannot reach the registry {self.ref.registry}: {type(exc).__name__}",
                                   hint="check the address and that the registry runs; add --plain-http for one "
                                        "without TLS") from None
            if r.status_code == 401 and attempt == 0 and self._authenticate(r):
                r.close()
                continue
            if r.status_code not in ok:
                detail = _error_text(r)
                r.close()
                if r.status_code in (401, 403):
                    raise NetworkError(f"the registry {self.ref.registry} refused access to {self.ref.repository} "
                                       f"(HTTP {r.status_code}){detail}",
                                       hint="log in (docker login) or set OFFPKG_REGISTRY_USERNAME/_PASSWORD")
                raise NetworkError(f"{method} {self.ref.repository}: the registry answered HTTP {r.status_code}{detail}")
            return r
        raise NetworkError(f"the registry {self.ref.registry} asked for credentials it did not accept")

    def _authenticate(self, r: Any) -> bool:
        challenge = r.headers.get("WWW-Authenticate", "")
        scheme, _, params = challenge.partition(" ")
        if self._creds is None and scheme.lower() != "bearer":
            return False
        if scheme.lower() == "basic":
            token = base64.b64encode(f"{self._creds[0]}:{self._creds[1]}".encode()).decode()  # type: ignore[index]
            self._auth = f"Basic {token}"
            return True
        if scheme.lower() == "bearer":
            p = dict(re.findall(r'(\w+)="([^"]*)"', params))
            if "realm" not in p:
                return False
            q = {k: p[k] for k in ("service", "scope") if k in p}
            q.setdefault("scope", f"repository:{self.ref.repository}:pull,push")
            auth = tuple(self._creds) if self._creds else None
            try:
                t = self.session.get(p["realm"] + "?" + urlencode(q), auth=auth, timeout=self.timeout)
            except Exception:  # noqa: BLE001 - any failure here is a refused login
                return False
            if t.status_code != 200 or len(t.content) > MAX_JSON:
                return False
            try:
                body = t.json()
            except ValueError:
                return False
            token = body.get("token") or body.get("access_token")
            if not isinstance(token, str):
                return False
            register_secret(token)
            self._auth = f"Bearer {token}"
            return True
        return False

    # ------------------------------------------------------------------ blobs
    def has_blob(self, digest: str) -> bool:
        r = self.request("HEAD", f"blobs/{digest}", ok=(200, 404))
        r.close()
        return r.status_code == 200

    def put_blob(self, digest: str, size: int, path: Path) -> None:
        """Monolithic upload (POST for a session, PUT with the digest): the registry checks the digest.

        The file object is streamed with its Content-Length (a generator would go chunked,
        which registries handle unevenly).
        """
        r = self.request("POST", "blobs/uploads/", ok=(202,), headers={"Content-Length": "0"})
        loc = r.headers.get("Location")
        r.close()
        if not loc:
            raise NetworkError(f"the registry {self.ref.registry} started an upload without a Location")
        url = urljoin(self.base, loc)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        with open(path, "rb") as body:
            r = self.request("PUT", url, ok=(201,), data=body, headers={"Content-Type": "application/octet-stream"})
        r.close()

    def get_blob(self, digest: str, dest: Path, size: int) -> int:
        """Download a blob to ``dest``, resuming a partial file; the digest is checked while streaming.

        Returns the bytes transferred now. A mismatch removes the file and raises.
        """
        have = dest.stat().st_size if dest.exists() else 0
        h = hashlib.sha256()
        if have > size:
            dest.unlink()
            have = 0
        if have:
            with open(dest, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        headers = {"Range": f"bytes={have}-"} if have else {}
        got = 0
        if have < size:
            import requests

            r = self.request("GET", f"blobs/{digest}", headers=headers, ok=(200, 206), stream=True)
            try:
                with r:
                    if r.status_code == 200 and have:  # the registry ignored Range: start again
                        have, h = 0, hashlib.sha256()
                    with open(dest, "ab" if have else "wb") as out:
                        for chunk in r.iter_content(CHUNK):
                            if have + got + len(chunk) > size:
                                raise VerificationError(f"blob {digest} is larger than the {size} bytes listed")
                            out.write(chunk)
                            h.update(chunk)
                            got += len(chunk)
            except requests.RequestException as exc:
                raise NetworkError(f"the download of blob {digest} from {self.ref.registry} broke off "
                                   f"({type(exc).__name__}) after {have + got} of {size} bytes",
                                   hint="run the same command again: it resumes from there") from None
        if "sha256:" + h.hexdigest() != digest or dest.stat().st_size != size:
            dest.unlink(missing_ok=True)
            raise VerificationError(f"blob {digest} from {self.ref.registry} does not match its digest",
                                    hint="the registry's copy is corrupt or was tampered with; it was not used")
        return got

    # ------------------------------------------------------------------ manifests
    def put_manifest(self, body: bytes, tag: str) -> None:
        r = self.request("PUT", f"manifests/{tag}", data=body, ok=(201,), headers={"Content-Type": MANIFEST_TYPE})
        r.close()

    def get_manifest(self, tag: str) -> tuple[dict, str]:
        """The manifest and its digest (checked when the reference names a digest)."""
        r = self.request("GET", f"manifests/{tag}", headers={"Accept": MANIFEST_TYPE}, ok=(200, 404), stream=True)
        with r:
            if r.status_code == 404:
                raise InputError(f"{self.ref} does not exist on the registry",
                                 hint="check the repository and tag (offpkg push creates them)")
            body = r.raw.read(MAX_JSON + 1, decode_content=True)
        if len(body) > MAX_JSON:
            raise VerificationError(f"the manifest of {self.ref} is larger than {MAX_JSON} bytes")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if tag.startswith("sha256:") and digest != tag:
            raise VerificationError(f"the manifest of {self.ref} does not match its digest")
        try:
            data = json.loads(body)
        except ValueError:
            raise VerificationError(f"the manifest of {self.ref} is not JSON") from None
        if not isinstance(data, dict):
            raise VerificationError(f"the manifest of {self.ref} is not a JSON object")
        return data, digest


def _error_text(r: Any) -> str:
    try:
        errs = r.json().get("errors") or []
        msg = "; ".join(str(e.get("message") or e.get("code")) for e in errs if isinstance(e, dict))
        return f": {msg[:200]}" if msg else ""
    except Exception:  # noqa: BLE001 - the body is only a detail
        return ""
