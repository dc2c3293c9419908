"""Verification: walk the published repository as a client does and check every byte against the state.

The walk reads ``packages.json``, then both p2 files of every package in ``available-packages``,
then every archive a p2 file points at, all through the S3 store (not the CDN), and compares
each with what ``mirror-state/shards`` recorded when it was mirrored: the p2 files' ETags, each
version's dist, each archive's size and its sha1 and sha256. Problems are records that add up
across mapped batches.

An archive's digests come from a HEAD: the sync stores each archive with the digests it computed
from the downloaded bytes as object metadata (:func:`~composer_mirror.archives.digest_metadata`),
so an unchanged archive costs one HEAD, not a GET of hundreds of MB. An archive stored before
that carries none: it is streamed and hashed (never held in memory) and, when it matches, given
its digests by a server-side copy onto itself, so it is hashed once. ``deep`` hashes every
archive, which also catches bytes changed behind S3's API with their metadata left in place.

``repair`` restores what can be restored without inventing anything (:mod:`.repair`).

- :mod:`.problems`: the problem kinds, :class:`Problem`, :class:`VerifyResult` and the kept :class:`VerifyReport`.
- :mod:`.checks`: reading and comparing the root, each package and each archive.
- :mod:`.repair`: everything verify writes.
- :mod:`.batch`: the DAG's tasks (list the root's packages as a :class:`Listing`, plan batches, verify one batch).
- :mod:`.report`: the run's report, logged and kept.

Another check (a signed log, say) joins as a module beside :mod:`.checks`, called from :mod:`.batch`.
"""

from composer_mirror.verify.batch import Listing, list_packages, plan_verify_batches, verify_batch
from composer_mirror.verify.checks import ArchiveCheck, ArchiveRef, PackageCheck, hash_object, read_root
from composer_mirror.verify.problems import (
    ARCHIVE_KINDS,
    COUNTS,
    P2_KINDS,
    RACY_KINDS,
    Problem,
    VerifyReport,
    VerifyResult,
    merge_all,
)
from composer_mirror.verify.repair import rebuild_p2
from composer_mirror.verify.report import finish, log_summary

__all__ = [
    "ARCHIVE_KINDS",
    "COUNTS",
    "P2_KINDS",
    "RACY_KINDS",
    "ArchiveCheck",
    "ArchiveRef",
    "Listing",
    "PackageCheck",
    "Problem",
    "VerifyReport",
    "VerifyResult",
    "finish",
    "hash_object",
    "list_packages",
    "log_summary",
    "merge_all",
    "plan_verify_batches",
    "read_root",
    "rebuild_p2",
    "verify_batch",
]
