"""Tests for archives: content-addressed paths, zip checks, and mirroring one dist into moto S3."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from composer_mirror.archives import ArchiveRecord, check_zip, load_markers, mirror_archive
from composer_mirror.errors import ArchiveError
from composer_mirror.store import ARCHIVE_CACHE, ZIP, S3Store
from composer_mirror.store.layout import archive_id, archive_marker_prefix, archive_path
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from devtools.fixture_registry import Registry, RegistryServer
from tests.composer_mirror.mirror_builder import make_zip

BUCKET = "archive-bucket"
SHA = "0123456789abcdef" * 4
MB = 1 << 20


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
    assert ArchiveRecord.from_json({**record.to_json(), "unknown": "ignored"}) == record


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


# --- check_zip: the central directory is sized up before zipfile reads it -----------------------
# The records of the formats (APPNOTE 4.3.7, 4.3.12, 4.3.14-16), as zipfile packs them.
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
CENTRAL_RECORD = struct.Struct("<4s4B4HL2L5H2L")
END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")
LOCATOR64 = struct.Struct("<4sLQL")
SECRET_URL = "https://up.example/a.zip?access_token=secret"


def local_header(name: bytes = b"x") -> bytes:
    return LOCAL_HEADER.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name


def central_records(count: int, name: bytes = b"x", offset: int = 0) -> bytes:
    """``count`` records of one ``name`` whose local header is at ``offset``: 47 bytes each."""
    record = CENTRAL_RECORD.pack(b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
    return (record + name) * count


def end64(entries: int, size: int, offset: int, *, extensible: int = 0) -> bytes:
    return END64.pack(b"PK\x06\x06", 44 + extensible, 45, 45, 0, 0, entries, entries, size, offset)


def end(entries: int, size: int, offset: int) -> bytes:
    return END.pack(b"PK\x05\x06", 0, 0, entries, entries, size, offset, 0)


def crafted_zip(records: int, *, zip64: bool) -> bytes:
    """One local header and ``records`` central-directory records all pointing at it.

    The plain end record can declare at most 65535 entries, so the plain archive declares that
    many and holds more; the zip64 one declares what it holds, as zipfile writes it.
    """
    head = local_header()
    directory = central_records(records)
    if not zip64:
        return head + directory + end(min(records, 0xFFFF), len(directory), len(head))
    at = len(head) + len(directory)
    zip64_end = end64(records, len(directory), len(head)) + LOCATOR64.pack(b"PK\x06\x07", 0, at, 1)
    return head + directory + zip64_end + end(0xFFFF, len(directory), len(head))


@pytest.fixture
def zip_infos(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the ZipInfos zipfile builds while the test runs (it builds one per directory record)."""
    built: list[str] = []
    original = zipfile.ZipInfo.__init__

    def counting(self: zipfile.ZipInfo, filename: str = "NoName", *args: Any, **kwargs: Any) -> None:
        built.append(filename)
        original(self, filename, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipInfo, "__init__", counting)
    return built


def refused_within(path: str, budget: int) -> tuple[ArchiveError, int]:
    """check_zip's refusal of ``path`` and the peak of what it allocated, which must stay under ``budget``."""
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError) as raised:
            check_zip(path, url=SECRET_URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "secret" not in str(raised.value)
    assert peak < budget, f"check_zip allocated {peak} bytes at its peak"
    return raised.value, peak


@pytest.mark.parametrize(
    ("zip64", "message"),
    [
        (False, "has more central directory records than the 65535 entries its end record declares"),
        (True, "declares 100001 entries, over the 100000 limit"),
    ],
    ids=["plain", "zip64"],
)
def test_a_directory_of_more_records_than_the_limit_is_refused_before_zipfile_reads_it(
    tmp_path: Path, zip_infos: list[str], zip64: bool, message: str
) -> None:
    data = crafted_zip(100_001, zip64=zip64)
    assert len(data) > 4 * MB  # several read buffers of directory, 47 bytes a record
    error, _ = refused_within(write(tmp_path, data), budget=2 * MB)
    assert str(error) == f"https://up.example/a.zip {message}"
    assert zip_infos == []


def test_a_declared_directory_over_the_size_bound_is_refused_without_reading_it(
    tmp_path: Path, zip_infos: list[str]
) -> None:
    size = 128 * MB  # over any bound for 100000 entries; the file is sparse, so holds it without costing it
    head = local_header()
    path = tmp_path / "archive.zip"
    with path.open("wb") as out:
        out.write(head)
        out.seek(len(head) + size)
        at = out.tell()
        out.write(end64(1, size, len(head)) + LOCATOR64.pack(b"PK\x06\x07", 0, at, 1) + end(0xFFFF, 0xFFFFFFFF, 0))
    error, _ = refused_within(str(path), budget=2 * MB)
    assert re.fullmatch(
        rf"https://up\.example/a\.zip declares a central directory of {size} bytes, over the \d+-byte limit .*",
        str(error),
    )
    assert zip_infos == []


def test_a_declared_directory_that_does_not_fit_in_the_file_is_refused(tmp_path: Path, zip_infos: list[str]) -> None:
    head = local_header()
    directory = central_records(1)
    data = head + directory + end(1, MB, len(head))
    error, _ = refused_within(write(tmp_path, data), budget=MB)
    assert str(error) == (
        "https://up.example/a.zip is not a valid zip archive: its end record declares a central directory of "
        f"{MB} bytes, more than the {len(head) + len(directory)} bytes before it"
    )
    assert zip_infos == []


def test_a_zip64_locator_pointing_at_another_zip64_end_record_is_refused(tmp_path: Path, zip_infos: list[str]) -> None:
    """A locator may point at a zip64 end record other than the one before it, whose extensible data
    holds a small directory and that record; zipfile versions differ in which record they read, so
    the large directory the first one describes is refused rather than trusted to be skipped."""
    head = local_header()
    large = central_records(100_001)
    small = central_records(1)
    decoy_at = len(head) + len(large)
    tail = small + end64(1, len(small), decoy_at + END64.size)
    decoy = end64(100_001, len(large), len(head), extensible=len(tail))
    locator = LOCATOR64.pack(b"PK\x06\x07", 0, decoy_at, 1)
    data = head + large + decoy + tail + locator + end(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    error, _ = refused_within(write(tmp_path, data), budget=2 * MB)
    assert str(error) == (
        "https://up.example/a.zip is not a valid zip archive: its zip64 locator points at a zip64 end record "
        f"at byte {decoy_at}, not at the one before the locator"
    )
    assert zip_infos == []


def test_a_directory_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    assert check_zip(write(tmp_path, crafted_zip(100_000, zip64=True)), url="https://up.example/a.zip") == 100_000


def test_a_zip64_archive_is_read_through_its_zip64_end_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_infos: list[str]
) -> None:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)  # zipfile writes zip64 end records past it
    data = zip_with("pkg/composer.json", "pkg/src/A.php", "pkg/src/B.php")
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    zip_infos.clear()
    assert check_zip(write(tmp_path, data), url="https://up.example/a.zip") == 3
    assert len(zip_infos) == 3


def commented_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg/composer.json", b"{}")
        archive.writestr("pkg/src/A.php", b"<?php\n")
        archive.comment = b"a comment that puts the end record 60 KB before the end of the file" + b"." * 60_000
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"#!/bin/sh\nexit 0\n" + zip_with("pkg/composer.json", "pkg/src/A.php"), id="prepended"),
        pytest.param(commented_zip(), id="commented"),
    ],
)
def test_a_zip_with_prepended_bytes_or_a_comment_is_accepted(tmp_path: Path, data: bytes) -> None:
    assert check_zip(write(tmp_path, data), url="https://up.example/a.zip") == 2


# --- mirror_archive -----------------------------------------------------------------------------
@dataclass
class Env:
    s3: object
    store: S3Store
    client: UpstreamClient
    upstream: RegistryServer

    def serve(self, path: str, data: bytes) -> str:
        self.upstream.files[path] = data
        return self.upstream.url + path

    def keys(self, prefix: str = "") -> list[str]:
        return [info.path for info in self.store.list_objects(prefix)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RegistryServer]:
    """An upstream serving nothing but the files a test puts there (an empty fixture registry)."""
    with RegistryServer(Registry()) as server:
        yield server


@pytest.fixture
def env(session: boto3.session.Session, upstream: RegistryServer) -> Iterator[Env]:
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
