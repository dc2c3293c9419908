"""How a task body runs one library step: build the context, receive its input, hand its result on.

A result goes to the next task inline in XCom or, when large, through the bucket (see
:mod:`composer_mirror.handoff`: large values in XCom cost the task process tens of MB). A typed
record (:mod:`composer_mirror.sync.records`) goes as its JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from composer_mirror import context, handoff
from composer_mirror.airflow.connections import load_settings, s3_client
from composer_mirror.airflow.runtime import label_batch, run_ids
from composer_mirror.batches import Batch
from composer_mirror.context import Context
from composer_mirror.handoff import hand_off, receive
from composer_mirror.settings import Settings
from composer_mirror.store import S3Store
from composer_mirror.store.layout import handoff_dir
from composer_mirror.upstream.composer import Endpoints

T = TypeVar("T")


def build_context(upstream: dict[str, Any] | None = None, settings: Settings | None = None) -> Context:
    """The plain objects a step runs on; ``upstream`` is the read_upstream task's result (its endpoints)."""
    settings = settings or load_settings()
    endpoints = Endpoints.from_json(upstream) if upstream else None
    store = S3Store(s3_client(settings.aws_conn_id, settings.concurrency * 2), settings.bucket, settings.key_prefix)
    return Context(settings, store, context.upstream_client(settings, endpoints), endpoints)


def in_context(step: Callable[[Context], Any], upstream: dict[str, Any] | None = None) -> Any:
    """Run one step on a context built for this task (``upstream``: the endpoints, for upstream requests)."""
    return context.run_with_context(lambda: build_context(upstream), step)


def handed_off(
    name: str, upstream: dict[str, Any] | None, step: Callable[[Context], Any], **visible: Any
) -> dict[str, Any]:
    """Run a step and return its result for the next task: inline, or through the bucket.

    ``visible`` values stay in the XCom beside the reference (a batch's index and label, for the UI).
    """
    directory = handoff_dir(*run_ids())

    def run(ctx: Context) -> dict[str, Any]:
        result = step(ctx)
        value = result.to_json() if hasattr(result, "to_json") else result
        return hand_off(ctx.store, directory, name, value, ctx.settings.handoff_inline_bytes, **visible)

    return in_context(run, upstream)


def handed_off_batches(
    ref: dict[str, Any],
    upstream: dict[str, Any] | None,
    plan: Callable[[Context, Any], list[Batch]],
) -> list[dict[str, Any]]:
    """Receive a value, plan batches from it, and hand each batch to its mapped task instance.

    The batches' ``index`` and ``label`` stay visible: the UI labels each mapped instance with them.
    """
    directory = handoff_dir(*run_ids())

    def step(ctx: Context) -> list[dict[str, Any]]:
        inline = ctx.settings.handoff_inline_bytes
        return [
            hand_off(ctx.store, directory, f"batch-{b.index}", b.to_json(), inline, index=b.index, label=b.label)
            for b in plan(ctx, receive(ctx.store, ref))
        ]

    return in_context(step, upstream)


def batch_step(
    name: str, ref: dict[str, Any], upstream: dict[str, Any] | None, step: Callable[[Context, Any], Any]
) -> dict[str, Any]:
    """A mapped task's body: label the instance, receive its batch, hand the step's result on."""
    label_batch(ref["label"])
    return handed_off(
        f"{name}-{ref['index']}",
        upstream,
        lambda ctx: step(ctx, receive(ctx.store, ref)),
        index=ref["index"],
        label=ref["label"],
    )


def received_all(refs: Any) -> list[dict[str, Any]]:
    """A mapped task's results as a list, with one request for the lot.

    Airflow hands them over as a lazy sequence; iterating it probes offsets until one is missing
    (logged as an error), a slice asks for them all at once.
    """
    return list(refs[:]) if refs else []


def clearing_handoffs(step: Callable[[Context], T]) -> T:
    """The body of a run's last task: run ``step``, then delete the DAG's hand-offs (:func:`handoff.clear`)."""
    dag_id = run_ids()[0]

    def run(ctx: Context) -> T:
        result = step(ctx)
        handoff.clear(ctx.store, dag_id)
        return result

    return in_context(run)
