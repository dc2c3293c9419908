"""Exceptions raised by composer-s3-mirror; each carries what an operator needs to act."""

from __future__ import annotations


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
    """An upstream request failed for good (after retries, or with a permanent status)."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.url = url
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
