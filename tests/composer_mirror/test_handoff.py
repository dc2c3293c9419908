"""Hand-offs between tasks: small values stay inline, large ones go through the bucket and are cleared."""

from __future__ import annotations

import pytest

from composer_mirror.errors import StoreError
from composer_mirror.handoff import clear, hand_off, receive
from composer_mirror.state import dumps
from composer_mirror.store import S3Store
from composer_mirror.store.layout import handoff_dir

RUN = handoff_dir("composer_mirror_sync", "manual__2026-11-29T12:00:00+00:00")
LIMIT = 32 * 1024


def large_manifest(packages: int = 2000) -> dict:
    return {"index": 3, "unchanged": [f"vendor{i // 50}/package-{i}" for i in range(packages)]}


def stored(store: S3Store) -> list[str]:
    return sorted(info.path for info in store.list_objects(""))


def test_a_small_value_stays_in_xcom_and_writes_nothing(store: S3Store) -> None:
    ref = hand_off(store, RUN, "plan", {"targets": {"a/b": ["*"]}}, LIMIT, index=0)
    assert ref == {"index": 0, "value": {"targets": {"a/b": ["*"]}}}
    assert receive(store, ref) == {"targets": {"a/b": ["*"]}}
    assert stored(store) == []


def test_a_large_value_goes_through_the_bucket_and_xcom_keeps_only_its_key(store: S3Store) -> None:
    manifest = large_manifest()
    assert len(dumps(manifest)) > LIMIT
    ref = hand_off(store, RUN, "manifest-3", manifest, LIMIT, index=3, label="a .. z (2000)")
    assert ref["index"] == 3 and ref["label"] == "a .. z (2000)" and "value" not in ref
    # The run id becomes one key segment (no ':' or nesting), under the DAG's hand-off directory.
    assert (
        ref["handoff"] == "mirror-state/handoff/composer_mirror_sync/manual__2026-11-29T12_00_00+00_00/manifest-3.json"
    )
    assert len(dumps(ref)) < 300
    assert stored(store) == [ref["handoff"]]
    assert receive(store, ref) == manifest


def test_clear_deletes_every_run_of_the_dag_and_nothing_else(store: S3Store) -> None:
    earlier = handoff_dir("composer_mirror_sync", "scheduled__2026-11-28T17:17:00+00:00")
    refs = [hand_off(store, directory, "plan", large_manifest(), LIMIT) for directory in (RUN, earlier)]
    other_dag = hand_off(store, handoff_dir("composer_mirror_sbom", "manual__1"), "plan", {}, 0)
    store.put("mirror-state/catalog.json", b"{}")

    assert clear(store, "composer_mirror_sync") == 2
    assert stored(store) == sorted([other_dag["handoff"], "mirror-state/catalog.json"])
    with pytest.raises(StoreError, match="start a new run"):  # a retried task of the cleared run says why
        receive(store, refs[0])
