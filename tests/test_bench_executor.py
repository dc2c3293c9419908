"""The executor rows' pure logic: the raw floor's requests from a run's request log, the task-instance
overhead, and the http.client floor against a local registry (no Airflow, no timing asserted)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.executor import BenchStackSettings, floor_requests, http_client_floor, ti_overhead, union_length
from bench.raw_floor import workload_from
from devtools.fixture_registry import Registry, RegistryServer

pytestmark = pytest.mark.perf

VALIDATORS = {"/p2/v/a.json": ['"etag-a"', "Sun, 06 Dec 2026 10:00:00 GMT"]}


def test_floor_requests_replay_root_and_list_and_revalidate_every_p2_file_once() -> None:
    records: list[list[Any]] = [
        ["GET", "/packages.json", 200, 10, "main", False],
        ["GET", "/packages/list.json?filter=vendor%2A%2F%2A", 200, 10, "main", False],
        ["GET", "/p2/v/a.json", 304, 0, "main", True],
        ["GET", "/p2/v/a.json", 304, 0, "main", True],  # a retry: the floor makes it once
        ["GET", "/p2/v/b~dev.json", 404, 0, "main", False],
        ["HEAD", "/p2/v/c.json", 200, 0, "main", False],
    ]
    requests = floor_requests(workload_from(records, [], VALIDATORS))
    assert requests == [
        ("/packages.json", {}),
        ("/packages/list.json?filter=vendor%2A%2F%2A", {}),
        ("/p2/v/a.json", {"If-None-Match": '"etag-a"', "If-Modified-Since": "Sun, 06 Dec 2026 10:00:00 GMT"}),
        ("/p2/v/b~dev.json", {}),  # no validators held (the registry had none): asked unconditionally
    ]


def test_floor_requests_refuse_a_run_that_downloaded_archives() -> None:
    records: list[list[Any]] = [["GET", "/codeload/v/a/abc.zip", 200, 100, "main", False]]
    with pytest.raises(ValueError, match="not a revalidation"):
        floor_requests(workload_from(records, [], {}))


def ti(task: str, queued: str, start: str | None, end: str | None, map_index: int = -1) -> dict[str, Any]:
    day = "2026-12-06T10:00:"
    return {
        "task_id": task,
        "map_index": map_index,
        "queued_when": day + queued + "Z",
        "start_date": start and day + start + "Z",
        "end_date": end and day + end + "Z",
    }


def test_ti_overhead_splits_wall_time_into_running_queued_and_idle() -> None:
    instances = [
        ti("plan", "00", "02", "05"),
        ti("sync", "06", "08", "18", map_index=0),
        ti("sync", "06", "10", "20", map_index=1),
        ti("skipped", "20", None, None),
    ]
    overhead = ti_overhead(instances, wall_s=30.0)
    assert overhead["task_instances"] == 4 and overhead["ran"] == 3
    assert overhead["mapped"] == {"sync": 2} and overhead["mapped_total"] == 2
    assert overhead["run_s"] == 3 + 10 + 10
    assert overhead["run_s_by_task"] == {"plan": 3, "sync": 20}
    assert overhead["queued_s"] == 2 + 2 + 4
    assert overhead["busy_s"] == 3 + 12  # 02-05 and 08-20
    assert overhead["idle_s"] == 15
    assert overhead["wall_per_ti_s"] == 10


def test_union_length_merges_overlapping_and_touching_intervals() -> None:
    assert union_length([]) == 0
    assert union_length([(5, 7), (0, 2), (1, 3), (3, 4)]) == 4 + 2


def test_bench_stack_settings_leave_the_selection_to_the_metadata_database(tmp_path: Any) -> None:
    settings = BenchStackSettings(tmp_path, ["vendor*/*"], "http://127.0.0.1:1")
    assert "AIRFLOW_VAR_COMPOSER_MIRROR_PACKAGES" not in settings.airflow_settings()
    assert settings.airflow_settings()["AIRFLOW_VAR_COMPOSER_MIRROR_UPSTREAM_URL"] == "http://127.0.0.1:1"


@pytest.mark.parametrize("registry_options", [{"synthetic": 12, "versions": 1}])
def test_http_client_floor_gets_304_for_every_validated_p2_file(
    registry: Registry, registry_server: RegistryServer
) -> None:
    names = registry.package_names()
    requests = [("/packages.json", {})]
    for name in names:
        body = registry.p2_file(name, False, registry_server.url)
        headers = {"If-None-Match": body.etag, "If-Modified-Since": body.last_modified_http}
        requests.append((f"/p2/{name}.json", headers))
    result = http_client_floor(requests, registry_server.url, threads=3)
    assert result["errors"] == []
    assert result["statuses"] == {"200": 1, "304": len(names)}
