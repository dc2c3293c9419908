"""Small hand-built mirrors for unit tests: a loopback upstream serving zips, published with the library itself.

The repository is built by the library's own functions (mirror_archive, write_package,
save_package_states, publish_root) in the order the sync uses, so what the tests verify and prune
is what the sync writes, without Airflow or the fixture registry.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from moto import mock_aws

from composer_mirror.archives import ArchiveRecord, mirror_archive
from composer_mirror.composer_format import dump_p2
from composer_mirror.context import Context
from composer_mirror.publisher import publish_root, write_package
from composer_mirror.record import PackageRecord, indexed, merge_offered
from composer_mirror.settings import Settings
from composer_mirror.state import PackageState, save_package_states
from composer_mirror.store import STATE_CACHE, S3Store
from composer_mirror.store.layout import upstream_cache_path
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.versions import normalize

BUCKET = "mirror-bucket"
PREFIX = "repo/"
PUBLIC_URL = "https://mirror.example/repo"


class Upstream:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes); 404 for anything else."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_zip(name: str, version: str, salt: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name.replace('/', '-')}/composer.json", f'{{"name": "{name}", "v": "{version}{salt}"}}')
    return buffer.getvalue()


@dataclass
class Mirror:
    """A moto bucket, a store on it, an upstream and the context the library's functions take."""

    s3: Any
    store: S3Store
    upstream: Upstream
    ctx: Context
    records: dict[str, dict[str, ArchiveRecord]] = field(default_factory=dict)

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
def built_mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    """A fresh mocked bucket and upstream; the upstream is on loopback, so moto lets its requests through."""
    upstream = Upstream()
    try:
        with mock_aws():
            s3 = session.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            store = S3Store(s3, BUCKET, PREFIX, backoff=0.001)
            settings = Settings(bucket=BUCKET, public_url=PUBLIC_URL, upstream_url=upstream.url, prefix=PREFIX)
            client = UpstreamClient(
                FetchPolicy(upstream.url), concurrency=4, retry=RetryPolicy(attempts=2, backoff=0.01)
            )
            try:
                yield Mirror(s3, store, upstream, Context(settings, store, client))
            finally:
                client.close()
    finally:
        upstream.stop()
