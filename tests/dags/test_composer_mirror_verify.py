"""End to end: sync from the fixture upstream, break the bucket, then run the verify and prune DAGs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from composer_mirror.store.layout import PRUNE_MARKS, archive_path, intent_path
from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import AirflowEnv, MotoServer
from tests.mirror_checks import check_repository, snapshot

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SELECTION = ["psr/log", "psr/container", "monolog/monolog"]
GRACE_ZERO = {"AIRFLOW_VAR_COMPOSER_MIRROR_PRUNE_GRACE_HOURS": "0"}
MARKS = f"repo/{PRUNE_MARKS}"  # written by every prune, dry runs included


def newest_report(moto_server: MotoServer, bucket: str, kind: str) -> dict:
    s3 = moto_server.client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"repo/mirror-state/runs/{kind}-")["Contents"]
    newest = max(listed, key=lambda item: item["LastModified"])
    return json.loads(s3.get_object(Bucket=bucket, Key=newest["Key"])["Body"].read())


def run(airflow: AirflowEnv, dag_id: str, conf: dict | None = None, **env: str) -> tuple[int, str]:
    result = airflow.dags_test(dag_id, conf, **env)
    return result.returncode, result.stdout + result.stderr


def archive_keys(moto_server: MotoServer, bucket: str) -> list[str]:
    pages = moto_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="repo/dists/")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_verify_names_broken_archives_repair_restores_them_and_prune_deletes_only_orphans(
    mirror_airflow, moto_server: MotoServer, bucket: str
) -> None:
    registry = Registry.from_lock(FIXTURES / "symfony-demo/composer.lock")
    with RegistryServer(registry) as server:
        airflow = mirror_airflow(server.url, SELECTION)
        code, output = run(airflow, "composer_mirror_sync")
        assert code == 0, output[-4000:]

        s3 = moto_server.client()
        # A p2 file the mirror can rebuild exactly (no full advisories in it), and archives of other packages.
        lost = "psr/container"
        lost_key = f"repo/p2/{lost}.json"
        lost_body = s3.get_object(Bucket=bucket, Key=lost_key)["Body"].read()
        assert not json.loads(lost_body).get("security-advisories")
        keys = [key for key in archive_keys(moto_server, bucket) if key.split("/")[-1].encode() not in lost_body]
        corrupt, missing = keys[0], keys[-1]
        size = s3.head_object(Bucket=bucket, Key=corrupt)["ContentLength"]
        s3.put_object(Bucket=bucket, Key=corrupt, Body=b"\0" * size)
        s3.delete_object(Bucket=bucket, Key=missing)
        s3.delete_object(Bucket=bucket, Key=lost_key)

        # Listing, batches and results all go through the bucket; the last task clears them even on a failed run.
        code, output = run(airflow, "composer_mirror_verify", AIRFLOW_VAR_COMPOSER_MIRROR_HANDOFF_INLINE_BYTES="0")
        assert code != 0, "a broken mirror must fail the verify run"
        assert "/handoff/composer_mirror_verify/" in output
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="repo/mirror-state/handoff/")
        report = newest_report(moto_server, bucket, "verify")
        assert report["counts_by_kind"] == {"missing_archive": 1, "missing_p2": 1, "sha256_mismatch": 1}
        # The sync stored every archive with its digests: only the one overwritten without them was read.
        assert report["archives_hashed"] == 1
        for key in (corrupt, missing, lost_key):
            assert any(key in problem["detail"] for problem in report["problems"]), key
            assert key in output, f"the task log does not name {key}"

        code, output = run(airflow, "composer_mirror_verify", {"repair": True})
        assert code == 0, output[-4000:]
        report = newest_report(moto_server, bucket, "verify")
        assert report["problems"] == [] and len(report["repaired"]) == 3
        restored = s3.get_object(Bucket=bucket, Key=corrupt)["Body"].read()
        assert hashlib.sha256(restored).hexdigest() in corrupt
        assert s3.get_object(Bucket=bucket, Key=lost_key)["Body"].read() == lost_body

        orphan_bytes = b"PK\5\6" + b"\0" * 18
        orphan = "repo/" + archive_path(hashlib.sha256(orphan_bytes).hexdigest())
        s3.put_object(Bucket=bucket, Key=orphan, Body=orphan_bytes)
        before = snapshot(s3, bucket)

        # A manual run keeps its dry_run param (on by default) whatever the scheduled-delete setting says.
        code, output = run(
            airflow, "composer_mirror_prune", **GRACE_ZERO, AIRFLOW_VAR_COMPOSER_MIRROR_PRUNE_SCHEDULED_DELETE="true"
        )
        assert code == 0, output[-4000:]
        assert "[DRY RUN] would delete 1 objects" in output
        after_dry_run = snapshot(s3, bucket)
        assert after_dry_run.pop(MARKS) and after_dry_run == before, "a dry run changed more than its marks"

        code, output = run(airflow, "composer_mirror_prune", {"dry_run": False}, **GRACE_ZERO)
        assert code == 0, output[-4000:]
        after = snapshot(s3, bucket)
        # The deletion's intent says "done"; prune removes it once older than the grace period, which
        # the intent, written in this second, may or may not be yet (S3 times are whole seconds).
        intent = "repo/" + intent_path(orphan.removeprefix("repo/"))
        if intent in after:
            assert json.loads(s3.get_object(Bucket=bucket, Key=intent)["Body"].read())["state"] == "done"
            del after[intent]
        assert set(after) == set(before) - {orphan} | {MARKS}

        code, output = run(airflow, "composer_mirror_verify")
        assert code == 0, output[-4000:]
        report = newest_report(moto_server, bucket, "verify")
        assert report["archives"] > 0 and report["archives_hashed"] == 0, "restored archives carry their digests"

        code, output = run(airflow, "composer_mirror_verify", {"deep": True})
        assert code == 0, output[-4000:]
        report = newest_report(moto_server, bucket, "verify")
        assert report["archives_hashed"] == report["archives"]
    assert check_repository(airflow.variables["composer_mirror_public_url"]).problems == []
