"""Tests for the publisher: mirrored version entries, p2 files and writing the root packages.json (moto S3)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from composer_mirror.archives import ArchiveRecord
from composer_mirror.composer_format import dump_p2, parse_p2
from composer_mirror.errors import ConflictError
from composer_mirror.publisher import (
    PublishedFiles,
    RootUpdate,
    load_record,
    publish_root,
    read_published,
    write_package,
)
from composer_mirror.record import MirroredVersion, PackageRecord, merge_offered, published_entry, stored_entry
from composer_mirror.root import build_root
from composer_mirror.store import CAS_ATTEMPTS, ROOT_CACHE, S3Store, md5_etag
from composer_mirror.store.layout import ROOT, p2_path

REPO = "https://mirror.example/repo"
SHA256 = "ab" * 32
RECORD = ArchiveRecord("1.0.0", "mirrored-ref", "c" * 40, SHA256, 10, "https://api.github.com/x")


def upstream_entry(version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {
        "name": "acme/tool",
        "version": version,
        "version_normalized": f"{version}.0" if not version.startswith("dev-") else version,
        "require": {"php": ">=8.1", "psr/log": "^3.0"},
        "source": {"type": "git", "url": "https://github.com/acme/tool.git", "reference": "upstream-ref"},
        "dist": {"type": "tar", "url": "https://api.github.com/repos/acme/tool/zipball/x", "reference": "x",
                 "shasum": "", "mirrors": [{"url": "https://elsewhere"}]},
        "notification-url": "https://packagist.org/downloads/",
        **extra,
    }  # fmt: skip


def root_of(store: S3Store) -> dict[str, Any]:
    return json.loads(store.get(ROOT).body)


# --- published_entry ----------------------------------------------------------------------------
def mirrored(entry: dict[str, Any]) -> MirroredVersion:
    return MirroredVersion(stored_entry(entry), RECORD)


def test_a_published_entry_points_the_dist_at_the_mirrors_archive_with_its_sha1() -> None:
    assert published_entry(mirrored(upstream_entry()), REPO)["dist"] == {
        "type": "zip",
        "url": f"{REPO}/dists/ab/ab/{SHA256}.zip",
        "reference": "mirrored-ref",
        "shasum": "c" * 40,
    }


def test_a_published_entry_drops_the_notification_url_and_keeps_everything_else() -> None:
    entry = upstream_entry(extra={"branch-alias": {"dev-main": "1.x-dev"}})
    published = published_entry(mirrored(entry), REPO)
    assert "notification-url" not in published
    assert {k: v for k, v in published.items() if k != "dist"} == {
        k: v for k, v in entry.items() if k not in ("dist", "notification-url")
    }


def test_a_published_entry_never_shares_the_records_objects() -> None:
    version = mirrored(upstream_entry())
    before = copy.deepcopy(version.entry)
    published = published_entry(version, REPO)
    published["require"]["evil/pkg"] = "*"
    published["source"]["url"] = "changed"
    assert version.entry == before


# --- publish_root -------------------------------------------------------------------------------
def test_the_first_root_is_written_with_a_short_cache(store: S3Store) -> None:
    written, available = root_update(publish_root(store, REPO, ["psr/log", "acme/tool"]))
    assert (written, available) == (True, ["acme/tool", "psr/log"])
    assert root_of(store)["available-packages"] == ["acme/tool", "psr/log"]
    head = store.head(ROOT)
    assert head.cache_control == ROOT_CACHE


def test_publishing_keeps_every_package_already_published(store: S3Store) -> None:
    publish_root(store, REPO, ["psr/log", "acme/tool"])
    written, available = root_update(publish_root(store, REPO, ["twig/twig"]))
    assert written is True
    assert available == ["acme/tool", "psr/log", "twig/twig"]


def test_only_removed_packages_leave_the_root_and_not_when_published_again(store: S3Store) -> None:
    publish_root(store, REPO, ["psr/log", "acme/tool", "gone/away", "back/again"])
    _written, available = root_update(
        publish_root(store, REPO, ["back/again"], removed=["gone/away", "back/again", "never/was"])
    )
    assert available == ["acme/tool", "back/again", "psr/log"]
    assert root_of(store)["available-packages"] == available


def test_an_unchanged_root_is_not_written_again(store: S3Store) -> None:
    publish_root(store, REPO, ["psr/log", "acme/tool"], advisories=True)
    etag = store.head(ROOT).etag
    store.requests.clear()
    written, available = root_update(publish_root(store, REPO, ["psr/log"], advisories=True))
    assert (written, available) == (False, ["acme/tool", "psr/log"])
    assert store.request_counts() == {"GET": 1}
    assert store.head(ROOT).etag == etag


def test_switching_advisories_on_rewrites_the_root(store: S3Store) -> None:
    publish_root(store, REPO, ["psr/log"])
    written, _available = root_update(publish_root(store, REPO, [], advisories=True))
    assert written is True
    assert root_of(store)["security-advisories"] == {"metadata": True}


def test_an_unreadable_root_is_rebuilt_from_the_mirrored_set_and_says_why(store: S3Store) -> None:
    store.put(p2_path("acme/tool"), dump_p2("acme/tool", []))
    store.put(ROOT, b"{broken")
    update = publish_root(store, REPO, ["psr/log"], mirrored=["acme/tool", "psr/log"])
    assert (update.written, update.available) == (True, ["acme/tool", "psr/log"])
    assert update.rebuilt_because and "not valid JSON" in update.rebuilt_because


def test_a_missing_root_is_rebuilt_from_the_mirrored_set(store: S3Store) -> None:
    store.put(p2_path("acme/tool"), dump_p2("acme/tool", []))
    update = publish_root(store, REPO, ["twig/twig"], mirrored=["acme/tool"])
    assert update.available == ["acme/tool", "twig/twig"] and update.rebuilt_because is None


def test_mirrored_packages_the_root_lacks_join_it_only_when_their_p2_file_exists(store: S3Store) -> None:
    """A run that died before its root leaves catalog entries behind; junk in the catalog stays out."""
    publish_root(store, REPO, ["psr/log"])
    store.put(p2_path("acme/tool"), dump_p2("acme/tool", []))
    update = publish_root(store, REPO, [], mirrored=["psr/log", "acme/tool", "acme/ghost", "../evil"])
    assert update.available == ["acme/tool", "psr/log"]


def test_a_concurrent_root_writer_is_merged_not_overwritten(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    publish_root(store, REPO, ["psr/log"])
    original_put = S3Store.put
    raced: list[dict[str, Any]] = []

    def racing_put(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        if path == ROOT and not raced:
            raced.append(kwargs)
            original_put(self, ROOT, build_root(REPO, ["psr/log", "other/run"]))  # the other run lands first
            raise ConflictError("changed by another writer")
        return original_put(self, path, data, **kwargs)

    monkeypatch.setattr(S3Store, "put", racing_put)
    written, available = root_update(publish_root(store, REPO, ["twig/twig"]))
    assert raced and raced[0]["if_match"] == md5_etag(build_root(REPO, ["psr/log"]))
    assert written is True
    assert available == ["other/run", "psr/log", "twig/twig"]
    assert root_of(store)["available-packages"] == ["other/run", "psr/log", "twig/twig"]


def test_the_first_root_is_created_only_if_still_absent(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    original_put = S3Store.put

    def recording_put(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        seen.append(kwargs)
        return original_put(self, path, data, **kwargs)

    monkeypatch.setattr(S3Store, "put", recording_put)
    publish_root(store, REPO, ["psr/log"])
    assert seen[0]["if_none_match"] is True and seen[0]["if_match"] is None


def test_publish_root_gives_up_after_its_attempts(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_conflict(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        raise ConflictError("always")

    monkeypatch.setattr(S3Store, "put", always_conflict)
    with pytest.raises(ConflictError, match=f"after {CAS_ATTEMPTS} attempts"):
        publish_root(store, REPO, ["psr/log"])


# --- write_package: the record, then the p2 files derived from it -------------------------------
VERSIONS = ["2.0.0", "1.0.0", "dev-main", "2.x-dev"]
ADVISORIES = [
    {"advisoryId": "PKSA-1", "title": "t", "reportedAt": "2024-01-01", "sources": [], "affectedVersions": "<2"}
]


def entry_of(version: str) -> dict[str, Any]:
    if version == "2.x-dev":
        return upstream_entry(version, version_normalized="2.9999999.9999999.9999999-dev")
    return upstream_entry(version)


def publish(store: S3Store, versions: list[str], advisories: list[Any] | None = None) -> PublishedFiles:
    offered = [(entry_of(v), RECORD) for v in versions]
    _record, files = write_package(
        store,
        "acme/tool",
        lambda record: merge_offered(record or PackageRecord("acme/tool"), offered, advisories),
        REPO,
    )
    return files


def document(store: S3Store, dev: bool) -> dict[str, Any]:
    return json.loads(store.get(p2_path("acme/tool", dev)).body)


def test_tags_and_branches_go_to_their_own_files_newest_tag_first(store: S3Store) -> None:
    files = publish(store, ["1.0.0", "dev-main", "2.0.0", "2.x-dev"])
    assert files.written == 2
    assert set(files.etags) == {"", "~dev"}
    tagged = parse_p2(store.get(p2_path("acme/tool")).body, "acme/tool")
    branches = parse_p2(store.get(p2_path("acme/tool", dev=True)).body, "acme/tool")
    assert [e["version"] for e in tagged] == ["2.0.0", "1.0.0"]
    assert [e["version"] for e in branches] == ["2.x-dev", "dev-main"]
    assert tagged[0] == published_entry(mirrored(entry_of("2.0.0")), REPO)
    assert files.etags[""] == store.head(p2_path("acme/tool")).etag


def test_both_files_are_written_even_when_one_list_is_empty(store: S3Store) -> None:
    assert publish(store, VERSIONS[:2]).written == 2
    assert document(store, dev=True)["packages"] == {"acme/tool": []}


def test_unchanged_package_files_are_not_written_again(store: S3Store) -> None:
    files = publish(store, VERSIONS, ADVISORIES)
    store.requests.clear()
    again = publish(store, VERSIONS, ADVISORIES)
    assert again.written == 0
    assert again.etags == files.etags
    assert store.request_counts().get("PUT", 0) == 0


def test_a_changed_version_rewrites_only_its_file(store: S3Store) -> None:
    files = publish(store, VERSIONS)
    again = publish(store, [*VERSIONS, "3.x-dev"])
    assert again.written == 1
    assert again.etags[""] == files.etags[""] and again.etags["~dev"] != files.etags["~dev"]


def test_a_later_writer_never_removes_a_version(store: S3Store) -> None:
    publish(store, ["2.0.0"])
    publish(store, ["1.0.0"])
    assert [e["version"] for e in parse_p2(store.get(p2_path("acme/tool")).body, "acme/tool")] == ["2.0.0", "1.0.0"]
    assert load_record(store, "acme/tool").revision == 2


def test_advisories_go_only_in_the_stable_file(store: S3Store) -> None:
    publish(store, VERSIONS, ADVISORIES)
    assert document(store, dev=False)["security-advisories"] == ADVISORIES
    assert "security-advisories" not in document(store, dev=True)


@pytest.mark.parametrize("advisories", [None, []])
def test_without_full_advisories_the_key_says_exactly_what_is_known(store: S3Store, advisories: Any) -> None:
    publish(store, VERSIONS, advisories)
    assert document(store, dev=False).get("security-advisories") == advisories


def test_read_published_maps_both_files_by_normalized_version(store: S3Store) -> None:
    publish(store, VERSIONS)
    published = read_published(store, "acme/tool")
    assert sorted(published) == sorted(["2.0.0.0", "1.0.0.0", "dev-main", "2.9999999.9999999.9999999-dev"])
    assert published["1.0.0.0"] == published_entry(mirrored(entry_of("1.0.0")), REPO)
    assert read_published(store, "acme/never") == {}


def test_read_published_normalizes_entries_without_version_normalized(store: S3Store) -> None:
    body = dump_p2("acme/tool", [{"name": "acme/tool", "version": "v1.2.0"}, {"name": "acme/tool", "version": "1.0"}])
    store.put(p2_path("acme/tool"), body)
    assert sorted(read_published(store, "acme/tool")) == ["1.0.0.0", "1.2.0.0"]


def root_update(update: RootUpdate) -> tuple[bool, list[str]]:
    return update.written, update.available
