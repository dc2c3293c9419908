"""Smoke test of `make bench` at a tiny size: the fixed cost beside Airflow's own, the cold mirror with its
baselines, and the revalidation scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.perf]


def test_bench_runs_and_writes_json_and_markdown(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "bench/run.py"), "--sizes", "20", "--scenarios", "abc", "--quiet-wait", "0"]
    command += ["--repeat", "1", "--cold-sizes", "20", "--one-at-a-time-versions", "3"]
    command += ["--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    document = json.loads(output.read_text())
    rows = {(row["scenario"], row["setup"]): row for row in document["rows"]}
    assert set(rows) == {("a", False), ("b", False), ("c", False)}
    empty, cold, warm = rows["a", False], rows["b", False], rows["c", False]
    own = empty["airflow_floor"]
    assert own["returncode"] == 0 and own["wall_s"] > 0 and own["phases_s"]["tasks"] > 0
    assert any("Airflow alone" in detail for _name, _ok, detail in empty["checks"])
    assert cold["marginal_s"] is not None
    assert cold["dag"]["returncode"] == 0 and warm["dag"]["returncode"] == 0
    assert cold["dag"]["upstream"]["archive_downloads"] > 0
    assert cold["floor"]["statuses"].get("archive_200") == cold["floor"]["workload"]["archives"]
    assert cold["one_at_a_time"]["versions"] == 3 and cold["one_at_a_time"]["versions_per_s"] > 0
    assert any("one version at a time" in name for name, _ok, _detail in cold["checks"])
    assert warm["dag"]["upstream"].get("archive_downloads", 0) == 0
    assert warm["floor"]["statuses"].get("p2_304") == warm["dag"]["p2_files"] == 20
    assert warm["dag"]["peak_rss_process_mb"] > 50
    assert warm["dag"]["tasks"]["mapped"] == {"sync_metadata": 1, "fetch_archives": 1}
    assert "| size | scenario |" in output.with_suffix(".md").read_text()
    assert document["machine"]["nproc"] >= 1
