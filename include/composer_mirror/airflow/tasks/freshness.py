"""The task of ``composer_mirror_freshness``: judge the age of the published status.json, alert when stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from composer_mirror import freshness
from composer_mirror.airflow.alerts import send_alert
from composer_mirror.airflow.handoffs import in_context


@task(execution_timeout=timedelta(minutes=5))  # one GET; a hung one must not outlast the next run
def check_freshness() -> str:
    """Judge status.json's age; when stale (or unreadable), alert and fail without retries."""
    verdict = in_context(lambda ctx: freshness.check(ctx.store, datetime.now(UTC), ctx.settings.max_age_hours))
    if not verdict.fresh:
        send_alert(get_current_context(), verdict.message)
        raise AirflowFailException(verdict.message)  # a retry minutes later would say the same
    return verdict.message
