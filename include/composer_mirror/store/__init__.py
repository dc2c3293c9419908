"""The store: a storage contract (:mod:`.base`), its S3 and in-memory backends, and the key layout.

Modules above this package type against :class:`Store` and use :func:`compare_and_swap` for every
shared object; only the adapter builds a concrete backend.
"""

from composer_mirror.store.base import (
    ARCHIVE_CACHE,
    CAS_ATTEMPTS,
    JSON,
    METADATA_CACHE,
    MULTIPART_THRESHOLD,
    ROOT_CACHE,
    STATE_CACHE,
    ZIP,
    ObjectInfo,
    Put,
    PutOptions,
    Store,
    StoredObject,
    Swapped,
    compare_and_swap,
    md5_etag,
    safe_key_part,
)
from composer_mirror.store.s3 import S3Store

__all__ = [
    "ARCHIVE_CACHE",
    "CAS_ATTEMPTS",
    "JSON",
    "METADATA_CACHE",
    "MULTIPART_THRESHOLD",
    "ROOT_CACHE",
    "STATE_CACHE",
    "ZIP",
    "ObjectInfo",
    "Put",
    "PutOptions",
    "S3Store",
    "Store",
    "StoredObject",
    "Swapped",
    "compare_and_swap",
    "md5_etag",
    "safe_key_part",
]
