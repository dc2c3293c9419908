"""Resolving the notifier setting: parsed, imported and built only when an alert is sent."""

from __future__ import annotations

from typing import Any

import pytest

from composer_mirror.alerts import NotifierSpec, run_failed_message
from composer_mirror.errors import SettingsError


class Recorder:
    """A notifier stand-in: built from keyword arguments, called with the context."""

    calls: list[tuple[dict[str, Any], Any]] = []

    def __init__(self, channel: str, mention: bool = False) -> None:
        self.kwargs = {"channel": channel, "mention": mention}

    def __call__(self, context: Any) -> None:
        Recorder.calls.append((self.kwargs, context))


NotCallable = object
RECORDER = f"{__name__}.Recorder"


@pytest.mark.parametrize("raw", [None, "", "  \n"])
def test_no_setting_means_no_notifier(raw: str | None) -> None:
    assert NotifierSpec.parse(raw) is None


def test_a_spec_names_the_class_and_its_keyword_arguments() -> None:
    spec = NotifierSpec.parse(f'{{"class": " {RECORDER} ", "kwargs": {{"channel": "#ops", "mention": true}}}}')
    assert spec == NotifierSpec(RECORDER, {"channel": "#ops", "mention": True})
    assert NotifierSpec.parse(f'{{"class": "{RECORDER}"}}') == NotifierSpec(RECORDER, {})


def test_the_built_notifier_is_an_instance_made_with_the_kwargs_and_called_with_the_context() -> None:
    Recorder.calls.clear()
    notifier = NotifierSpec(RECORDER, {"channel": "#ops"}).build()
    notifier({"mirror_alert": "hello"})
    assert Recorder.calls == [({"channel": "#ops", "mention": False}, {"mirror_alert": "hello"})]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{class: x}", "is not JSON"),
        ('["a.B"]', "must be a JSON object"),
        ('{"class": "a.B", "args": []}', "must be a JSON object"),
        ('{"kwargs": {}}', '"class" must be the dotted path'),
        ('{"class": "SmtpNotifier"}', '"class" must be the dotted path'),
        ('{"class": 42}', '"class" must be the dotted path'),
        ('{"class": "a.B", "kwargs": ["to"]}', '"kwargs" must be a JSON object'),
    ],
)
def test_a_malformed_setting_is_refused_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"composer_mirror_notifier.*{message}"):
        NotifierSpec.parse(raw)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (NotifierSpec("no_such_provider.notifications.Notifier"), "cannot import no_such_provider.notifications"),
        (NotifierSpec(f"{__name__}.Missing"), "cannot import .*Missing.*is its provider installed"),
        (NotifierSpec(RECORDER, {"channel": "#ops", "colour": "red"}), r"\(\*\*\['channel', 'colour'\]\) failed"),
        (NotifierSpec(RECORDER), "missing 1 required positional argument: 'channel'"),
        (NotifierSpec(f"{__name__}.NotCallable"), "is not a notifier"),
    ],
)
def test_a_notifier_that_cannot_be_built_is_named_in_the_error(spec: NotifierSpec, message: str) -> None:
    with pytest.raises(SettingsError, match=f"composer_mirror_notifier: .*{message}"):
        spec.build()


def test_the_run_failed_message_names_the_dag_the_run_and_the_task() -> None:
    assert (
        run_failed_message("composer_mirror_sync", "scheduled__1", "report", "task_failure")
        == "composer_mirror_sync: run scheduled__1 failed, task report (task_failure)"
    )
    assert run_failed_message("d", "r", None, None) == "d: run r failed (failed)"
