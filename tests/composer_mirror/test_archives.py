"""Tests for archives: content-addressed paths, zip checks, and mirroring one dist into moto S3."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from composer_mirror.archives import ArchiveRecord, check_zip, load_markers, mirror_archive
from composer_mirror.errors import ArchiveError
from composer_mirror.store import ARCHIVE_CACHE, ZIP, S3Store
from composer_mirror.store.layout import archive_id, archive_marker_prefix, archive_path
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from tests.composer_mirror.mirror_builder import Upstream, make_zip

BUCKET = "archive-bucket"
SHA = "0123456789abcdef" * 4


# --- archive_path -------------------------------------------------------------------------------
def test_archive_path_is_content_addressed_and_sharded_by_the_digest() -> None:
    assert archive_path(SHA) == f"dists/01/23/{SHA}.zip"


@pytest.mark.parametrize(
    "digest",
    ["", SHA[:-1], SHA + "0", SHA.upper(), "g" * 64, "../" + SHA[3:], SHA[:32] + "/" + SHA[33:], "a" * 40],
)
def test_archive_path_refuses_anything_but_a_lower_case_sha256(digest: str) -> None:
    with pytest.raises(ArchiveError, match="not a sha256 digest"):
        archive_path(digest)


def test_an_archive_record_knows_its_path_and_round_trips_as_a_dict() -> None:
    record = ArchiveRecord("1.0.0", "abc", "f" * 40, SHA, 123, "https://up.example/a.zip")
    assert record.path == archive_path(SHA)
    assert ArchiveRecord.from_dict({**record.to_dict(), "unknown": "ignored"}) == record


# --- check_zip ----------------------------------------------------------------------------------
def zip_with(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), b"<?php\n")
    return buffer.getvalue()


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    return str(path)


def test_check_zip_accepts_a_zip_and_counts_its_entries(tmp_path: Path) -> None:
    data = zip_with("pkg/composer.json", "pkg/src/A.php", "pkg/src/..hidden/B.php", "pkg/file..php")
    assert check_zip(write(tmp_path, data), url="https://up.example/a.zip") == 4


def test_check_zip_accepts_an_empty_zip(tmp_path: Path) -> None:
    assert check_zip(write(tmp_path, zip_with()), url="https://up.example/a.zip") == 0


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html>rate limited</html>",
        b"PK\x03\x04 but nothing else",
        zip_with("a/composer.json")[:-10],
    ],
)
def test_check_zip_refuses_what_is_not_a_zip(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ArchiveError, match="is not a valid zip archive"):
        check_zip(write(tmp_path, data), url="https://up.example/a.zip")


def test_check_zip_refuses_a_download_cut_before_its_central_directory(tmp_path: Path) -> None:
    data = zip_with("a/composer.json", "a/src/A.php")
    truncated = data[: data.index(b"PK\x01\x02")]
    with pytest.raises(ArchiveError, match="is not a valid zip archive"):
        check_zip(write(tmp_path, truncated), url="https://up.example/a.zip")


@pytest.mark.parametrize(
    "entry",
    ["../evil.php", "pkg/../../evil.php", "pkg/..", "/etc/cron.d/x", "\\windows\\x", "..\\evil.php", "C:/x.php",
     "c:\\x.php", "D:evil"],
)  # fmt: skip
def test_check_zip_refuses_entries_that_escape_the_install_directory(tmp_path: Path, entry: str) -> None:
    data = zip_with("pkg/composer.json", entry)
    with pytest.raises(ArchiveError, match="unsafe entry path"):
        check_zip(write(tmp_path, data), url="https://up.example/a.zip")


def test_check_zip_errors_never_show_a_token_from_the_url(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as raised:
        check_zip(write(tmp_path, b"junk"), url="https://user:pw@up.example/a.zip?access_token=secret")
    assert "secret" not in str(raised.value) and "pw" not in str(raised.value)
    assert "https://up.example/a.zip" in str(raised.value)


# --- mirror_archive -----------------------------------------------------------------------------
@dataclass
class Env:
    s3: object
    store: S3Store
    client: UpstreamClient
    upstream: Upstream

    def serve(self, path: str, data: bytes) -> str:
        self.upstream.files[path] = data
        return self.upstream.url + path

    def keys(self, prefix: str = "") -> list[str]:
        return [info.path for info in self.store.list(prefix)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture
def env(session: boto3.session.Session, upstream: Upstream) -> Iterator[Env]:
    upstream.files.clear()
    with mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = S3Store(s3, BUCKET, "repo/", backoff=0.001)
        with UpstreamClient(FetchPolicy(upstream.url), retry=RetryPolicy(attempts=1)) as client:
            yield Env(s3, store, client, upstream)


def mirror(env: Env, name: str, version: str, dist: dict, normalized: str | None = None) -> ArchiveRecord:
    return mirror_archive(
        env.store,
        env.client,
        name=name,
        version=version,
        normalized=normalized or f"{version}.0",
        dist=dist,
        max_bytes=1 << 20,
    )


def test_a_mirrored_archive_is_stored_by_its_sha256_with_its_digests_recorded(env: Env) -> None:
    data = make_zip("acme/tool", "1.0.0")
    url = env.serve("/dist/acme/tool/1.0.0.zip", data)
    record = mirror(env, "acme/tool", "1.0.0", {"type": "zip", "url": url, "reference": "abc123", "shasum": ""})
    assert record == ArchiveRecord(
        "1.0.0", "abc123", hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data), url
    )
    stored = env.s3.get_object(Bucket=BUCKET, Key="repo/" + record.path)
    assert stored["Body"].read() == data
    assert stored["ContentType"] == ZIP
    assert stored["CacheControl"] == ARCHIVE_CACHE
    # Its digests travel with it, so verify can check it with a HEAD.
    assert stored["Metadata"] == {"sha1": record.sha1, "sha256": record.sha256}


def test_a_dist_without_a_type_is_taken_as_a_zip(env: Env) -> None:
    url = env.serve("/dist/a.zip", make_zip("acme/tool", "1.0.0"))
    assert mirror(env, "acme/tool", "1.0.0", {"url": url}).reference == ""


def test_a_matching_upstream_shasum_is_accepted_whatever_its_case(env: Env) -> None:
    data = make_zip("acme/tool", "1.0.0")
    url = env.serve("/dist/a.zip", data)
    dist = {"type": "zip", "url": url, "shasum": hashlib.sha1(data).hexdigest().upper()}
    assert mirror(env, "acme/tool", "1.0.0", dist).sha1 == hashlib.sha1(data).hexdigest()


def test_a_shasum_mismatch_is_refused_and_nothing_is_stored(env: Env) -> None:
    url = env.serve("/dist/a.zip", make_zip("acme/tool", "1.0.0"))
    with pytest.raises(
        ArchiveError, match=r"acme/tool 1\.0\.0: sha1 [0-9a-f]{40} does not match upstream shasum 0{40}"
    ):
        mirror(env, "acme/tool", "1.0.0", {"type": "zip", "url": url, "shasum": "0" * 40})
    assert env.keys() == []


@pytest.mark.parametrize("kind", ["tar", "xz", "git", "path"])
def test_a_dist_that_is_not_a_zip_is_refused_before_downloading(env: Env, kind: str) -> None:
    with pytest.raises(ArchiveError, match=f"dist type '{kind}' is not zip"):
        mirror(env, "acme/tool", "1.0.0", {"type": kind, "url": env.upstream.url + "/never/served.tar"})
    assert env.keys() == []


def test_a_download_that_is_not_a_zip_is_refused_and_nothing_is_stored(env: Env) -> None:
    url = env.serve("/dist/a.zip", b"<html>Too Many Requests</html>")
    with pytest.raises(ArchiveError, match="is not a valid zip archive"):
        mirror(env, "acme/tool", "1.0.0", {"type": "zip", "url": url})
    assert env.keys() == []


def test_identical_bytes_of_two_packages_are_uploaded_once(env: Env) -> None:
    data = make_zip("shared/bytes", "1.0.0")
    first_url = env.serve("/dist/one.zip", data)
    second_url = env.serve("/dist/two.zip", data)
    first = mirror(env, "acme/one", "1.0.0", {"type": "zip", "url": first_url, "reference": "r1"})
    env.store.requests.clear()
    second = mirror(env, "acme/two", "2.0.0", {"type": "zip", "url": second_url, "reference": "r2"})
    assert second.path == first.path
    # The refused create found it; it is claimed (a GET and a PUT of its intent, so a prune deleting it
    # meanwhile keeps it), and the last PUT is the marker.
    assert env.store.request_counts() == {"CREATE": 1, "GET": 1, "PUT": 2}
    assert env.keys("dists/") == [first.path]


def test_a_marker_is_journaled_per_version_and_load_markers_reads_it_back(env: Env) -> None:
    records = {}
    for version, reference in (("1.0.0", "ref-a"), ("1.1.0", "ref-b")):
        url = env.serve(f"/dist/{version}.zip", make_zip("acme/tool", version))
        dist = {"type": "zip", "url": url, "reference": reference}
        records[archive_id(f"{version}.0", reference)] = mirror(env, "acme/tool", version, dist)
    assert load_markers(env.store, "acme/tool") == records
    assert sorted(env.keys(archive_marker_prefix("acme/tool"))) == sorted(
        f"{archive_marker_prefix('acme/tool')}{identity}.json" for identity in records
    )


def test_load_markers_of_a_package_without_archives_is_empty(env: Env) -> None:
    url = env.serve("/dist/a.zip", make_zip("acme/tool", "1.0.0"))
    mirror(env, "acme/tool", "1.0.0", {"type": "zip", "url": url})
    assert load_markers(env.store, "acme/other") == {}
    assert load_markers(env.store, "acme/tool-two") == {}  # a name sharing a prefix is not mixed in


def test_the_recorded_source_url_never_keeps_a_query_string(env: Env) -> None:
    url = env.serve("/dist/a.zip?access_token=secret", make_zip("acme/tool", "1.0.0"))
    record = mirror(env, "acme/tool", "1.0.0", {"type": "zip", "url": url})
    assert record.source_url == env.upstream.url + "/dist/a.zip"
    assert b"secret" not in env.store.get(archive_marker_prefix("acme/tool") + archive_id("1.0.0.0", "") + ".json").body
