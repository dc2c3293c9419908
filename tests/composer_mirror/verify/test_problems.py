"""Problems and batch results: they add up across batches and survive XCom."""

from __future__ import annotations

import json

from composer_mirror import verify
from composer_mirror.verify import Problem, VerifyResult


def test_batch_results_add_up_and_survive_xcom() -> None:
    one = VerifyResult(packages=2, archives=3, problems=[Problem("a/b", "1.0", "missing_archive", "gone")])
    two = VerifyResult(
        packages=1, archive_bytes=10, archives_hashed=1, repaired=[Problem("c/d", "", "missing_p2", "gone")]
    )
    total = verify.merge_all([one, two])
    assert (total.packages, total.archives, total.archive_bytes, total.archives_hashed) == (3, 3, 10, 1)
    assert total.counts_by_kind() == {"missing_archive": 1}
    assert not total.ok
    assert VerifyResult.from_json(json.loads(json.dumps(total.to_json()))) == total
