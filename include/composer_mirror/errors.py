"""Exceptions raised by composer-s3-mirror; each carries what an operator needs to act."""

from __future__ import annotations

import re

REDACTED = "<redacted>"
# The scheme of an absolute URL, then its user info: up to the last "@" before the host's end.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#]*@")
# A query (to whitespace or "#") or a fragment (to whitespace) glued to the text before it.
_QUERY_OR_FRAGMENT = re.compile(r"(?<=\S)([?#])([^\s#]*)")


def redact_text(text: str) -> str:
    """Mask what URLs carry secrets in, wherever they sit in free text: user info, query values, fragments.

    The HTTP stack names URLs in its exception texts in forms no URL parser is handed
    ("Max retries exceeded with url: /a.zip?token=..."), so this works on the text, not on a
    parsed URL. Query keys stay (they say what was masked); values run to whitespace, so a
    quoted URL loses its closing quote too: this masks a little too much rather than too little.
    """
    return _QUERY_OR_FRAGMENT.sub(_mask, _USERINFO.sub(r"\1", text))


def _mask(match: re.Match[str]) -> str:
    mark, rest = match.groups()
    if not rest:
        return mark
    if mark == "#":
        return "#" + REDACTED
    return "?" + "&".join(_mask_parameter(parameter) for parameter in rest.split("&"))


def _mask_parameter(parameter: str) -> str:
    key, equals, _value = parameter.partition("=")
    if not equals:  # a bare "?token" is all value
        return REDACTED if key else ""
    return f"{key}={REDACTED}"


class MirrorError(Exception):
    """Base class of every error the mirror raises on purpose."""


class SettingsError(MirrorError):
    """A setting (Airflow Variable or Connection) is missing or invalid."""


class InvalidPackageName(MirrorError):
    """A package name does not follow Composer's naming rules (untrusted input)."""


class InvalidVersion(MirrorError):
    """A version or constraint string cannot be parsed the way Composer parses it."""


class TargetError(MirrorError):
    """A selection entry, PURL or SBOM cannot be turned into mirror targets."""


class UpstreamError(MirrorError):
    """An upstream request failed for good (after retries, or with a permanent status).

    Its text reaches logs, XCom, status.json and the bucket, and often quotes the HTTP stack's
    own exception text: it is redacted here, so no call site can forget to.
    """

    def __init__(self, message: str, *, url: str = "", status: int | None = None, attempts: int = 0):
        super().__init__(redact_text(message))
        self.url = redact_text(url)
        self.status = status
        self.attempts = attempts


class RefusedURL(UpstreamError):
    """A URL (or a redirect hop) is not allowed by the fetch policy and was never requested."""


class ArchiveError(MirrorError):
    """A downloaded archive is invalid: not a zip, too large, or its checksum does not match."""


class StoreError(MirrorError):
    """An S3 operation failed after the store's own handling."""


class ConflictError(StoreError):
    """A conditional write lost a race with another writer (compare-and-swap failed)."""
