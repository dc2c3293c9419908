"""The adapter's S3 client: the connection's own botocore settings survive, the pool fits the threads."""

import json
import logging
from typing import Any, ClassVar

import pytest
from airflow.sdk import RetryAction

from composer_mirror.airflow_adapter import DEFAULT_ARGS, s3_client, send_alert
from composer_mirror.errors import (
    InvalidPackageName,
    InvalidVersion,
    SettingsError,
    StoreError,
    TargetError,
    UpstreamError,
)


def _connection(monkeypatch: pytest.MonkeyPatch, **config_kwargs: object) -> str:
    extra = {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1", "config_kwargs": config_kwargs}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MIRROR_S3",
        json.dumps({"conn_type": "aws", "login": "key", "password": "secret", "extra": extra}),
    )
    return "mirror_s3"


def test_pool_is_raised_to_the_thread_count_keeping_the_connection_config(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch, connect_timeout=7), threads=40)
    assert client.meta.config.max_pool_connections == 40
    assert client.meta.config.connect_timeout == 7
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


def test_a_larger_pool_from_the_connection_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch, max_pool_connections=100), threads=20)
    assert client.meta.config.max_pool_connections == 100


def test_without_config_kwargs_the_pool_still_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch), threads=24)
    assert client.meta.config.max_pool_connections == 24


@pytest.mark.parametrize("error", [SettingsError("x"), TargetError("x"), InvalidPackageName("x"), InvalidVersion("x")])
def test_a_wrong_setting_or_input_fails_the_task_without_retries(error: Exception) -> None:
    decision = DEFAULT_ARGS["retry_policy"].evaluate(error, try_number=1, max_tries=3)
    assert decision.action == RetryAction.FAIL


@pytest.mark.parametrize("error", [StoreError("S3 GET failed (SlowDown)"), UpstreamError("503"), OSError("reset")])
def test_an_outage_is_retried_with_backoff(error: Exception) -> None:
    assert DEFAULT_ARGS["retry_policy"].evaluate(error, try_number=1, max_tries=3).action == RetryAction.DEFAULT
    assert DEFAULT_ARGS["retries"] >= 1 and DEFAULT_ARGS["retry_exponential_backoff"] > 1


class Recorder:
    """A notifier: records the context it is called with."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, context: dict[str, Any]) -> None:
        Recorder.calls.append({**self.kwargs, **context})


def test_an_alert_goes_to_the_notifier_in_the_variable_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder.calls.clear()
    setting = {"class": f"{__name__}.Recorder", "kwargs": {"to": "ops"}}
    monkeypatch.setenv("AIRFLOW_VAR_COMPOSER_MIRROR_NOTIFIER", json.dumps(setting))
    assert send_alert({"run_id": "r1"}, "stale") is True
    assert Recorder.calls == [{"to": "ops", "run_id": "r1", "mirror_alert": "stale"}]


def test_without_the_variable_an_alert_is_only_logged(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_COMPOSER_MIRROR_NOTIFIER", raising=False)
    with caplog.at_level(logging.INFO):
        assert send_alert({"run_id": "r1"}, "stale") is False
    assert "alert: stale" in caplog.text and "no notifier configured" in caplog.text


@pytest.mark.parametrize(
    "raw", ["{not json", '{"class": "no_such.Notifier"}', json.dumps({"class": f"{__name__}.Boom"})]
)
def test_a_broken_notifier_is_logged_as_an_error_and_never_raises(
    raw: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_COMPOSER_MIRROR_NOTIFIER", raw)
    assert send_alert({"run_id": "r1"}, "stale") is False
    assert (
        "could not send the alert through the notifier in the Airflow Variable composer_mirror_notifier" in caplog.text
    )


class Boom(Recorder):
    def __call__(self, context: dict[str, Any]) -> None:
        raise RuntimeError("SMTP server refused")
