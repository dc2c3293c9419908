"""What a running task learns from Airflow: its DAG and run, the run's type, how many batches fit.

Every function here needs a task's context (or Airflow's configuration), so each is called inside a
task body, never while a DAG file is parsed.
"""

from __future__ import annotations

from airflow.configuration import conf
from airflow.sdk import get_current_context


def run_ids() -> tuple[str, str]:
    """The current task's DAG id and run id."""
    context = get_current_context()
    return context["dag"].dag_id, str(context["run_id"])


def current_run_id() -> str:
    return run_ids()[1]


def run_type() -> str:
    """The current run's type as Airflow names it: ``scheduled``, ``manual``, ``backfill``, ``asset_triggered``."""
    kind = get_current_context()["dag_run"].run_type
    return str(kind.value)  # the enum's str() is "DagRunType.SCHEDULED", its value "scheduled"


def label_batch(label: str) -> None:
    """Expose the batch's range to ``map_index_template`` so the UI shows it per mapped task."""
    get_current_context()["batch_label"] = label  # type: ignore[typeddict-unknown-key]


def batch_slots(max_batches: int) -> int:
    """How many batches are worth planning: the setting, capped by what Airflow runs side by side.

    More mapped instances than ``[core] parallelism`` would only queue behind each other. The same
    rule holds under `airflow dags test`, which runs one task at a time: a caller that wants one
    batch there (the tests, the benchmark) sets composer_mirror_max_batches to 1.
    """
    return max(1, min(max_batches, conf.getint("core", "parallelism", fallback=32)))
