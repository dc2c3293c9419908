"""Sending an alert: through the notifier the Variable names, with the message; never raising."""

import json
import logging
from typing import Any, ClassVar

import pytest

from composer_mirror.airflow.alerts import send_alert


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
