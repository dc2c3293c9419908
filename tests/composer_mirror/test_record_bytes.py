"""The bytes of the mirror's own records, pinned: the state shards, the catalog, the run reports, the hand-offs.

``tests/fixtures/record-bytes.json`` holds every one of them after two sync runs, a verify and a dry
prune over a small fixture registry. The same runs must write the same bytes whatever the records
in the code are made of: operators, monitoring and the next run read them, and a mirror keeps the
shards of earlier releases. The clock is fixed and the
registry is answered in process at a fixed origin, so the upstream's validators, every URL and every
timestamp repeat.

The second run covers what the first cannot: a package whose tags changed and branches did not (a
304 among the files to fetch), a rewritten tag (an anomaly), a package the upstream lacks (a
failure), a withdrawn version, and the changes feed (an incremental plan with its cursor). Every
stage's value is handed on as the Airflow adapter hands it, inline (kept in the order of its keys, as
XCom keeps it) and each batch's result through the bucket too.

Set ``PIN_RECORD_BYTES=1`` to write the fixture again (only from code known to write the right bytes).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from composer_mirror import prune, verify
from composer_mirror.batches import Batch, plan_batches
from composer_mirror.context import Context
from composer_mirror.handoff import hand_off, receive
from composer_mirror.publisher import withdraw_version
from composer_mirror.settings import Settings
from composer_mirror.store.layout import handoff_dir
from composer_mirror.store.memory import MemoryStore
from composer_mirror.sync import metadata, packages, planning, publish
from composer_mirror.sync.records import BatchResult, Manifest, Plan
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import read_endpoints
from devtools.fixture_registry import Registry
from devtools.fixture_registry.in_process import ORIGIN, InProcessRegistry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PINNED = FIXTURES / "record-bytes.json"
LOCK = FIXTURES / "symfony-demo" / "composer.lock"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
PUBLIC_URL = "https://mirror.example/repo"
SELECTION = ("psr/log", "psr/log:3.0.x-dev", "twig/twig", "psr/container", "acme/missing")
DAG = "composer_mirror_sync"
INLINE = 1 << 20
STATE = ("mirror-state/shards/", "mirror-state/catalog.json", "mirror-state/runs/", "status.json")


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    """Every ``time.time()`` and ``time.gmtime()`` answers NOW; monotonic clocks (timeouts) run on."""
    gmtime = time.gmtime
    with (
        mock.patch("time.time", return_value=float(NOW)),
        mock.patch("time.gmtime", side_effect=lambda seconds=None: gmtime(NOW if seconds is None else seconds)),
    ):
        yield


def xcom(value: Any) -> str:
    """A value as XCom keeps it: JSON in the order its keys were made (not sorted, as the state is)."""
    return json.dumps(value, separators=(",", ":"))


def as_json(value: Any) -> Any:
    """A stage's result as the adapter hands it on: a record as its JSON, anything else as it is."""
    return value.to_json() if hasattr(value, "to_json") else value


class Run:
    """The sync DAG's tasks in order, each result handed off as the adapter does and kept as bytes."""

    def __init__(self, ctx: Context, pinned: dict[str, str], run_id: str) -> None:
        self.ctx, self.pinned, self.run_id = ctx, pinned, run_id
        self.directory = handoff_dir(DAG, run_id)

    def hand(self, name: str, value: Any, *, bucket: bool = False, **visible: Any) -> Any:
        """Hand ``value`` on inline; with ``bucket`` also through the bucket, as a value over the limit goes."""
        value = as_json(value)
        ref = hand_off(self.ctx.store, self.directory, name, value, INLINE, **visible)
        self.pinned[f"{self.run_id}/xcom/{name}"] = xcom(ref)
        if bucket:
            large = hand_off(self.ctx.store, self.directory, name, value, 0, **visible)
            self.pinned[f"{self.run_id}/xcom/{name}-large"] = xcom(large)
            self.pinned[f"{self.run_id}/bucket/{name}"] = self.ctx.store.get(large["handoff"]).body.decode()
            assert receive(self.ctx.store, large) == value
        return receive(self.ctx.store, ref)

    def sync(self) -> dict[str, Any]:
        ctx = self.ctx
        ctx.upstream = read_endpoints(ctx.client, ctx.settings.upstream_url)
        plan = Plan.from_json(self.hand("plan", planning.plan_sync(ctx)))
        batches = plan_batches(plan.targets, ctx.settings.max_batches, min_times=plan.min_times)
        results = []
        for batch in batches:
            share = Batch.from_json(self.hand(f"batch-{batch.index}", batch, index=batch.index, label=batch.label))
            visible = {"index": share.index, "label": share.label}
            manifest = self.hand(f"manifest-{share.index}", metadata.sync_metadata(ctx, share), **visible)
            result = packages.fetch_archives(ctx, Manifest.from_json(manifest))
            results.append(BatchResult.from_json(self.hand(f"result-{share.index}", result, bucket=True, **visible)))
        return self.hand("report", publish.publish_index(ctx, results, plan, self.run_id))


def keep_state(store: MemoryStore, pinned: dict[str, str], label: str) -> None:
    for key in sorted(store.objects):
        path = key.removeprefix(store.prefix)
        if path.startswith(STATE):
            pinned[f"{label}/{path}"] = store.objects[key].body.decode()


def record_bytes(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    registry = Registry.from_lock(LOCK, extra_versions=1)
    pinned: dict[str, str] = {}
    server = InProcessRegistry(registry)
    settings = Settings(bucket="records", public_url=PUBLIC_URL, upstream_url=ORIGIN, prefix="repo", packages=SELECTION)
    with UpstreamClient(FetchPolicy(ORIGIN), concurrency=2, retry=RetryPolicy(attempts=1, backoff=0)) as client:
        server.mount(client.session)
        store = MemoryStore("repo/", clock=lambda: datetime.fromtimestamp(NOW, UTC))
        ctx = Context(settings, store, client)
        first = Run(ctx, pinned, "scheduled__first").sync()
        assert [f["package"] for f in first["failures"]] == ["acme/missing"]
        keep_state(store, pinned, "first")

        stable = registry.versions("psr/log", dev=False)
        withdrawn = withdraw_version(
            store, "psr/log", stable[-1]["version_normalized"], "policy", by="tests", repository_url=PUBLIC_URL
        )
        pinned["withdrawal"] = xcom(as_json(withdrawn))
        registry.add_version("psr/log", "3.0.9")
        registry.retag("twig/twig", registry.versions("twig/twig", dev=False)[0]["version"])
        second = Run(ctx, pinned, "scheduled__second").sync()
        assert second["anomalies"] and second["failures"]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="composer_mirror.sync.publish"):
            publish.log_report(second)  # as the report task does, with the report it received
        pinned["second/log"] = "\n".join(f"{r.levelname} {r.getMessage()}" for r in caplog.records)
        keep_state(store, pinned, "second")

        verifying = Run(ctx, pinned, "manual__verify")
        listing = verifying.hand("listing", verify.list_packages(ctx))
        refs = []
        for batch in verify.plan_verify_batches(listing["packages"], settings.max_batches):
            result = verify.verify_batch(ctx, batch, deep=True).to_json()
            refs.append(verifying.hand(f"verify-{batch.index}", result, index=batch.index, label=batch.label))
        verify.finish(ctx, listing["root"], refs, run_id="manual__verify", repair=False)
        pruned = prune.run_prune(store, settings, dry_run=True, run_id="manual__prune")
        pinned["prune/xcom"] = xcom(pruned.summary().to_json())
        keep_state(store, pinned, "checked")
    return pinned


def test_the_records_a_mirror_writes_keep_their_bytes(fixed_clock: None, caplog: pytest.LogCaptureFixture) -> None:
    written = record_bytes(caplog)
    if os.environ.get("PIN_RECORD_BYTES"):
        PINNED.write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINNED.read_text())
    assert sorted(written) == sorted(pinned)
    for key, value in sorted(written.items()):
        assert value == pinned[key], key
