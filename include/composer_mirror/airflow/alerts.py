"""Alerts through the notifier the Variable composer_mirror_notifier names (see :mod:`composer_mirror.alerts`).

Every DAG reports a failed run with :func:`alert_on_failure`; the freshness check reports a stale
repository with :func:`send_alert`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Variable

from composer_mirror import alerts
from composer_mirror.settings import NOTIFIER_VARIABLE

logger = logging.getLogger(__name__)


def send_alert(airflow_context: Mapping[str, Any], message: str) -> bool:
    """Send ``message`` through the notifier the Variable composer_mirror_notifier names; True when sent.

    The setting is read now, at alert time (never at parse time), so changing it needs no DAG edit.
    Without it, nothing is sent. Nothing here raises: a broken setting or a failing notifier is
    logged as an error naming the Variable, and whatever failure the alert was about stays failed.
    The message is logged either way, and given to the notifier as ``mirror_alert`` in the context
    for its templated fields (``{"text": "{{ mirror_alert }}"}``).
    """
    logger.warning("alert: %s", message)
    try:
        spec = alerts.NotifierSpec.parse(Variable.get(NOTIFIER_VARIABLE, default=None))
        if spec is None:
            logger.info("no notifier configured (Airflow Variable %s): alert only logged", NOTIFIER_VARIABLE)
            return False
        spec.build()(_notifier_context(airflow_context, message))
    except Exception:
        logger.exception("could not send the alert through the notifier in the Airflow Variable %s", NOTIFIER_VARIABLE)
        return False
    return True


def _notifier_context(airflow_context: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The context for the notifier: Airflow's, plus the message under ``mirror_alert``.

    `airflow dags test` hands DAG callbacks its serialized DAG, on which a notifier's template
    rendering fails (no ``get_template_env``); without a "dag" it renders with Airflow's default
    environment instead. The dag processor, which runs the callbacks of real runs, and every task
    hand over the DAG itself, which is kept.
    """
    notifier_context = {**airflow_context, alerts.MESSAGE_KEY: message}
    if not hasattr(notifier_context.get("dag"), "get_template_env"):
        notifier_context.pop("dag", None)
    return notifier_context


def alert_on_failure(airflow_context: Mapping[str, Any]) -> None:
    """Every DAG's on_failure_callback: a failed run is reported through the configured notifier."""
    ti = airflow_context.get("ti") or airflow_context.get("task_instance")
    message = alerts.run_failed_message(
        airflow_context["dag"].dag_id,
        str(airflow_context.get("run_id")),
        getattr(ti, "task_id", None),
        airflow_context.get("reason"),
    )
    send_alert(airflow_context, message)
