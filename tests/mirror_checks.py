"""Independent checks of a published mirror, done the way a client sees it (anonymous HTTP).

Written apart from the library on purpose: the invariants are checked by code that shares
nothing with the code that published them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests


@dataclass
class RepositoryCheck:
    packages: dict[str, list[str]] = field(default_factory=dict)  # name -> versions
    archives: int = 0
    problems: list[str] = field(default_factory=list)


def expand(entries: list[dict]) -> list[dict]:
    out, previous = [], None
    for entry in entries:
        current = dict(previous or {})
        for key, value in entry.items():
            if value == "__unset":
                current.pop(key, None)
            else:
                current[key] = value
        out.append(current)
        previous = current
    return out


def check_repository(repository_url: str, *, download: bool = True) -> RepositoryCheck:
    """Walk root -> p2 files -> archives; every dist must answer 200 with bytes matching shasum."""
    result = RepositoryCheck()
    session = requests.Session()
    base = repository_url.rstrip("/") + "/"
    root_response = session.get(base + "packages.json", timeout=30)
    if root_response.status_code != 200:
        result.problems.append(f"packages.json answered {root_response.status_code}")
        return result
    root = root_response.json()
    template = root.get("metadata-url", "")
    for key in ("providers-url", "provider-includes", "notify-batch", "search", "list", "metadata-changes-url"):
        if key in root:
            result.problems.append(f"root has upstream key {key}")
    if "%package%" not in template:
        result.problems.append("root has no metadata-url")
        return result
    for name in root.get("available-packages", []):
        versions: list[str] = []
        for suffix in ("", "~dev"):
            url = urljoin(base, template.replace("%package%", name + suffix))
            response = session.get(url, timeout=30)
            if response.status_code != 200:
                if suffix == "":
                    result.problems.append(f"{name}: p2 file answered {response.status_code}")
                continue
            entries = expand(response.json()["packages"].get(name, []))
            for entry in entries:
                versions.append(entry["version"])
                dist = entry.get("dist") or {}
                if not dist.get("url", "").startswith(repository_url.rstrip("/")):
                    result.problems.append(f"{name} {entry['version']}: dist not on the mirror: {dist.get('url')}")
                    continue
                if download:
                    check_archive(session, name, entry, result)
        result.packages[name] = versions
    return result


def check_archive(session: requests.Session, name: str, entry: dict, result: RepositoryCheck) -> None:
    dist = entry["dist"]
    response = session.get(dist["url"], timeout=60)
    if response.status_code != 200:
        result.problems.append(f"{name} {entry['version']}: archive answered {response.status_code}")
        return
    result.archives += 1
    if hashlib.sha1(response.content).hexdigest() != dist.get("shasum"):
        result.problems.append(f"{name} {entry['version']}: archive bytes do not match shasum")
    digest = urlsplit(dist["url"]).path.rsplit("/", 1)[-1].removesuffix(".zip")
    if hashlib.sha256(response.content).hexdigest() != digest:
        result.problems.append(f"{name} {entry['version']}: archive key is not its sha256")


# Written by every run on purpose: the run report and status.json, its public face.
REWRITTEN_EVERY_RUN = ("mirror-state/runs/", "status.json")


def snapshot(s3, bucket: str, exclude: tuple[str, ...] = REWRITTEN_EVERY_RUN) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """key -> (ETag, Last-Modified) of every object, to prove a run rewrote nothing."""
    objects: dict[str, tuple[str, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if not any(part in item["Key"] for part in exclude):
                objects[item["Key"]] = (item["ETag"], item["LastModified"].isoformat())
    return objects


def root_document(repository_url: str) -> dict:
    return json.loads(requests.get(repository_url.rstrip("/") + "/packages.json", timeout=30).content)
