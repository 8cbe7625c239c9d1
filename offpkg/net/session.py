"""The one HTTP session factory, and one GET with retries.

Every HTTP request offpkg makes (bundle, lock, ``mirror test``, CUDA lookups, fleet
uploads) uses a session from :func:`make_session`, so all of them agree behind a
corporate proxy:

- **CA bundle**: ``PIP_CERT``, then ``REQUESTS_CA_BUNDLE``, then ``SSL_CERT_FILE``
  (the first that names an existing file), else certifi's.
- **Proxies**: ``PIP_PROXY`` (pip's own variable, for every URL, as pip uses it), else
  ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` from the environment (requests' ``trust_env``).
- **Credentials**: a URL's userinfo (``user:pass@``, and ``token@`` / ``token:@``,
  which requests would drop silently) is sent as basic auth on *every* request, by
  whichever caller; without userinfo, ``~/.netrc`` (or ``$NETRC``) is used. No keyring.
- **Redaction**: every secret in a requested URL is registered (:mod:`offpkg.redact`)
  and urllib3's debug log is filtered, so no text or log shows it.
- **Retries**: :func:`get` retries connection errors, timeouts and :data:`RETRY_STATUS`
  answers with jittered exponential backoff; a 4xx other than 429 is an answer.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from ..errors import NetworkError
from ..redact import redact_text, redact_url, register_secret, secrets_in_url

# PEP 691 JSON first, PEP 503 HTML as a fallback.
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

# Server errors worth a retry (and then another mirror); 4xx other than 429 are answers.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527})

DEFAULT_TIMEOUT = 30.0


class IndexUnavailable(NetworkError):
    """An index could not be reached or failed (connection error, timeout, 5xx): a mirror may help."""


def register_url_secrets(url: str) -> bool:
    """Remember the secrets of ``url`` (userinfo, tokens, signatures) so no text or log shows them.

    True when it had any. A URL with neither ``@`` nor ``?`` has no userinfo and no query: nothing to find.
    """
    if "@" not in url and "?" not in url:
        return False
    found = secrets_in_url(url)
    for secret in found:
        register_secret(secret)
    return bool(found)


def url_auth(url: str) -> tuple[str, str] | None:
    """HTTP basic auth from the URL's userinfo, ``token@`` and ``token:@`` included.

    requests drops a userinfo without a password (``token@host``) silently; pip
    and uv send it as the user name with an empty password, and so does offpkg.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


class _RedactLogs(logging.Filter):
    """urllib3's debug log prints request lines (``GET /simple/x/?token=...``): redact them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call is not ours to fix
            return True
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_LOG_FILTER = _RedactLogs()


def redact_library_logs() -> None:
    """Put the redacting filter on the loggers of the HTTP stack (filters do not propagate)."""
    for name in ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.response",
                 "urllib3.util.retry", "urllib3.poolmanager", "requests"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def ca_bundle() -> str | None:
    """The CA bundle file the environment names (pip's variable first), or None for certifi's."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        cert = os.environ.get(var)
        if cert and os.path.exists(cert):
            return cert
    return None


class Session(requests.Session):
    """A requests session that sends a URL's userinfo as credentials and registers its secrets."""

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = url.decode() if isinstance(url, bytes) else url
        register_url_secrets(url)  # a presigned URL's signature must not reach a debug log
        if kwargs.get("auth") is None:
            kwargs["auth"] = url_auth(url)  # None: requests falls back to ~/.netrc
        if isinstance(self.verify, str) and kwargs.get("verify") is None:
            # Per request: requests would otherwise let REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE win over PIP_CERT.
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)


def make_session(pool: int = 16, *, user_agent: str | None = None) -> Session:
    """A session with the machine's CA bundle, proxies, URL/netrc credentials and a pool of ``pool``."""
    s = Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    from .. import __version__

    s.headers["User-Agent"] = user_agent or f"offpkg/{__version__}"
    cert = ca_bundle()
    if cert:
        s.verify = cert
    s.trust_env = True  # proxies from the environment, netrc
    proxy = os.environ.get("PIP_PROXY")
    if proxy:  # what pip behind the same proxy uses; register it: a proxy URL may carry a password
        register_url_secrets(proxy)
        s.proxies = {"http": proxy, "https": proxy}
    redact_library_logs()
    return s


_shared: Session | None = None


def shared_session() -> Session:
    """One process-wide session for callers that have none of their own (connection reuse)."""
    global _shared
    if _shared is None:
        _shared = make_session()
    return _shared


def describe(exc: BaseException, timeout: float | None = None) -> str:
    """A short, redacted reason for a failed request (naming ``timeout`` for a timeout, when given)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out" + (f" after {timeout:g} s" if timeout else "")
    if isinstance(exc, requests.Timeout) or "Read timed out" in text:
        return f"no data for {timeout:g} s (read timed out)" if timeout else "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return redact_text("TLS error: " + str(exc)[-160:])
    if isinstance(exc, requests.exceptions.ProxyError):
        return redact_text("proxy error: " + str(exc)[-160:])
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text \
            or "RemoteDisconnected" in text or "Connection broken" in text:
        return "connection closed mid-response"
    if any(s in text for s in ("NameResolution", "Name or service not known", "nodename nor servname",
                               "getaddrinfo failed", "Temporary failure in name resolution")):
        return "cannot resolve host"
    if "Connection refused" in text:
        return "connection refused"
    if "reset" in text.lower():
        return "connection reset"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return redact_text(text[:200])


def read_capped(resp: requests.Response, cap: int, deadline: float) -> tuple[bytes, float | None, bool]:
    """Read a streamed body up to ``cap`` bytes: (data, ``perf_counter`` at the first byte, whether
    it was cut). ``ReadTimeout`` when it is still coming at ``deadline`` (``perf_counter`` time)."""
    chunks: list[bytes] = []
    size = 0
    first: float | None = None
    for chunk in resp.iter_content(64 * 1024):
        if first is None:
            first = time.perf_counter()
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            return b"".join(chunks)[:cap], first, True
        if time.perf_counter() > deadline:
            raise requests.exceptions.ReadTimeout("slower than the deadline overall")
    return b"".join(chunks), first, False


def request(method: str, url: str, *, session: requests.Session | None = None,
            headers: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 2,
            backoff: float = 0.25, stream: bool = False, what: str | None = None,
            data: bytes | None = None) -> requests.Response:
    """One HTTP request with retries; the final response (any status that is not retried).

    Connection errors, timeouts and :data:`RETRY_STATUS` answers are retried ``retries`` times
    (``data`` is bytes, so a retried upload sends the same body); after that
    :class:`IndexUnavailable` (a :class:`~offpkg.errors.NetworkError`) names ``what`` (default:
    the redacted URL) and the last problem. The caller closes a streamed response.
    """
    s = session or shared_session()
    attempt = 0
    while True:
        try:
            r = s.request(method, url, headers=headers, timeout=timeout, stream=stream, data=data)
        except requests.RequestException as exc:
            problem = describe(exc)
        else:
            if r.status_code not in RETRY_STATUS:
                return r
            problem = f"HTTP {r.status_code}"
            r.close()
        attempt += 1
        if attempt > retries:
            raise IndexUnavailable(f"cannot reach {what or redact_url(url)}: {problem}",
                                   hint="check the network and proxy settings (HTTPS_PROXY, PIP_CERT), "
                                        "or choose another mirror (`offpkg mirror test`)")
        time.sleep(min(8.0, backoff * 2 ** (attempt - 1)) * (0.5 + random.random()))


def get(url: str, *, session: requests.Session | None = None, headers: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT, retries: int = 2, backoff: float = 0.25,
        stream: bool = False, what: str | None = None) -> requests.Response:
    """GET ``url`` with retries (see :func:`request`)."""
    return request("GET", url, session=session, headers=headers, timeout=timeout, retries=retries,
                   backoff=backoff, stream=stream, what=what)
