"""Keep credentials out of everything offpkg shows or writes.

A URL can carry a secret in its userinfo (``user:pass@``, ``token@``, ``token:@``)
or in its query string (``?token=``, signed-URL signatures). :func:`redact_url`
replaces each with ``****``; :func:`redact_text` does the same for every URL found
in free text (tool output, exception messages) and for secrets registered at run
time with :func:`register_secret`.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"

# Query keys whose values are secrets: tokens, keys and the signatures of
# presigned S3 / GCS / Azure URLs.
_SECRET_QUERY = re.compile(
    r"(token|key|secret|password|passwd|pwd|auth|sig|signature|credential|session|"
    r"x-amz-[a-z-]+|x-goog-[a-z-]+|se|sp|sv|sr|skoid|sktid|skt|ske|sks|skv)$",
    re.IGNORECASE,
)
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (e.g. a password taken from a URL) so text never shows it."""
    if value and len(value) >= 3 and value != MASK:
        with _lock:
            _secrets.add(value)


def secrets_in_url(url: str) -> list[str]:
    """The secret parts of ``url``: userinfo and secret-looking query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        # user:pass@ -> the password is the secret; token@ and token:@ -> the token is.
        found += [password] if password else ([user] if user else [])
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if v and _SECRET_QUERY.match(k):
            found.append(v)
    return found


def redact_url(url: str) -> str:
    """``https://user:tok@host/p?token=x`` -> ``https://****@host/p?token=****``."""
    for s in secrets_in_url(url):
        register_secret(s)
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_QUERY.match(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _SECRET_QUERY.match(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def strip_credentials(url: str) -> str:
    """The URL with userinfo and secret query values removed (for manifests)."""
    for s in secrets_in_url(url):
        register_secret(s)
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SECRET_QUERY.match(k)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs), parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URL in ``text`` and every registered secret."""
    if not text:
        return text
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, MASK)
        # URL-encoded forms of the secret show up in tool output too.
        from urllib.parse import quote

        q = quote(s, safe="")
        if q != s:
            text = text.replace(q, MASK)
    return text
