"""
### composer_mirror_freshness

Alerts when the published repository stops being refreshed. Every 30 minutes it reads the
mirror's `status.json` (written by every sync run that publishes) and compares its `generated_at`
with the Variable `composer_mirror_max_age_hours` (default 6: five missed hourly syncs in a row).
When the repository is older than that, or `status.json` is missing or unreadable, it sends an
alert through the notifier in the Variable `composer_mirror_notifier` (which time, how old, the
threshold) and fails, so the run is red as well. It alerts again every 30 minutes until a sync
publishes.

Airflow 3 removed SLAs, and its Deadline Alerts time runs that exist; neither notices runs that
never start (paused DAG, scheduler down) or that fail before publishing. This check looks at
what clients get instead, so it replaces the SLA on the sync.

Settings: the `composer_mirror_*` Variables (see the README).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from composer_mirror.airflow.alerts import alert_on_failure
from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.airflow.tasks import freshness


@dag(
    schedule=pendulum.duration(minutes=30),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=alert_on_failure,
    tags=["composer", "mirror", "monitoring"],
    doc_md=__doc__,
)
def composer_mirror_freshness() -> None:
    freshness.check_freshness()


composer_mirror_freshness()
