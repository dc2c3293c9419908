"""Every key the mirror writes, in one place: the published repository, and the mirror's own state.

Published (readable by Composer clients; :data:`PUBLIC_PATHS` and :data:`PUBLIC_PREFIXES` list them,
:mod:`composer_mirror.store.bucket_policy` turns them into bucket policies):

- ``packages.json``: the root, written last.
- ``p2/<vendor>/<name>.json`` and ``p2/<vendor>/<name>~dev.json``: tagged versions and branches.
- ``dists/ab/cd/<sha256>.zip``: archives, content-addressed and never rewritten.
- ``index.html``, ``index.json``, ``status.json``: the listing page and the last run's status.

Private (never served; under ``mirror-state/`` and ``sboms/``):

- ``mirror-state/catalog.json``: the mirrored set (names and selectors) and the changes-feed cursor.
- ``mirror-state/packages/<vendor>/<name>.json``: a package's record, every version it publishes
  (metadata as published and archive record) and every withdrawal: the p2 files derive from it.
- ``mirror-state/shards/<xx>.json``: the index of the records used by revalidation (validators,
  published ETags, archive records, summary), 256 shards by a hash of the name.
- ``mirror-state/upstream/<vendor>/<name>[~dev].json``: the last upstream p2 bytes, so a 304 can be acted on.
- ``mirror-state/archives/<vendor>/<name>/<id>.json``: the journal of stored archives.
- ``mirror-state/prune/marks.json``: when prune first saw each unreferenced object.
- ``mirror-state/prune/intents/<key>.json``: prune's intent to delete an object, and writers' claims on
  objects they reuse without writing them (:mod:`composer_mirror.deletion`).
- ``mirror-state/runs/<run id>.json``: run reports.
- ``mirror-state/handoff/<dag id>/<run id>/``: values too large for XCom between a run's tasks.
- ``sboms/``: SBOMs uploaded through the UI plugin.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from composer_mirror.composer_format import DEV_SUFFIX, is_valid_package_name, validate_package_name
from composer_mirror.errors import ArchiveError

ROOT = "packages.json"
P2_DIR = "p2/"
ARCHIVE_DIR = "dists/"
INDEX_HTML = "index.html"
INDEX_JSON = "index.json"
STATUS_JSON = "status.json"
SBOM_DIR = "sboms/"
STATE_DIR = "mirror-state"
CATALOG = f"{STATE_DIR}/catalog.json"
RECORD_DIR = f"{STATE_DIR}/packages/"
SHARD_DIR = f"{STATE_DIR}/shards/"
MARKER_DIR = f"{STATE_DIR}/archives/"
PRUNE_MARKS = f"{STATE_DIR}/prune/marks.json"
INTENT_DIR = f"{STATE_DIR}/prune/intents/"


def intent_path(path: str) -> str:
    """Where prune's intent to delete ``path`` (or a writer's claim on it) lives."""
    return f"{INTENT_DIR}{path}.json"


def intent_target(path: str) -> str | None:
    """The object an intent key is about; None for any other key."""
    if not path.startswith(INTENT_DIR) or not path.endswith(".json"):
        return None
    return path[len(INTENT_DIR) : -len(".json")] or None


# What anonymous readers may GET: the repository and its listing page, nothing of the state or SBOMs.
PUBLIC_PATHS = (ROOT, INDEX_HTML, INDEX_JSON, STATUS_JSON)
PUBLIC_PREFIXES = (P2_DIR, ARCHIVE_DIR)
# Which file a version lives in, by the suffix of its p2 key: tags in "", branches in "~dev".
FILE_SUFFIXES = ("", DEV_SUFFIX)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SHARD_RE = re.compile(rf"{re.escape(SHARD_DIR)}([0-9a-f]{{2}})\.json")
_MARKER_RE = re.compile(rf"{re.escape(MARKER_DIR)}(.+)/([0-9a-f]{{40}})\.json")
# A dist URL on the mirror ends with the archive's key, whatever public URL it was published under.
_ARCHIVE_URL_RE = re.compile(r"/(dists/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})\.zip)$")


def key_prefix(prefix: str) -> str:
    """The prefix setting as written in front of every key: empty, or ending with one slash.

    ``repo``, ``repo/`` and ``/repo/`` all mean the same keys; the store and the bucket policies
    must agree on them, or a policy would grant paths the mirror never writes.
    """
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def is_public(path: str) -> bool:
    """True for keys a Composer client or the listing page reads; everything else stays private."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


# --- the published repository -----------------------------------------------------------------
def p2_path(name: str, dev: bool = False) -> str:
    """Relative path of a package file, e.g. ``p2/psr/log~dev.json``."""
    validate_package_name(name)
    return f"{P2_DIR}{name}{DEV_SUFFIX if dev else ''}.json"


def p2_name(path: str) -> str | None:
    """The package a p2 key belongs to, when it is exactly a key the publisher writes."""
    name = path.removeprefix(P2_DIR).removesuffix(".json").removesuffix(DEV_SUFFIX)
    if not is_valid_package_name(name):
        return None
    return name if path in (p2_path(name), p2_path(name, dev=True)) else None


def archive_path(sha256: str) -> str:
    """Content-addressed, hash-sharded key: ``dists/ab/cd/<sha256>.zip``."""
    if not isinstance(sha256, str) or _SHA256_RE.fullmatch(sha256) is None:
        raise ArchiveError(f"not a sha256 digest: {sha256!r}")
    return f"{ARCHIVE_DIR}{sha256[:2]}/{sha256[2:4]}/{sha256}.zip"


def is_archive_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].removesuffix(".zip")
    return _SHA256_RE.fullmatch(name) is not None and archive_path(name) == path


def archive_path_of_url(url: str) -> str | None:
    """The store path (``dists/ab/cd/<sha256>.zip``) a mirrored dist URL points at, or None."""
    match = _ARCHIVE_URL_RE.search(urlsplit(url).path)
    return archive_path(match.group(2)) if match else None


# --- the mirror's state -----------------------------------------------------------------------
def record_path(name: str) -> str:
    """A package's record: the source every p2 file of the package is derived from."""
    validate_package_name(name)
    return f"{RECORD_DIR}{name}.json"


def record_name(path: str) -> str | None:
    """The package a record key belongs to, when it is exactly a key the mirror writes."""
    name = path.removeprefix(RECORD_DIR).removesuffix(".json")
    return name if is_valid_package_name(name) and path == record_path(name) else None


def shard_of(name: str) -> str:
    """Two hex digits of the name's hash: spreads packages evenly over 256 shards."""
    return hashlib.sha1(name.encode()).hexdigest()[:2]


def shard_path(shard: str) -> str:
    return f"{SHARD_DIR}{shard}.json"


def shard_of_path(path: str) -> str | None:
    match = _SHARD_RE.fullmatch(path)
    return match.group(1) if match else None


def upstream_cache_path(name: str, dev: bool) -> str:
    validate_package_name(name)
    return f"{STATE_DIR}/upstream/{name}{DEV_SUFFIX if dev else ''}.json"


def archive_marker_prefix(name: str) -> str:
    validate_package_name(name)
    return f"{MARKER_DIR}{name}/"


def archive_id(version_normalized: str, reference: str) -> str:
    """A key-safe identity for (version, reference): both are untrusted strings."""
    return hashlib.sha1(f"{version_normalized}\n{reference}".encode()).hexdigest()


def archive_marker_path(name: str, version_normalized: str, reference: str) -> str:
    return f"{archive_marker_prefix(name)}{archive_id(version_normalized, reference)}.json"


def is_marker_path(path: str) -> bool:
    match = _MARKER_RE.fullmatch(path)
    return bool(match and is_valid_package_name(match.group(1)))


def key_segment(text: str) -> str:
    """A run or DAG id as one object-key segment: ``/`` and ``:`` would nest or need escaping."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in text)


def run_report_path(run_id: str) -> str:
    return f"{STATE_DIR}/runs/{key_segment(run_id)}.json"


def handoff_dir(dag_id: str, run_id: str | None = None) -> str:
    """Where a DAG's runs (or one run) hand values to their next tasks."""
    run = f"{key_segment(run_id)}/" if run_id is not None else ""
    return f"{STATE_DIR}/handoff/{key_segment(dag_id)}/{run}"
