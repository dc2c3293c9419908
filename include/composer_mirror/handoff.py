"""Values passed between the tasks of a run: inline in XCom when small, through the bucket when large.

XCom is the wrong carrier for a 10,000-package plan or manifest: a value returned by a task is
serialised, sent to the execution API, validated and stored, then fetched and rebuilt the same way
by the next task, each copy costing the task processes memory in proportion to its size (under an
executor the copies land in the API server and the metadata database too). So a value whose JSON
exceeds ``inline_limit`` bytes (the setting ``composer_mirror_handoff_inline_bytes``, 32 KiB by
default) is written once to ``mirror-state/handoff/<dag>/<run>/<name>.json`` and the XCom carries
its path, plus the few fields a task needs before reading it (a batch's index and label for the UI).

The run's last task deletes its DAG's hand-offs with :func:`clear`: the run's own, and any left by
earlier runs that failed on the way (every mirroring DAG has ``max_active_runs=1``, so no other run
of the DAG is using them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.errors import StoreError
from composer_mirror.json_record import OPTIONAL, JsonRecord
from composer_mirror.state import dumps
from composer_mirror.store import STATE_CACHE, Store
from composer_mirror.store.layout import handoff_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandOff(JsonRecord):
    """What a task returns through XCom: the value itself, or where it was written (``handoff``, with its
    size in ``bytes``); a batch's ``index`` and ``label`` stay visible either way, for the UI.

    ``value`` is any JSON (a record's, as its next task reads it) and is written whenever there is no
    path, None included: ``to_json`` adds it, as no field rule can tell that None from an absent one.
    """

    index: int | None = field(default=None, metadata=OPTIONAL)
    label: str | None = field(default=None, metadata=OPTIONAL)
    value: Any = field(default=None, metadata=OPTIONAL)
    handoff: str | None = field(default=None, metadata=OPTIONAL)
    bytes: int | None = field(default=None, metadata=OPTIONAL)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.handoff is None:
            data["value"] = self.value
        return data


def hand_off(
    store: Store,
    directory: str,
    name: str,
    value: Any,
    inline_limit: int,
    *,
    index: int | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """What a task returns: the JSON of its :class:`HandOff` (a plain dict, as XCom carries it).

    ``value`` is inline when its JSON is at most ``inline_limit`` bytes, else written to the bucket.
    """
    body = dumps(value)
    if len(body) <= inline_limit:
        return HandOff(index, label, value).to_json()
    path = f"{directory}{name}.json"
    store.put(path, body, cache_control=STATE_CACHE)
    return HandOff(index, label, handoff=path, bytes=len(body)).to_json()


def receive(store: Store, ref: Mapping[str, Any]) -> Any:
    """The value behind a :func:`hand_off` result, given as XCom returns it (its JSON)."""
    envelope = HandOff.from_json(ref)
    if envelope.handoff is None:
        return envelope.value
    value = store.get_json(envelope.handoff)
    if value is None:
        raise StoreError(
            f"{store.key(envelope.handoff)} is gone: a later run of this DAG published and cleared the hand-offs "
            "of this failed run; start a new run instead of retrying this one"
        )
    return value


def clear(store: Store, dag_id: str) -> int:
    """Delete every hand-off of the DAG's runs; returns how many were deleted.

    Called by a run's last task, after publishing: a failed delete only leaves garbage for the next run to clear, so it
    is logged rather than failing a run whose repository is already published.
    """
    paths = [info.path for info in store.list_objects(handoff_dir(dag_id))]
    failed = store.delete_many(paths)
    if failed:
        logger.warning("%d hand-off objects not deleted (the next run retries): %s", len(failed), failed[:5])
    return len(paths) - len(failed)
