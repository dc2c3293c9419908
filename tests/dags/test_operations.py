"""Alerts and the staleness check under `airflow dags test`, against moto: a real failing run reaches
the configured notifier, a stale or fresh status.json is judged, a broken notifier setting hides nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devtools.harness import AirflowEnv, MotoServer
from tests.dags.recording_notifier import read_notifications

pytestmark = pytest.mark.integration

NOTIFIER = "tests.dags.recording_notifier.RecordingNotifier"
STATUS = "repo/status.json"
UPSTREAM = "http://127.0.0.1:9"  # never contacted: neither DAG run here reads the upstream


def notifier_setting(path: Path) -> str:
    return json.dumps({"class": NOTIFIER, "kwargs": {"path": str(path)}})


def output(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout + result.stderr


def put_status(moto_server: MotoServer, bucket: str, hours_ago: float) -> str:
    generated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - hours_ago * 3600))
    body = json.dumps({"generated_at": generated_at, "packages": 3}).encode()
    moto_server.client().put_object(Bucket=bucket, Key=STATUS, Body=body)
    return generated_at


def test_a_failed_run_reaches_the_configured_notifier_once(mirror_airflow, tmp_path: Path) -> None:
    """An empty bucket is a broken mirror: verify fails its run, at once (a verdict is not retried)."""
    recorded = tmp_path / "alerts.jsonl"
    airflow: AirflowEnv = mirror_airflow(UPSTREAM, [], composer_mirror_notifier=notifier_setting(recorded))
    run = airflow.dags_test("composer_mirror_verify")
    assert run.returncode != 0, output(run)[-3000:]
    assert "up_for_retry" not in output(run).lower()
    alerts = read_notifications(recorded)
    assert len(alerts) == 1, output(run)[-6000:]
    [alert] = alerts
    assert alert["message"] == f"composer_mirror_verify: run {alert['run_id']} failed, task report (task_failure)"


def test_freshness_alerts_and_fails_on_a_stale_repository_and_passes_a_fresh_one(
    mirror_airflow, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    recorded = tmp_path / "alerts.jsonl"
    airflow: AirflowEnv = mirror_airflow(
        UPSTREAM, [], composer_mirror_notifier=notifier_setting(recorded), composer_mirror_max_age_hours="6"
    )
    put_status(moto_server, bucket, hours_ago=5.5)
    fresh = airflow.dags_test("composer_mirror_freshness")
    assert fresh.returncode == 0, output(fresh)[-3000:]
    assert read_notifications(recorded) == []

    published = put_status(moto_server, bucket, hours_ago=7)
    stale = airflow.dags_test("composer_mirror_freshness")
    assert stale.returncode != 0, output(stale)[-3000:]
    alerts = read_notifications(recorded)
    assert len(alerts) == 2, output(stale)[-6000:]
    staleness, run_failed = alerts
    assert staleness["message"] == (
        f"repository is stale: {STATUS}: last published at {published}, 7.0 h ago; "
        "threshold 6 h (composer_mirror_max_age_hours)"
    )
    assert run_failed["message"].endswith("failed, task check_freshness (task_failure)")


def test_a_broken_notifier_setting_is_logged_and_the_run_still_fails(mirror_airflow) -> None:
    airflow: AirflowEnv = mirror_airflow(
        UPSTREAM, [], composer_mirror_notifier='{"class": "no_such_provider.notifications.Notifier"}'
    )
    run = airflow.dags_test("composer_mirror_freshness")  # no status.json: stale
    log = output(run)
    assert run.returncode != 0, log[-3000:]
    assert f"{STATUS} is missing" in log
    assert "could not send the alert through the notifier in the Airflow Variable composer_mirror_notifier" in log
    assert "cannot import no_such_provider.notifications.Notifier" in log
