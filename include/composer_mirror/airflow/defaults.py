"""What every task of the mirror's DAGs shares: its timeout and how it is retried (DEFAULT_ARGS)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from composer_mirror.errors import InvalidPackageName, InvalidVersion, SettingsError, TargetError

# Every task is killed when it runs longer than its execution_timeout (a hung upstream or S3
# connection, a hostile input), then retried, so it never holds a worker slot for hours. LONG_TASK
# (the batch tasks, publish, verify, prune) is about 4x the slowest batch measured (a cold
# 10,000-package mirror in one batch; bench/README.md has the figures): room for a slower machine or
# upstream, and a killed batch loses little, since a retry skips the archives the killed try stored.
# SHORT_TASK is for everything else, which measured well under a minute.
SHORT_TASK = timedelta(minutes=30)
LONG_TASK = timedelta(hours=3)
# A failed task is retried twice: 5 to 10 minutes after the first failure, 10 to 20 after the second
# (exponential backoff; Airflow adds a deterministic jitter of up to the delay again), capped at
# 30 minutes, so a transient outage (S3 throttling, an upstream restart) costs minutes, not a run.
# The first delay is Airflow's own setting, [core] default_task_retry_delay (300 s unless set), so an
# operator (or a test that kills a worker) changes it without editing code; it is read where the DAG
# files are parsed, as every DAG argument is.
RETRIES = 2
RETRY_DELAY = timedelta(seconds=conf.getint("core", "default_task_retry_delay", fallback=300))
MAX_RETRY_DELAY = timedelta(minutes=30)
# What a retry cannot fix fails at once: a setting or an input that is wrong (these errors), and a
# run's verdict (failures after publishing, problems found by verify, a stale repository), which its
# task raises as AirflowFailException.
NOT_RETRIED = (SettingsError, TargetError, InvalidPackageName, InvalidVersion)
DEFAULT_ARGS: dict[str, Any] = {
    "execution_timeout": SHORT_TASK,
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": MAX_RETRY_DELAY,
    "retry_policy": ExceptionRetryPolicy(
        rules=[RetryRule(exception=list(NOT_RETRIED), action=RetryAction.FAIL, reason="a retry cannot fix it")]
    ),
}
