"""What the fault-injection suite shares: answers to serve beside the registry's, a request recorder,
an in-process run of the pipeline, Airflow homes that can run side by side, bucket readers."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from composer_mirror.context import connect, run_with_context
from composer_mirror.settings import Settings
from composer_mirror.store import S3Store
from composer_mirror.sync import pipeline
from devtools.fixture_registry import Response, file_response
from devtools.harness import AirflowEnv, MotoServer, aws_connection
from devtools.loopback import LoopbackServer, Reply, Request

SELECTION = ["psr/*", "monolog/monolog"]
PREFIX = "repo"


# --- the upstream side ---------------------------------------------------------------------------
# Answers for RegistryServer.files: they sit behind the registry's own authentication, so they are
# the upstream's origin (a redirect served there is the upstream sending the client elsewhere).
def serve_zip(body: bytes) -> Response:
    return file_response(body, "application/zip")


def zip_with_entries(*names: str) -> bytes:
    """A valid zip holding the given entry names verbatim (``../`` included: zipfile keeps them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), b"<?php // fixture\n")
    return buffer.getvalue()


class Recorder(LoopbackServer):
    """A loopback HTTP server that answers nothing useful and records every connection it gets.

    Used as a forbidden destination (the fetch policy must never reach it) and as the HTTP(S) proxy
    of the Airflow run, so that a request to any other host (169.254.169.254, api.github.com) is
    recorded too instead of vanishing into a network that does not exist here. HTTP/1.0: each
    answer closes its connection, so a proxied CONNECT is never followed by a tunnel.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.authorized: list[str] = []  # request lines that carried an Authorization header
        super().__init__(self._answer, protocol_version="HTTP/1.0", name="recorder")

    @property
    def connections(self) -> int:
        return self.accepted

    def _answer(self, request: Request) -> Reply:
        self.lines.append(request.line)
        if request.headers.get("Authorization"):
            self.authorized.append(request.line)
        return Reply(200, b"", {"Content-Type": "application/zip"})


# --- the mirror side -------------------------------------------------------------------------------
def mirror_variables(upstream_url: str, moto: MotoServer, bucket: str, packages: list[str], **extra: str) -> dict:
    return {
        "composer_mirror_upstream_url": upstream_url,
        "composer_mirror_bucket": bucket,
        "composer_mirror_prefix": PREFIX,
        "composer_mirror_public_url": f"{moto.endpoint}/{bucket}/{PREFIX}",
        "composer_mirror_packages": json.dumps(packages),
        "composer_mirror_retry_backoff_ms": "20",  # faults are retried at once: the suite stays fast
        "composer_mirror_max_batches": "1",  # `airflow dags test` runs one task at a time: one batch
        **extra,
    }


def run_pipeline(variables: Mapping[str, str], s3: Any, run_id: str = "in-process", **settings: Any) -> dict:
    """The sync DAG's steps called in this process: a fast way to prepare or inspect a bucket."""
    resolved = Settings.from_strings(dict(variables), **settings)
    ctx = connect(resolved, S3Store(s3, resolved.bucket, resolved.key_prefix, backoff=0.01))
    return run_with_context(lambda: ctx, lambda ctx: pipeline.sync(ctx, run_id).to_json())


def private_home(session_home: Path, target: Path) -> Path:
    """A copy of the migrated AIRFLOW_HOME: runs in separate homes never share (or lock) SQLite."""
    shutil.copytree(session_home, target, ignore=shutil.ignore_patterns("logs"))
    config = target / "airflow.cfg"
    config.write_text(config.read_text().replace(str(session_home), str(target)))
    return target


def airflow_env(
    home: Path, variables: Mapping[str, str], s3_endpoint: str, s3_retries: int | None = None, **extra_env: str
) -> AirflowEnv:
    """The Airflow side of a run; ``s3_retries`` caps botocore's own attempts (1: only the store retries)."""
    connection = json.loads(aws_connection(s3_endpoint))
    if s3_retries is not None:
        connection["extra"]["config_kwargs"] = {"retries": {"total_max_attempts": s3_retries}}
    return AirflowEnv(
        home,
        variables=dict(variables),
        extra_env={"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection), **extra_env},
    )


def output_of(result: Any) -> str:
    return (result.stdout or "") + (result.stderr or "")


def tail(result: Any, size: int = 6000) -> str:
    return output_of(result)[-size:]


def objects(moto: MotoServer, bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = moto.client()
    found: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def keys(moto: MotoServer, bucket: str, prefix: str = "") -> list[str]:
    s3 = moto.client()
    return [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


def read_json(moto: MotoServer, bucket: str, key: str) -> Any:
    return json.loads(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def run_reports(moto: MotoServer, bucket: str) -> list[dict]:
    """Every run report, oldest first."""
    reports = [read_json(moto, bucket, key) for key in keys(moto, bucket, f"{PREFIX}/mirror-state/runs/")]
    return sorted(reports, key=lambda report: report.get("finished_at", ""))


def archive_markers(moto: MotoServer, bucket: str) -> dict[str, dict]:
    """The journal of stored archives: marker key -> record (version, reference, sha256, ...)."""
    prefix = f"{PREFIX}/mirror-state/archives/"
    return {key: read_json(moto, bucket, key) for key in keys(moto, bucket, prefix)}
