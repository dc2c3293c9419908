"""The sync DAG's batch planning: the settings decide how many batches, and nothing to do is one empty batch."""

from types import SimpleNamespace

import pytest

from composer_mirror.airflow.tasks.sync import planned_batches
from composer_mirror.settings import Settings
from composer_mirror.sync.records import Plan


def context(max_batches: int) -> SimpleNamespace:
    """A task's context as batch planning reads it: the settings alone (it touches no store or upstream)."""
    return SimpleNamespace(
        settings=Settings(bucket="mirror-bucket", public_url="https://mirror.example", max_batches=max_batches)
    )


def plan_of(count: int) -> dict:
    return Plan({f"vendor{i % 7}/pkg{i}": ["*"] for i in range(count)}).to_json()


def test_a_large_plan_gets_the_batches_the_setting_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "32")
    batches = planned_batches(context(3), plan_of(900))  # type: ignore[arg-type]
    assert [b.index for b in batches] == [0, 1, 2]
    assert sum(len(b.packages) for b in batches) == 900
    assert len(planned_batches(context(1), plan_of(900))) == 1  # type: ignore[arg-type]


def test_nothing_to_do_is_one_empty_batch_in_every_run() -> None:
    [batch] = planned_batches(context(4), Plan({}).to_json())  # type: ignore[arg-type]
    assert (batch.index, batch.packages) == (0, {})
    assert batch.label == "(nothing to do)"
