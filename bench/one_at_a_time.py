"""Re-archiving one version at a time: the naive mirror the cold run must beat at least tenfold.

What a mirror without batching or concurrency does for every version (Satis' archive step): the
real ``composer archive`` finds the version in the upstream repository, downloads its dist and
writes a new zip, which is then uploaded to S3 with one PUT; the next version starts when this one
is done. Every version costs a PHP start, the upstream metadata, a download and an upload, one
after another. Timed over an evenly spread sample of the registry's versions (the whole registry
would take hours) and reported as versions/s, which the caller turns into packages/s with the
cold run's own versions per package.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from composer_mirror.composer_format import parse_p2
from devtools.harness import composer_project


def sample_versions(upstream_url: str, names: list[str], count: int) -> list[tuple[str, str]]:
    """``count`` (name, version) pairs: packages spread over the registry, versions spread over each."""
    packages = names[:: max(1, len(names) // max(1, count // 3))]
    chosen: list[tuple[str, str]] = []
    for name in packages:
        response = requests.get(f"{upstream_url}/p2/{name}.json", timeout=60)
        response.raise_for_status()
        versions = [v["version"] for v in parse_p2(response.content, name)]
        chosen += [(name, version) for version in versions[:: max(1, len(versions) // 3)][:3]]
        if len(chosen) >= count:
            break
    return chosen[:count]


def run_one_at_a_time(
    upstream_url: str, names: list[str], s3: Any, bucket: str, workdir: Path, count: int
) -> dict[str, Any]:
    """Archive and upload ``count`` sampled versions one after another; wall time and rate."""
    env = composer_project(workdir, upstream_url)
    versions = sample_versions(upstream_url, names, count)
    out = workdir / "out"
    started = time.monotonic()
    uploaded = 0
    for name, version in versions:
        command = ["composer", "archive", name, version, "--format=zip", f"--dir={out}", "--file=archive"]
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        archive = out / "archive.zip"
        if result.returncode != 0 or not archive.exists():
            raise RuntimeError(f"composer archive {name} {version} failed: {result.stderr.strip()[-500:]}")
        s3.put_object(Bucket=bucket, Key=f"one-at-a-time/{name}/{version}.zip", Body=archive.read_bytes())
        uploaded += archive.stat().st_size
        archive.unlink()
    wall = time.monotonic() - started
    return {
        "versions": len(versions),
        "wall_s": round(wall, 3),
        "versions_per_s": round(len(versions) / wall, 2) if wall else None,
        "bytes_uploaded": uploaded,
    }
