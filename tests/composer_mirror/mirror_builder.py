"""The mirror the library's tests work on: a bucket in moto's in-process S3, the fixture registry on
loopback as its upstream, and the context the library's functions take (``composer_mirror.context.connect``).

It is filled in two ways, alone or together:

- :meth:`Mirror.run`: a sync run, planned from the selection or the feed and mirrored by
  ``composer_mirror.sync.pipeline``, against the registry's packages;
- :meth:`Mirror.add_package`: a package mirrored by the library's own functions (mirror_archive,
  write_package, save_package_states, publish_root) in the order the sync uses, from archives the
  registry's server serves as ``files``: the small hand-built mirrors of the verify and prune tests
  (:func:`built_mirror`, whose registry is empty).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from composer_mirror.archives import ArchiveRecord, mirror_archive
from composer_mirror.composer_format import dump_p2, parse_p2
from composer_mirror.context import Context, connect
from composer_mirror.publisher import publish_root, write_package
from composer_mirror.record import PackageRecord, indexed, merge_offered
from composer_mirror.settings import Settings
from composer_mirror.state import PackageState, load_shards, save_package_states
from composer_mirror.store import STATE_CACHE, S3Store
from composer_mirror.store.layout import ROOT, p2_path, shard_of, upstream_cache_path
from composer_mirror.sync import pipeline
from composer_mirror.sync.planning import plan_sync
from composer_mirror.sync.records import Plan
from composer_mirror.upstream.composer import read_endpoints
from composer_mirror.versions import normalize
from devtools.fixture_registry import Registry, RegistryServer

BUCKET = "mirror-bucket"
PREFIX = "repo/"
PUBLIC_URL = "https://mirror.example/repo"
# What a sync run mirrors unless told otherwise: a tag selection, a branch, a pattern.
SELECTION = ("psr/log", "psr/log:3.0.x-dev", "twig/twig", "psr/container", "symfony/polyfill-intl-id*:^1.0")


def make_zip(name: str, version: str, salt: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name.replace('/', '-')}/composer.json", f'{{"name": "{name}", "v": "{version}{salt}"}}')
    return buffer.getvalue()


@dataclass
class Mirror:
    """A moto bucket, the fixture registry serving its upstream, and the context on both."""

    registry: Registry
    server: RegistryServer
    s3: Any
    ctx: Context
    records: dict[str, dict[str, ArchiveRecord]] = field(default_factory=dict)  # add_package's, by name

    @property
    def store(self) -> S3Store:
        store = self.ctx.store
        assert isinstance(store, S3Store)
        return store

    @property
    def upstream(self) -> RegistryServer:
        """The upstream's server; ``upstream.files`` (path -> bytes) serves hand-made archives."""
        return self.server

    # --- runs -------------------------------------------------------------------------------------
    def run(self, run_id: str = "run", adjust_plan: Callable[[Plan], None] | None = None) -> dict[str, Any]:
        """One sync run, stage by stage as the DAG wires them; the report carries its plan."""
        ctx = self.ctx
        ctx.upstream = read_endpoints(ctx.client, ctx.settings.upstream_url)
        plan = plan_sync(ctx)
        if adjust_plan:
            adjust_plan(plan)
        return {**pipeline.mirror_plan(ctx, plan, run_id).to_json(), "plan": plan}

    def second_writer(self) -> Context:
        """Another worker on the same bucket: its own upstream client, the same settings and store."""
        return connect(self.ctx.settings, self.store)

    # --- what is published ------------------------------------------------------------------------
    def root(self) -> dict[str, Any]:
        return json.loads(self.store.get(ROOT).body)

    def published(self, name: str, dev: bool = False) -> dict[str, dict[str, Any]]:
        stored = self.store.get(p2_path(name, dev))
        assert stored is not None, f"{name} has no published p2 file"
        return {entry["version"]: entry for entry in parse_p2(stored.body, name)}

    def p2_document(self, name: str) -> dict[str, Any]:
        return json.loads(self.store.get(p2_path(name)).body)

    def upstream_versions(self, name: str, dev: bool = False) -> dict[str, dict[str, Any]]:
        return {e["version"]: e for e in self.registry.versions(name, self.server.url, dev=dev)}

    def state(self, name: str) -> dict[str, Any]:
        """The package's shard entry as stored ({} without one)."""
        entry = load_shards(self.store, [name])[shard_of(name)].packages.get(name)
        return entry.to_json() if entry is not None else {}

    # --- hand-built packages ----------------------------------------------------------------------
    def add_package(
        self, name: str, versions: list[str], *, advisories: list[Any] | None = None, publish_root_file: bool = True
    ) -> dict[str, Any]:
        """Mirror ``versions`` of ``name`` the way the sync does; returns the recorded package state."""
        entries, records = [], {}
        for version in versions:
            data = make_zip(name, version)
            path = f"/dist/{name}/{version}.zip"
            self.upstream.files[path] = data
            reference = hashlib.sha1(f"{name}{version}".encode()).hexdigest()
            normalized = normalize(version)
            entry = {
                "name": name,
                "version": version,
                "version_normalized": normalized,
                "dist": {"type": "zip", "url": self.upstream.url + path, "reference": reference, "shasum": ""},
            }
            records[normalized] = mirror_archive(
                self.store, self.ctx.client, name=name, version=version, normalized=normalized,
                dist=entry["dist"], max_bytes=1 << 20,
            )  # fmt: skip
            entries.append(entry)
        self.store.put(upstream_cache_path(name, False), dump_p2(name, entries), cache_control=STATE_CACHE)
        offered = [(e, records[e["version_normalized"]]) for e in entries]
        record, files = write_package(
            self.store,
            name,
            lambda current: merge_offered(current or PackageRecord(name), offered, advisories),
            PUBLIC_URL,
        )
        state = indexed(PackageState(selectors=["*"], published=files.etags, complete=True), record)
        save_package_states(self.store, {name: state})
        if publish_root_file:
            publish_root(self.store, PUBLIC_URL, [name])
        self.records[name] = records
        return state

    def key(self, path: str) -> str:
        return self.store.key(path)

    def put_raw(self, path: str, data: bytes) -> None:
        """Overwrite an object behind the library's back (corruption, planted orphans)."""
        self.s3.put_object(Bucket=BUCKET, Key=self.key(path), Body=data)

    def delete_raw(self, path: str) -> None:
        self.s3.delete_object(Bucket=BUCKET, Key=self.key(path))

    def exists(self, path: str) -> bool:
        return self.store.head(path) is not None


@contextmanager
def built(
    session: boto3.session.Session,
    registry: Registry,
    *,
    packages: tuple[str, ...] = SELECTION,
    changes_feed: bool = True,
) -> Iterator[Mirror]:
    """A fresh mocked bucket mirroring ``registry`` (served on loopback, which moto lets through).

    Fast retries (10 ms backoff) and the store's near-zero backoff keep fault tests quick; the
    registry's server must see no handler bug.
    """
    with RegistryServer(registry, changes_feed=changes_feed) as server, mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        settings = Settings(
            bucket=BUCKET,
            public_url=PUBLIC_URL,
            upstream_url=server.url,
            prefix=PREFIX,
            packages=tuple(packages),
            concurrency=4,
            retry_backoff_ms=10,
        )
        ctx = connect(settings, S3Store(s3, BUCKET, settings.key_prefix, backoff=0.001))
        try:
            yield Mirror(registry, server, s3, ctx)
        finally:
            ctx.client.close()
    assert server.errors == []


@contextmanager
def built_mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    """An empty mirror of an empty registry, for :meth:`Mirror.add_package` to fill by hand."""
    with built(session, Registry(), packages=()) as mirror:
        yield mirror
