"""User-facing settings: one dataclass, built from plain strings, that validates itself."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from composer_mirror.errors import SettingsError
from composer_mirror.store.layout import key_prefix

DEFAULT_UPSTREAM = "https://repo.packagist.org"
DEFAULT_DIST_HOSTS = (
    "api.github.com",
    "codeload.github.com",
    "gitlab.com",
    "bitbucket.org",
    "api.bitbucket.org",
)
# Airflow Variable names (also settable as AIRFLOW_VAR_<NAME> environment variables).
VARIABLES = {
    "upstream_url": "composer_mirror_upstream_url",
    "bucket": "composer_mirror_bucket",
    "prefix": "composer_mirror_prefix",
    "public_url": "composer_mirror_public_url",
    "packages": "composer_mirror_packages",
    "aws_conn_id": "composer_mirror_aws_conn_id",
    "dist_hosts": "composer_mirror_dist_hosts",
    "max_batches": "composer_mirror_max_batches",
    "concurrency": "composer_mirror_concurrency",
    "max_archive_bytes": "composer_mirror_max_archive_bytes",
    "max_metadata_bytes": "composer_mirror_max_metadata_bytes",
    "prune_grace_hours": "composer_mirror_prune_grace_hours",
    "delete_grace_hours": "composer_mirror_delete_grace_hours",
    "retry_backoff_ms": "composer_mirror_retry_backoff_ms",
    "handoff_inline_bytes": "composer_mirror_handoff_inline_bytes",
    "max_age_hours": "composer_mirror_max_age_hours",
    "prune_scheduled_delete": "composer_mirror_prune_scheduled_delete",
}
# The notifier failure and staleness alerts go to: JSON {"class": "<dotted path>", "kwargs": {...}}
# (see composer_mirror.alerts). Read on its own, not as part of Settings: an alert must still go
# out when the other settings are broken, and a run failing because of them is what it reports.
NOTIFIER_VARIABLE = "composer_mirror_notifier"
INTEGER_SETTINGS = frozenset(
    {"max_batches", "concurrency", "max_archive_bytes", "max_metadata_bytes", "prune_grace_hours", "delete_grace_hours"}
    | {"retry_backoff_ms", "handoff_inline_bytes", "max_age_hours"}
)
BOOLEAN_SETTINGS = frozenset({"prune_scheduled_delete"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, read once per task from Airflow Variables."""

    bucket: str
    public_url: str
    upstream_url: str = DEFAULT_UPSTREAM
    prefix: str = ""
    packages: tuple[str, ...] = ()
    aws_conn_id: str = "aws_default"
    dist_hosts: tuple[str, ...] = DEFAULT_DIST_HOSTS
    # At most this many mapped task instances per mapped task (Airflow's max_map_length is 1024).
    # The default is the composer_upstream pool's slots (deploy/pools.json): no more batches run at
    # once, and each further one only adds a task start-up (about 2 s of a worker under Celery, a pod
    # under Kubernetes) and a state read; measured in bench/README.md, "Under the executor".
    max_batches: int = 4
    # Concurrent requests per upstream host; packagist asks for at most 10.
    concurrency: int = 10
    max_archive_bytes: int = 500 * 1024 * 1024
    max_metadata_bytes: int = 20 * 1024 * 1024
    # Hours an object must stay unreferenced, counted from when prune first found it so, before it is
    # deleted: must exceed the CDN TTL, or a client holding a cached p2 file asks for an archive that is gone.
    prune_grace_hours: int = 48
    # Packages deleted upstream leave the index this long after the delete action (pattern selections only).
    delete_grace_hours: int = 168
    # Base of the exponential backoff between upstream retries (full jitter), in milliseconds.
    retry_backoff_ms: int = 500
    # Values passed between tasks whose JSON is larger go through the bucket, not XCom (0: always).
    handoff_inline_bytes: int = 32 * 1024
    # The freshness check alerts when status.json is older than this: the hourly sync has then
    # missed (or failed before publishing) about five runs in a row, more than a blip upstream.
    max_age_hours: int = 6
    # Scheduled prune runs delete (after the grace period) instead of only marking and logging;
    # manual runs follow their dry_run param whatever this says.
    prune_scheduled_delete: bool = False
    upstream_auth: tuple[str, str] | str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not BUCKET_RE.match(self.bucket or ""):
            raise SettingsError(
                f"composer_mirror_bucket={self.bucket!r} is not a valid S3 bucket name; "
                "set the Airflow Variable composer_mirror_bucket"
            )
        for name in ("upstream_url", "public_url"):
            value = getattr(self, name)
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(f"composer_mirror_{name}={value!r} must be an absolute http(s) URL")
        if ".." in self.prefix.split("/") or self.prefix.startswith("/"):
            raise SettingsError(f"composer_mirror_prefix={self.prefix!r} must be a relative key prefix without '..'")
        if not 1 <= self.max_batches <= 1024:
            raise SettingsError("composer_mirror_max_batches must be between 1 and 1024 (Airflow's max_map_length)")
        if not 1 <= self.concurrency <= 64:
            raise SettingsError("composer_mirror_concurrency must be between 1 and 64")
        for name in ("max_archive_bytes", "max_metadata_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"composer_mirror_{name} must be a positive number of bytes")
        for name in ("retry_backoff_ms", "handoff_inline_bytes"):
            if getattr(self, name) < 0:
                raise SettingsError(f"composer_mirror_{name} must not be negative")
        if self.max_age_hours < 1:
            raise SettingsError("composer_mirror_max_age_hours must be at least 1")

    @property
    def key_prefix(self) -> str:
        """The prefix as written in front of every key: empty, or ending with one slash."""
        return key_prefix(self.prefix)

    @property
    def repository_url(self) -> str:
        """Where clients find ``packages.json``: the public URL without a trailing slash."""
        return self.public_url.rstrip("/")

    @classmethod
    def from_strings(cls, values: Mapping[str, str | None], **extra: object) -> Settings:
        """Build settings from raw Variable values (``None`` or missing means the default)."""
        kwargs: dict[str, object] = {}
        for attr, variable in VARIABLES.items():
            raw = values.get(variable)
            if raw is None or raw == "":
                continue
            kwargs[attr] = _convert(attr, variable, raw)
        if "bucket" not in kwargs:
            raise SettingsError("the Airflow Variable composer_mirror_bucket is required (the mirror's S3 bucket)")
        if "public_url" not in kwargs:
            raise SettingsError(
                "the Airflow Variable composer_mirror_public_url is required: the URL at which "
                "<bucket>/<prefix> is served (a CDN domain, or http://host:port/bucket/prefix)"
            )
        kwargs.update(extra)
        return cls(**kwargs)  # type: ignore[arg-type]


def _convert(attr: str, variable: str, raw: str) -> object:
    """Turn one raw Variable value into its typed form, naming the Variable when it is wrong."""
    if attr in ("packages", "dist_hosts"):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable} must be a JSON list of strings: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise SettingsError(f"{variable} must be a JSON list of strings, got {raw[:80]!r}")
        return tuple(item.strip() for item in value if item.strip())
    if attr in BOOLEAN_SETTINGS:
        try:
            return _BOOLEANS[raw.strip().lower()]
        except KeyError:
            raise SettingsError(f"{variable} must be true or false, got {raw!r}") from None
    if attr in INTEGER_SETTINGS:
        try:
            return int(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable} must be a whole number, got {raw!r}") from exc
    return raw.strip()
