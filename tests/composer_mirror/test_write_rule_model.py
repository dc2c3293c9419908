"""A model-based test of the write rule: every interleaving of the mirror's writers keeps its promises.

Hypothesis drives a fake upstream (the fixture registry answered in process) that releases versions,
re-tags them, deletes tags and whole packages and leaves optional fields out, and runs the mirror's
writers against one in-memory store that honours ``If-Match``/``If-None-Match`` as S3 does (the
store's conformance tests hold it to that): a sync, an SBOM run pinning a version, verify with
``repair``, prune, and an operator withdrawing a version (a package's last one included). A run may
crash at its Nth write (the write does not happen, nor anything after it in that run), and a second
writer, prune included, may run whole inside the first one's window, just before its Nth write: both
share every object they read and write.

After every step the invariants a client relies on are checked:

- the root lists only packages whose p2 files exist and parse;
- every dist a published p2 file names answers with the sha1 it publishes;
- no version once published has disappeared unless it was withdrawn (every package stays
  selected), and a tag keeps the bytes it was first published with;
- a version whose withdrawal completed is served by no p2 file, and a package whose last version
  was withdrawn (with no other writer inside that withdrawal) is not in the root.

Thread pools run their work serially here, so that the Nth write is the same write on every replay
(Hypothesis shrinks by replaying).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from composer_mirror import parallel, prune, verify
from composer_mirror.composer_format import parse_p2
from composer_mirror.context import Context
from composer_mirror.errors import MirrorError
from composer_mirror.publisher import load_record, withdraw_version
from composer_mirror.settings import Settings
from composer_mirror.store.layout import ROOT, archive_path_of_url, p2_path
from composer_mirror.store.memory import MemoryStore
from composer_mirror.sync import pipeline, planning
from composer_mirror.sync.records import Plan
from composer_mirror.targets import normalized_of
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import read_endpoints
from composer_mirror.versions import is_stable
from devtools.fixture_registry import Registry
from devtools.fixture_registry.in_process import ORIGIN, InProcessRegistry

PUBLIC_URL = "https://mirror.test/repo"
PACKAGES = ("acme/alpha", "acme/beta", "acme/gamma")
# acme/alpha's 1.x is not selected by the sync: only an SBOM pin brings it in.
PINNED = "acme/alpha"
SELECTION = ("acme/alpha:^2.0", "acme/alpha:dev-main", "acme/beta", "acme/gamma")
WRITERS = ("sync", "sbom", "repair", "prune", "withdraw")
OPTIONAL_FIELDS = ("version_normalized", "time", "dist.shasum")
WRITE_KINDS = frozenset({"PUT", "CREATE", "DELETE"})


class Crash(BaseException):
    """A worker dying: raised instead of a write, and at every later write of the same run.

    A BaseException, so no ``except Exception`` of the mirror's turns it into a reported failure.
    """


class SerialExecutor:
    """``ThreadPoolExecutor``'s interface, running each call at once in the caller's thread."""

    def __init__(self, max_workers: int | None = None, **_kwargs: Any) -> None:
        self.max_workers = max_workers

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def map(self, function: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        return iter([function(*args) for args in zip(*iterables, strict=False)])

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as exc:  # the pool hands every failure to the caller, a Crash included
            future.set_exception(exc)
        return future


# Write points by what is written, in the write rule's order: a schedule names "the Nth write of a
# kind", so that the few writes where races and crashes matter are hit as often as the many others.
WRITE_POINTS = (
    ("archive", "dists/"),
    ("journal", "mirror-state/archives/"),
    ("record", "mirror-state/packages/"),
    ("p2", "p2/"),
    ("shard", "mirror-state/shards/"),
    ("intent", "mirror-state/prune/intents/"),
    ("catalog", "mirror-state/catalog.json"),
    ("root", "packages.json"),
    ("marks", "mirror-state/prune/"),
)
Point = tuple[str, int]


def write_point(path: str) -> str:
    return next((kind for kind, prefix in WRITE_POINTS if path.startswith(prefix)), "other")


class ScheduledStore(MemoryStore):
    """The one bucket every writer shares, with a schedule for the run now in progress.

    Before the run's write at ``crash_at`` it raises :class:`Crash` (and at every write after it);
    before its write at ``interleave_at`` it runs ``interleave`` (another writer, whole), then checks
    what a client would see at that moment.
    """

    def __init__(self, clock: Callable[[], datetime], observe: Callable[[], None]) -> None:
        super().__init__("repo/", clock=clock)
        self.observe = observe
        self.writes: Counter = Counter()
        self.crash_at: Point | None = None
        self.interleave_at: Point | None = None
        self.interleave: Callable[[], None] | None = None
        self.crashed = False

    def schedule(
        self, crash_at: Point | None, interleave_at: Point | None, interleave: Callable[[], None] | None
    ) -> None:
        self.writes, self.crashed = Counter(), False
        self.crash_at, self.interleave_at, self.interleave = crash_at, interleave_at, interleave

    def _before_write(self, path: str) -> None:
        kind = write_point(path)
        self.writes[kind] += 1
        point = (kind, self.writes[kind])
        if self.interleave is not None and point == self.interleave_at:
            other, self.interleave = self.interleave, None
            writes, crash_at = self.writes, self.crash_at
            self.writes, self.crash_at = Counter(), None  # the other writer runs whole and does not crash
            try:
                other()
            finally:
                self.writes, self.crash_at = writes, crash_at
            self.observe()
        if self.crashed or point == self.crash_at:
            self.crashed = True
            raise Crash(f"killed before {kind} write {point[1]} ({path})")

    def put(self, path: str, data: Any, **kwargs: Any) -> str:
        self._before_write(path)
        return super().put(path, data, **kwargs)

    def delete_many(self, paths: Iterable[str]) -> list[str]:
        paths = list(paths)
        if paths:
            self._before_write(paths[0])
        return super().delete_many(paths)


# The record and p2 writes are where writers race for one package: drawn as often as all the others.
POINTS = st.tuples(
    st.sampled_from(["record", "p2"]) | st.sampled_from([kind for kind, _prefix in WRITE_POINTS]), st.integers(1, 3)
)


class WriteRuleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = datetime(2026, 12, 1, tzinfo=UTC)
        self.registry = Registry(archive_padding=16)
        self.server = InProcessRegistry(self.registry, changes_feed=False)
        self.store = ScheduledStore(lambda: self.now, self.observe)
        self.settings = Settings(
            bucket="memory",
            public_url=PUBLIC_URL,
            upstream_url=ORIGIN,
            prefix="repo",
            packages=SELECTION,
            concurrency=1,
            prune_grace_hours=1,
            delete_grace_hours=10**6,
        )
        self.seen: dict[tuple[str, str], tuple[str, str]] = {}  # (name, normalized) -> (version, shasum)
        self.withdrawn: set[tuple[str, str]] = set()  # withdrawals that completed
        self.withdrawing = ""  # the package of the last withdrawal
        self.patches = ExitStack()
        # composer_mirror.parallel owns every thread pool of the mirror (ruff's TID251 bans the others).
        self.patches.enter_context(mock.patch.object(parallel, "ThreadPoolExecutor", SerialExecutor))

    def teardown(self) -> None:
        self.patches.close()

    # --- the upstream -------------------------------------------------------------------------
    @initialize(omitted=st.sets(st.sampled_from(OPTIONAL_FIELDS)))
    def populate(self, omitted: set[str]) -> None:
        self.registry.omit = frozenset(omitted)
        for name in PACKAGES:
            for version in ("1.0.0", "2.0.0"):
                self.registry.add_version(name, version)
        self.registry.add_version("acme/alpha", "dev-main")

    def upstream_tags(self, name: str) -> list[str]:
        return [e["version"] for e in self.registry.versions(name, ORIGIN, dev=False)] if self.exists(name) else []

    def exists(self, name: str) -> bool:
        return name in self.registry.package_names()

    @rule(name=st.sampled_from(PACKAGES), minor=st.integers(0, 9))
    def release(self, name: str, minor: int) -> None:
        version = f"2.{minor}.1"
        if version not in self.upstream_tags(name):
            self.registry.add_version(name, version)

    @rule(name=st.sampled_from(PACKAGES), pick=st.integers(0, 20))
    def retag(self, name: str, pick: int) -> None:
        tags = self.upstream_tags(name)
        if tags:
            self.registry.retag(name, tags[pick % len(tags)])

    @rule(name=st.sampled_from(PACKAGES), pick=st.integers(0, 20))
    def delete_tag(self, name: str, pick: int) -> None:
        tags = self.upstream_tags(name)
        if len(tags) > 1:
            self.registry.remove_version(name, tags[pick % len(tags)])

    @rule()
    def move_branch(self) -> None:
        if self.exists("acme/alpha") and any(e["version"] == "dev-main" for e in self.registry.versions("acme/alpha")):
            self.registry.retag("acme/alpha", "dev-main")

    @rule(name=st.sampled_from(PACKAGES))
    def delete_package(self, name: str) -> None:
        if self.exists(name):
            self.registry.delete_package(name)

    @rule(name=st.sampled_from(PACKAGES))
    def publish_again(self, name: str) -> None:
        """A package deleted upstream comes back (its old versions do not)."""
        if not self.exists(name):
            self.registry.add_version(name, "3.0.0")

    # --- the writers --------------------------------------------------------------------------
    def context(self) -> Context:
        client = UpstreamClient(FetchPolicy(ORIGIN), concurrency=1, retry=RetryPolicy(attempts=1, backoff=0))
        self.server.mount(client.session)
        return Context(self.settings, self.store, client)

    def writer(self, kind: str, pick: int) -> Callable[[], None]:
        return {
            "sync": self.sync,
            "sbom": lambda: self.sbom(pick),
            "repair": self.repair,
            "prune": self.prune,
            "withdraw": lambda: self.withdraw(pick),
        }[kind]

    def sync(self) -> None:
        ctx = self.context()
        ctx.upstream = read_endpoints(ctx.client, ORIGIN)
        plan = planning.plan_sync(ctx)
        self.mirror(ctx, plan, "sync")

    def sbom(self, pick: int) -> None:
        """An SBOM run pinning one upstream version of acme/alpha (its resolution needs no more).

        Only acme/alpha has versions the sync does not select (1.x), so only its pins can add a
        version to a package the sync is writing at the same time.
        """
        offered = [(PINNED, tag) for tag in self.upstream_tags(PINNED)]
        if not offered:
            return
        name, version = offered[pick % len(offered)]
        ctx = self.context()
        ctx.upstream = read_endpoints(ctx.client, ORIGIN)
        self.mirror(ctx, Plan({name: [version]}), "sbom")

    def mirror(self, ctx: Context, plan: Plan, run_id: str) -> None:
        pipeline.mirror_plan(ctx, plan, run_id)

    def repair(self) -> None:
        ctx = self.context()
        names, _root = verify.read_root(self.store, PUBLIC_URL)
        for batch in verify.plan_verify_batches(names, 4):
            verify.verify_batch(ctx, batch, repair=True)

    def withdraw(self, pick: int) -> None:
        """An operator withdraws one published version; picks over packages first, so that a
        package's last version is withdrawn as often as any."""
        published = sorted(self.published())
        names = sorted({name for name, _normalized in published})
        if not names:
            return
        name = names[pick % len(names)]
        versions = [normalized for n, normalized in published if n == name]
        normalized = versions[(pick // len(names)) % len(versions)]
        self.withdrawing = name
        withdraw_version(self.store, name, normalized, "operator", by="model", repository_url=PUBLIC_URL)
        self.withdrawn.add((name, normalized))
        self.observe()

    def prune(self) -> None:
        with suppress(MirrorError):  # no root yet: prune refuses to run, as it should
            prune.prune(self.store, grace_hours=self.settings.prune_grace_hours, dry_run=False, now=self.now)

    @rule(
        kind=st.sampled_from(WRITERS),
        pick=st.integers(0, 50),
        crash_at=st.none() | POINTS,
        other=st.none() | st.sampled_from(WRITERS),
        other_pick=st.integers(0, 50),
        interleave_at=POINTS,
    )
    def run(
        self, kind: str, pick: int, crash_at: Point | None, other: str | None, other_pick: int, interleave_at: Point
    ) -> None:
        """One writer's run, maybe crashing at a write, maybe with another writer inside its window."""
        nested = self.writer(other, other_pick) if other is not None else None
        self.store.schedule(crash_at, interleave_at, nested)
        try:
            self.writer(kind, pick)()
        except Crash:
            pass
        finally:
            raced = self.store.interleave is None and nested is not None
            crashed = self.store.crashed
            self.store.schedule(None, None, None)
        if kind == "withdraw" and not raced and not crashed and self.withdrawing:
            self.an_emptied_package_is_not_listed(self.withdrawing)
        self.withdrawing = ""
        self.now += timedelta(hours=2)  # later runs see every mark prune made older than its grace

    @rule(
        sync_outside=st.booleans(),
        pick=st.integers(0, 50),
        crash_at=st.none() | POINTS,
        interleave_at=POINTS,
    )
    def race(self, sync_outside: bool, pick: int, crash_at: Point | None, interleave_at: Point) -> None:
        """The race that matters most: a sync and an SBOM run writing acme/alpha, either inside the other."""
        outer, inner = ("sync", "sbom") if sync_outside else ("sbom", "sync")
        self.run(outer, pick, crash_at, inner, pick, interleave_at)

    @rule(at=st.sampled_from(["archive", "journal", "record", "p2"]), nth=st.integers(1, 3))
    def orphan(self, at: str, nth: int) -> None:
        """A sync dies between storing archives and recording them: orphans a later run reuses."""
        self.run("sync", 0, (at, nth), None, 0, (at, nth))

    @rule(at=st.sampled_from(["journal", "record", "p2", "shard"]), nth=st.integers(1, 3), prune_first=st.booleans())
    def prune_races_a_reuse(self, at: str, nth: int, prune_first: bool) -> None:
        """Prune sweeping inside a sync's window (or the sync inside prune's): the sync reuses an orphan
        archive (a journal marker, a refused create) that prune has found due."""
        outer, inner = ("prune", "sync") if prune_first else ("sync", "prune")
        self.run(outer, 0, None, inner, 0, (at, nth))

    @precondition(lambda self: self.store.get(ROOT) is not None)
    @rule()
    def run_cleanly(self) -> None:
        """A run with nothing odd happening: the mirror heals whatever a crash left."""
        self.sync()

    # --- the invariants -------------------------------------------------------------------------
    def published(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every version a client can install now: (name, normalized) -> its entry."""
        stored = self.store.get(ROOT)
        if stored is None:
            return {}
        found = {}
        for name in json.loads(stored.body)["available-packages"]:
            for dev in (False, True):
                p2 = self.store.get(p2_path(name, dev))
                assert p2 is not None or dev, f"the root lists {name} but {p2_path(name, dev)} does not exist"
                for entry in parse_p2(p2.body, name) if p2 is not None else []:
                    found[(name, normalized_of(entry) or "")] = entry
        return found

    def observe(self) -> None:
        """Both invariants, also run in the middle of a run, right after another writer's."""
        self.every_dist_answers_with_its_published_sha1()
        self.no_published_version_disappears_and_tags_keep_their_bytes()

    @invariant()
    def every_dist_answers_with_its_published_sha1(self) -> None:
        for (name, _normalized), entry in self.published().items():
            path = archive_path_of_url(entry["dist"]["url"])
            stored = self.store.get(path) if path else None
            assert stored is not None, f"{name} {entry['version']}: {entry['dist']['url']} is missing"
            assert hashlib.sha1(stored.body).hexdigest() == entry["dist"]["shasum"], (name, entry["version"])

    def an_emptied_package_is_not_listed(self, name: str) -> None:
        """After a withdrawal that ran alone and whole (one that crashed half-way leaves the package
        listed with no version until verify's repair, or a writer adding a version, settles it)."""
        root = self.store.get(ROOT)
        listed = json.loads(root.body)["available-packages"] if root is not None else []
        record = load_record(self.store, name)
        assert name not in listed or record is None or record.versions, f"every version of {name} was withdrawn"

    @invariant()
    def withdrawn_versions_are_served_no_more(self) -> None:
        served = set(self.published())
        assert not served & self.withdrawn, f"withdrawn and still served: {sorted(served & self.withdrawn)}"

    def withdrawn_in_records(self) -> set[tuple[str, str]]:
        """Withdrawals the records hold, those of withdrawals that crashed half-way included."""
        found = set()
        for name in PACKAGES:
            record = load_record(self.store, name)
            found |= {(name, normalized) for normalized in (record.withdrawn if record is not None else {})}
        return found

    @invariant()
    def no_published_version_disappears_and_tags_keep_their_bytes(self) -> None:
        published = self.published()
        withdrawn = self.withdrawn | self.withdrawn_in_records()
        for key, (version, shasum) in self.seen.items():
            if key in withdrawn:
                continue
            assert key in published, f"{key[0]} {version} was published and is gone"
            if is_stable(version):
                assert published[key]["dist"]["shasum"] == shasum, f"{key[0]} {version} changed its bytes"
        for key, entry in published.items():
            if key not in self.seen or not is_stable(entry["version"]):
                self.seen[key] = (entry["version"], entry["dist"]["shasum"])


WriteRuleMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestWriteRule = WriteRuleMachine.TestCase


def test_prune_sweeping_inside_a_sync_that_reuses_an_orphan_deletes_nothing_it_publishes() -> None:
    """The interleaving of prune's defect, spelled out (the machine finds it only now and then): a sync
    dies after storing a new release's archive, prune marks the orphan, and a grace period later it
    sweeps inside the window of a sync that reuses the orphan through its journal marker."""
    machine = WriteRuleMachine()
    try:
        machine.populate(omitted=set())
        machine.sync()
        machine.release("acme/beta", 3)
        machine.orphan("record", 1)
        machine.run("prune", 0, None, None, 0, ("record", 1))
        assert machine.store.get_json("mirror-state/prune/marks.json"), "the orphan was not marked"
        machine.prune_races_a_reuse("record", 1, prune_first=False)
        machine.every_dist_answers_with_its_published_sha1()
        machine.no_published_version_disappears_and_tags_keep_their_bytes()
        assert ("acme/beta", "2.3.1.0") in machine.published()
    finally:
        machine.teardown()
