"""Smoke test of `make bench` at a tiny size: the cold mirror (as setup) and the revalidation scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.integration


def test_bench_runs_and_writes_json_and_markdown(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "bench/run.py"), "--sizes", "20", "--scenarios", "c", "--quiet-wait", "0"]
    command += ["--repeat", "1"]
    command += ["--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    document = json.loads(output.read_text())
    rows = {(row["scenario"], row["setup"]): row for row in document["rows"]}
    assert set(rows) == {("b", True), ("c", False)}
    cold, warm = rows["b", True], rows["c", False]
    assert cold["dag"]["returncode"] == 0 and warm["dag"]["returncode"] == 0
    assert cold["dag"]["upstream"]["archive_downloads"] > 0
    assert cold["floor"]["statuses"].get("archive_200") == cold["floor"]["workload"]["archives"]
    assert warm["dag"]["upstream"].get("archive_downloads", 0) == 0
    assert warm["floor"]["statuses"].get("p2_304") == warm["dag"]["p2_files"] == 20
    assert warm["dag"]["peak_rss_process_mb"] > 50
    assert warm["dag"]["tasks"]["mapped"] == {"sync_metadata": 1, "fetch_archives": 1}
    assert "| size | scenario |" in output.with_suffix(".md").read_text()
    assert document["machine"]["nproc"] >= 1
