"""How many batches a run plans: the setting, capped by Airflow's parallelism, whoever runs the tasks."""

import pytest

from composer_mirror.airflow.runtime import batch_slots


@pytest.mark.parametrize(("max_batches", "parallelism", "slots"), [(4, "32", 4), (8, "3", 3), (1, "32", 1)])
def test_batch_slots_are_the_setting_capped_by_parallelism(
    max_batches: int, parallelism: str, slots: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", parallelism)
    assert batch_slots(max_batches) == slots
