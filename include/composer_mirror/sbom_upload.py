"""SBOM uploads from the Airflow UI: validate a file for the page, store it where ``composer_mirror_sbom`` reads it.

The plugin in ``plugins/composer_mirror_sbom_upload.py`` is a thin web layer over this module, which
imports nothing from Airflow (like the rest of the library apart from ``composer_mirror.airflow``):

* :func:`validate` parses an uploaded file with :func:`composer_mirror.sbom.parse_sbom` and returns a
  JSON-ready summary (format, component counts, skip reasons, problems that block mirroring, warnings
  that do not). A malformed file is not an exception here: its parse error is the summary's problem.
* :func:`store` writes a valid SBOM to ``<prefix>sboms/<timestamp>-<sha256[:12]>-<safe filename>`` and
  returns that full key, which is what the DAG's ``sbom_s3_key`` param expects.
* :func:`read_sbom_object` reads such a key back for the DAG, from wherever under the prefix the user
  stored it, but never the mirror's own objects and never more than the SBOM size limit.

Everything about an upload is untrusted: the file name only ever contributes a sanitised last path
segment to the key, and the content is parsed by the same strict parser the DAG uses, with the same
size limit (:data:`composer_mirror.sbom.MAX_SBOM_BYTES`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from composer_mirror import sbom
from composer_mirror.errors import TargetError
from composer_mirror.store import STATE_CACHE, Store
from composer_mirror.store.layout import ARCHIVE_DIR, P2_DIR, SBOM_DIR, STATE_DIR

# The mirror's own objects under the prefix (archives, metadata, state): never an SBOM, and an archive
# can be hundreds of MB, so an sbom_s3_key there is refused without a request.
MIRROR_DIRS = (ARCHIVE_DIR, P2_DIR, f"{STATE_DIR}/")
MAX_FILENAME_CHARS = 80
SAMPLE_SIZE = 10
DEFAULT_FILENAME = "sbom"
# Runs of anything else (dashes included, so they do not pile up) become one dash.
UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._]+")
# S3 user metadata travels in HTTP headers: printable ASCII only.
UNSAFE_METADATA_CHARS = re.compile(r"[^\x20-\x7e]")


def validate(content: bytes | str) -> dict[str, Any]:
    """Summarise an uploaded SBOM for the page; ``valid`` is true when it can be mirrored.

    Keys: ``valid``, ``format`` (``None`` when unreadable), ``components``, ``composer_components``,
    ``unversioned`` (composer components without a version: every stable version is mirrored),
    ``skipped`` (reason -> count), ``sample`` (the first requested packages), ``problems`` (why it
    cannot be mirrored, e.g. the parse error of a malformed file) and ``warnings``.
    """
    summary = _empty_summary(sbom.utf8_size(content))
    try:
        targets = sbom.parse_sbom(content)
    except TargetError as exc:
        summary["problems"].append(str(exc))
        return summary
    summary.update(_describe(targets))
    summary["valid"] = not summary["problems"]
    return summary


def _empty_summary(size: int) -> dict[str, Any]:
    return {
        "valid": False,
        "bytes": size,
        "format": None,
        "components": 0,
        "composer_components": 0,
        "unversioned": 0,
        "skipped": {},
        "sample": [],
        "problems": [],
        "warnings": [],
    }


def _describe(targets: sbom.TargetList) -> dict[str, Any]:
    """The counts of a parsed SBOM, and what about them blocks or deserves a warning."""
    unversioned = [r.name for r in targets.requested if r.version is None]
    problems: list[str] = []
    warnings: list[str] = []
    if not targets.requested:
        problems.append(f"no composer components among its {targets.components} components: nothing to mirror")
    if unversioned:
        warnings.append(
            f"{len(unversioned)} composer components have no version, so every stable version of them is "
            f"mirrored: {', '.join(unversioned[:SAMPLE_SIZE])}{', ...' if len(unversioned) > SAMPLE_SIZE else ''}"
        )
    return {
        "format": targets.format,
        "components": targets.components,
        "composer_components": len(targets.requested),
        "unversioned": len(unversioned),
        "skipped": dict(sorted(targets.skipped.items())),
        "sample": [f"{r.name}@{r.version}" if r.version else r.name for r in targets.requested[:SAMPLE_SIZE]],
        "problems": problems,
        "warnings": warnings,
    }


def safe_filename(filename: str | None) -> str:
    """The last segment of an uploaded file's name, reduced to ``[A-Za-z0-9._-]`` and bounded in length.

    Browsers send a bare name, other clients anything (``../../x``, ``C:\\x``, control characters):
    only the last segment survives, and a name that sanitises to nothing becomes ``sbom``.
    """
    name = re.split(r"[/\\]", filename or "")[-1]
    name = UNSAFE_FILENAME_CHARS.sub("-", name).strip(".-")[-MAX_FILENAME_CHARS:].lstrip(".-")
    return name or DEFAULT_FILENAME


def sbom_path(filename: str | None, content: bytes, now: datetime | None = None) -> str:
    """``sboms/<UTC timestamp>-<sha256[:12]>-<safe filename>``, relative to the mirror's prefix."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(content).hexdigest()[:12]
    return f"{SBOM_DIR}{stamp}-{digest}-{safe_filename(filename)}"


def store(
    store: Store,
    filename: str | None,
    content: bytes,
    *,
    uploaded_by: str | None = None,
    now: datetime | None = None,
) -> str:
    """Store a valid SBOM under the mirror's prefix and return its full key (the DAG's ``sbom_s3_key``).

    An SBOM that :func:`validate` does not accept raises :class:`TargetError` with its problems and
    is not written: the DAG would fail on it anyway, after someone waited for the run.
    """
    summary = validate(content)
    if not summary["valid"]:
        raise TargetError("; ".join(summary["problems"]))
    path = sbom_path(filename, content, now)
    store.put(
        path,
        content,
        content_type=_content_type(summary["format"]),
        cache_control=STATE_CACHE,
        metadata=_metadata(
            {
                "original-filename": filename or "",
                "sha256": hashlib.sha256(content).hexdigest(),
                "sbom-format": summary["format"],
                "uploaded-by": uploaded_by or "",
            }
        ),
    )
    return store.key(path)


def read_sbom_object(store: Store, key: str) -> bytes:
    """The SBOM at ``key`` (the DAG's ``sbom_s3_key``): a full key under the mirror's prefix.

    Keys outside the prefix and the mirror's own objects are refused before any request. The
    object's size is asked first (HEAD), so one over the limit is refused without being read; the
    GET then reads at most one byte more than the limit, since the object may be replaced between
    the two.
    """
    if not key.startswith(store.prefix) or ".." in key.split("/"):
        raise TargetError(f"sbom_s3_key {key!r} must be a key under the mirror prefix {store.prefix!r}")
    path = key[len(store.prefix) :]
    if path.startswith(MIRROR_DIRS):
        raise TargetError(
            f"sbom_s3_key {key!r} is one of the mirror's own objects (archives, metadata, state), not an SBOM; "
            f"uploaded SBOMs are under {store.prefix}{SBOM_DIR}"
        )
    missing = f"sbom_s3_key {key!r} does not exist in bucket {store.bucket}"
    head = store.head(path)
    if head is None:
        raise TargetError(missing)
    sbom.check_size(f"sbom_s3_key {key!r}", head.size)
    limit = sbom.MAX_SBOM_BYTES
    stored = store.get_capped(path, limit + 1)
    if stored is None:
        raise TargetError(missing)
    if len(stored.body) > limit:
        raise TargetError(f"sbom_s3_key {key!r} grew past the limit of {limit} bytes after its size was checked")
    return stored.body


def _content_type(sbom_format: str) -> str:
    if sbom_format.endswith("JSON"):
        return "application/json"
    if sbom_format.endswith("XML"):
        return "application/xml"
    return "text/plain; charset=utf-8"


def _metadata(values: Mapping[str, str]) -> dict[str, str]:
    """S3 user metadata: printable ASCII, bounded, empty values left out."""
    cleaned = {key: UNSAFE_METADATA_CHARS.sub("?", value)[:200] for key, value in values.items()}
    return {key: value for key, value in cleaned.items() if value}
