"""The raw floor: the same I/O as a DAG run, done by a plain threaded client with no Airflow.

The workload is derived from what the DAG run asked for (the registry's and moto's request logs):

- every p2 file the run requested, once: conditionally with the validators the registry gave
  before the scenario's changes (a warm mirror), or unconditionally (a cold one);
- every archive the run downloaded, through the same ``/zipball/`` redirect, hashed (sha1 and
  sha256) while it streams, not written to disk;
- every other upstream GET of the run (packages.json, list.json, the changes feed), once;
- every S3 PUT of the run, same size, into a scratch bucket (``put_object``, or boto3's managed
  multipart transfer above 64 MB, like the pipeline's store).

Upstream requests run in a ThreadPoolExecutor of ``concurrency`` threads (the pipeline's per-host
limit), the S3 PUTs in another one of the same size, both at once. S3 reads the pipeline needs for
its own state (shards, markers) are not part of the floor.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

MULTIPART_THRESHOLD = 64 * 1024**2
CHUNK = 1024 * 1024


@dataclass
class Workload:
    p2: list[tuple[str, list[str] | None]] = field(default_factory=list)  # (path, [etag, last_modified])
    archives: list[str] = field(default_factory=list)  # /zipball/... paths
    other: list[str] = field(default_factory=list)  # path?query
    puts: list[tuple[str, int]] = field(default_factory=list)  # (key, bytes)

    def describe(self) -> dict[str, int]:
        return {
            "p2": len(self.p2),
            "p2_conditional": sum(1 for _path, validators in self.p2 if validators),
            "archives": len(self.archives),
            "other": len(self.other),
            "s3_puts": len(self.puts),
        }


def workload_from(records: list[list[Any]], puts: list[list[Any]], validators: dict[str, list[str]] | None) -> Workload:
    """What the DAG run did, deduplicated. ``validators`` None means unconditional p2 requests."""
    work = Workload()
    seen: set[str] = set()
    zipballs = {path for _m, path, *_ in records if path.startswith("/zipball/")}
    for method, path, *_rest in records:
        if method != "GET" or path in seen:
            continue
        seen.add(path)
        if path.startswith("/p2/"):
            work.p2.append((path, (validators or {}).get(path)))
        elif path.startswith("/zipball/"):
            work.archives.append(path)
        elif path.startswith("/codeload/"):
            name_ref = path.removeprefix("/codeload/").removesuffix(".zip")
            if f"/zipball/{name_ref}" not in zipballs:
                work.archives.append(path)
        else:
            work.other.append(path)
    work.puts = [(key, int(size)) for key, size in puts]
    return work


class _Zeros(io.RawIOBase):
    """``size`` zero bytes as a readable stream, so a 1 GB PUT needs no 1 GB buffer."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def run_floor(work: Workload, upstream_url: str, s3: Any, scratch_bucket: str, concurrency: int) -> dict[str, Any]:
    """Execute the workload; returns wall time, statuses seen and bytes moved."""
    from boto3.s3.transfer import TransferConfig

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=concurrency * 2, max_retries=0)
    session.mount("http://", adapter)
    statuses: Counter = Counter()
    lock = threading.Lock()

    def count(kind: str) -> None:
        with lock:
            statuses[kind] += 1

    transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024**2)

    def get_p2(item: tuple[str, list[str] | None]) -> int:
        path, validators = item
        headers = {"If-None-Match": validators[0], "If-Modified-Since": validators[1]} if validators else {}
        response = session.get(upstream_url + path, headers=headers, timeout=60)
        count(f"p2_{response.status_code}")
        return len(response.content)

    def get_other(path: str) -> int:
        response = session.get(upstream_url + path, timeout=60)
        count(f"other_{response.status_code}")
        return len(response.content)

    def download(path: str) -> int:
        sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
        with session.get(upstream_url + path, stream=True, timeout=60) as response:
            count(f"archive_{response.status_code}")
            for chunk in response.iter_content(CHUNK):
                sha1.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
        return size

    def put(item: tuple[str, int]) -> int:
        key, size = item
        if size > MULTIPART_THRESHOLD:
            s3.upload_fileobj(io.BufferedReader(_Zeros(size)), scratch_bucket, key, Config=transfer)
        else:
            s3.put_object(Bucket=scratch_bucket, Key=key, Body=bytes(size))
        count("s3_put")
        return size

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as upstream, ThreadPoolExecutor(concurrency) as uploads:
        futures = [upstream.submit(get_other, path) for path in work.other]
        futures += [upstream.submit(get_p2, item) for item in work.p2]
        futures += [upstream.submit(download, path) for path in work.archives]
        put_futures = [uploads.submit(put, item) for item in work.puts]
        upstream_bytes = sum(f.result() for f in futures)
        put_bytes = sum(f.result() for f in put_futures)
    wall = time.monotonic() - started
    session.close()
    return {
        "wall_s": round(wall, 3),
        "workload": work.describe(),
        "statuses": dict(statuses),
        "upstream_bytes": upstream_bytes,
        "s3_put_bytes": put_bytes,
    }
