"""A real Airflow notifier for tests: appends each notification to a file, as JSON lines.

Named by the Variable composer_mirror_notifier (``tests.dags.recording_notifier.RecordingNotifier``)
in `airflow dags test` runs, so the mirror's alerts go through Airflow's own notifier machinery:
the class is imported, instantiated with the setting's kwargs, its templated field rendered
against the context (``{{ mirror_alert }}``), then called.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    """Appends ``{"run_id", "message"}`` to ``path`` for every notification."""

    template_fields = ("message",)

    def __init__(self, path: str, message: str = "{{ mirror_alert }}") -> None:
        super().__init__()
        self.path = path
        self.message = message

    def notify(self, context: Any) -> None:
        record = {"run_id": str(context["run_id"]), "message": self.message}
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def read_notifications(path: Any) -> list[dict[str, str]]:
    """What the notifier recorded, in order (nothing when it was never called)."""
    try:
        with open(path, encoding="utf-8") as recorded:
            return [json.loads(line) for line in recorded]
    except FileNotFoundError:
        return []
