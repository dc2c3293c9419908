"""Which notifier alerts go to, from one setting: a class by its dotted path and its keyword arguments.

Operators choose where failures and staleness are reported (SMTP, Slack, their own notifier)
without editing DAG files: the Variable ``composer_mirror_notifier`` holds
``{"class": "package.module.Notifier", "kwargs": {...}}``. The class is imported and
instantiated when an alert is sent, never at DAG parse time, so a notifier whose provider is not
installed breaks alerts only (with a message naming it), never the DAGs.

Nothing here imports Airflow: any callable taking the Airflow context qualifies, which is what an
Airflow notifier instance is.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.errors import SettingsError
from composer_mirror.settings import NOTIFIER_VARIABLE

# The context key holding the alert's one-line text, for the notifier's templated fields:
# e.g. {"text": "{{ mirror_alert }}"} for Slack, {"subject": "{{ mirror_alert }}", ...} for SMTP.
MESSAGE_KEY = "mirror_alert"


@dataclass(frozen=True)
class NotifierSpec:
    """The notifier a setting names: its class's dotted path and the keyword arguments to build it with."""

    class_path: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> NotifierSpec | None:
        """The spec in the setting's raw value; None when it is unset or blank (alerts are off)."""
        if raw is None or not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{NOTIFIER_VARIABLE} is not JSON: {exc}") from exc
        if not isinstance(value, dict) or set(value) - {"class", "kwargs"}:
            raise SettingsError(
                f'{NOTIFIER_VARIABLE} must be a JSON object {{"class": "<dotted path>", "kwargs": {{...}}}}, '
                f"got {raw[:120]!r}"
            )
        class_path, kwargs = value.get("class"), value.get("kwargs", {})
        if not isinstance(class_path, str) or "." not in class_path.strip(". "):
            raise SettingsError(
                f'{NOTIFIER_VARIABLE}: "class" must be the dotted path of a notifier class, got {class_path!r}'
            )
        if not isinstance(kwargs, dict):
            raise SettingsError(f'{NOTIFIER_VARIABLE}: "kwargs" must be a JSON object, got {kwargs!r}')
        return cls(class_path.strip(), kwargs)

    def build(self) -> Callable[[Any], Any]:
        """Import the class and instantiate it with the keyword arguments: a callable taking the context."""
        module_name, _, class_name = self.class_path.rpartition(".")
        try:
            notifier_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise SettingsError(
                f"{NOTIFIER_VARIABLE}: cannot import {self.class_path} ({exc}); is its provider installed?"
            ) from exc
        try:
            notifier = notifier_class(**self.kwargs)
        except Exception as exc:  # any constructor error: the kwargs do not fit the class
            raise SettingsError(
                f"{NOTIFIER_VARIABLE}: {self.class_path}(**{sorted(self.kwargs)}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(notifier):
            raise SettingsError(f"{NOTIFIER_VARIABLE}: {self.class_path} is not a notifier (not callable)")
        return notifier


def run_failed_message(dag_id: str, run_id: str, failed_task: str | None, reason: str | None) -> str:
    """The alert for a failed run: which DAG, which run, which task failed last and why it was marked failed."""
    task = f", task {failed_task}" if failed_task else ""
    return f"{dag_id}: run {run_id} failed{task} ({reason or 'failed'})"
