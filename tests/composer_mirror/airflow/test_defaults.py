"""Every task's retry policy: what a retry cannot fix fails at once, an outage is retried with backoff."""

import pytest
from airflow.sdk import RetryAction

from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.errors import (
    InvalidPackageName,
    InvalidVersion,
    SettingsError,
    StoreError,
    TargetError,
    UpstreamError,
)


@pytest.mark.parametrize("error", [SettingsError("x"), TargetError("x"), InvalidPackageName("x"), InvalidVersion("x")])
def test_a_wrong_setting_or_input_fails_the_task_without_retries(error: Exception) -> None:
    decision = DEFAULT_ARGS["retry_policy"].evaluate(error, try_number=1, max_tries=3)
    assert decision.action == RetryAction.FAIL


@pytest.mark.parametrize("error", [StoreError("S3 GET failed (SlowDown)"), UpstreamError("503"), OSError("reset")])
def test_an_outage_is_retried_with_backoff(error: Exception) -> None:
    assert DEFAULT_ARGS["retry_policy"].evaluate(error, try_number=1, max_tries=3).action == RetryAction.DEFAULT
    assert DEFAULT_ARGS["retries"] >= 1 and DEFAULT_ARGS["retry_exponential_backoff"] > 1
