"""What verify finds: problems, and the counts and problems of a batch, which add up across batches.

Problem kinds:

- ``missing_root``, ``bad_root``: ``packages.json`` is absent or is not a usable v2 root.
- ``missing_p2``, ``bad_json``: a p2 file is absent, or is not a p2 file of its package.
- ``p2_mismatch``: a p2 file's ETag differs from the one the mirror recorded when publishing it.
- ``not_in_state``: a published package or version has no record in the mirror's state.
- ``dist_mismatch``: a version's dist (URL, reference, shasum) is not the recorded archive.
- ``missing_archive``, ``size_mismatch``, ``sha1_mismatch``, ``sha256_mismatch``: the archive a
  client would download is absent or differs from the recorded one.
- ``nothing_published``: the root lists a package whose every version was withdrawn (a writer
  adding it back raced the withdrawal); ``repair`` takes it out of the root, by the write rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.json_record import JsonRecord

ARCHIVE_KINDS = frozenset({"missing_archive", "size_mismatch", "sha1_mismatch", "sha256_mismatch"})
P2_KINDS = frozenset({"missing_p2", "bad_json", "p2_mismatch"})
# Problems a sync running at the same time can cause for an instant (it writes p2 files before
# the state that records them): a package showing one is read a second time before it counts.
RACY_KINDS = frozenset({"p2_mismatch", "not_in_state", "dist_mismatch"})

COUNTS = ("packages", "p2_files", "versions", "archives", "archive_bytes", "archives_hashed")


@dataclass(frozen=True)
class Problem(JsonRecord):
    """One thing a client would trip over, or that no longer matches the mirror's records.

    ``version`` is the version string, or for a problem with a whole p2 file the file ('' or '~dev').
    """

    package: str
    version: str
    kind: str
    detail: str

    def annotated(self, failure: str) -> Problem:
        """The problem, with why repairing it failed."""
        return Problem(self.package, self.version, self.kind, f"{self.detail}; {failure}")


@dataclass(frozen=True)
class VerifyResult(JsonRecord):
    """Counts and problems of one batch; results of many batches add up with :meth:`merge`.

    Its JSON is what a mapped task returns through XCom.
    """

    packages: int = 0
    # Both files of a package are read; a package without branches may lack its ~dev file.
    p2_files: int = 0
    versions: int = 0
    # Distinct archives (versions may share one), checked by a HEAD each, and their stored bytes.
    archives: int = 0
    archive_bytes: int = 0
    # Archives read and hashed (their digests were not in their metadata, or ``deep``): one GET each.
    archives_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: VerifyResult) -> VerifyResult:
        return VerifyResult(
            **{key: getattr(self, key) + getattr(other, key) for key in COUNTS},
            problems=[*self.problems, *other.problems],
            repaired=[*self.repaired, *other.repaired],
        )

    def counts_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))


@dataclass(frozen=True)
class VerifyReport(JsonRecord):
    """A verify run's report as kept in ``mirror-state/runs/``: the batches' total, and the run's own.

    Its JSON is flat: the total's fields beside its problems counted by kind, whether the run
    repaired, and its run id; hence its own ``to_json``/``from_json``.
    """

    total: VerifyResult
    repair: bool
    run_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "counts_by_kind": self.total.counts_by_kind(),
            "repair": self.repair,
            "run_id": self.run_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerifyReport:
        return cls(VerifyResult.from_json(data), bool(data.get("repair")), str(data.get("run_id", "")))


def merge_all(results: Iterable[VerifyResult]) -> VerifyResult:
    total = VerifyResult()
    for result in results:
        total = total.merge(result)
    return total
