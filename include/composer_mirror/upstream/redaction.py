"""What of a URL, or of an error about one, may be logged: the origin and the path, never a secret.

Tokens travel in user info and query strings, and the HTTP stack repeats a URL, query and all,
in its own exception texts. Everything the client logs, reports or raises about a URL goes
through :func:`redact` (a URL it parsed) or :func:`describe` (an exception's text, through
:func:`~composer_mirror.errors.redact_text`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

from composer_mirror.errors import redact_text


def redact(url: str) -> str:
    """Drop user info and query strings (tokens hide there) before a URL is logged or reported."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
    except ValueError:  # untrusted input Python cannot parse ("http://[::1/"): never echoed
        return "<invalid URL>"
    if ":" in netloc:  # an IPv6 literal keeps its brackets
        netloc = f"[{netloc}]"
    port = explicit_port(parts)
    if port and port > 0:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def explicit_port(parts: SplitResult) -> int | None:
    """The URL's explicit port, None without one, -1 when it is not a valid port (untrusted input)."""
    try:
        return parts.port
    except ValueError:
        return -1


def describe(exc: Exception | None) -> str:
    """An exception for a log line or an error message; urllib3 names the URL in its text, query included."""
    return f"{type(exc).__name__}: {redact_text(str(exc))}" if exc else "unknown error"
