"""Tests for the mirror's own state: the catalog, package shards, and key-safe identities (moto S3)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from composer_mirror.errors import ConflictError, InvalidPackageName, StoreError
from composer_mirror.state import (
    Catalog,
    PackageState,
    dumps,
    load_catalog,
    load_shard,
    load_shards,
    save_package_states,
    shard_windows,
    update_catalog,
)
from composer_mirror.store import CAS_ATTEMPTS, S3Store, safe_key_part
from composer_mirror.store.layout import (
    CATALOG,
    archive_id,
    archive_marker_prefix,
    run_report_path,
    shard_of,
    shard_path,
    upstream_cache_path,
)


def names_in_one_shard(count: int) -> list[str]:
    """Distinct package names that all hash to the same shard."""
    by_shard: dict[str, list[str]] = {}
    for i in range(5000):
        name = f"vendor/pkg{i}"
        found = by_shard.setdefault(shard_of(name), [])
        found.append(name)
        if len(found) == count:
            return found
    raise AssertionError("no shard collected enough names")


# --- identities and paths -----------------------------------------------------------------------
def test_shard_of_is_two_hex_digits_of_the_names_sha1_and_stable() -> None:
    assert shard_of("psr/log") == hashlib.sha1(b"psr/log").hexdigest()[:2]
    assert shard_of("psr/log") == shard_of("psr/log")
    shards = {shard_of(f"vendor/pkg{i}") for i in range(5000)}
    assert len(shards) == 256  # every shard is used: packages spread evenly
    assert all(len(s) == 2 and int(s, 16) >= 0 for s in shards)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("1.0.0.0", "abc"), ("1.0.0.0", "abd")),
        (("1.0.0.0", "abc"), ("1.0.1.0", "abc")),
        (("1.0.0.0", ""), ("1.0.0.0", "0")),
        (("dev-main", "ref"), ("dev-master", "ref")),
    ],
)
def test_archive_id_is_distinct_for_different_versions_or_references(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert archive_id(*first) != archive_id(*second)


def test_archive_id_is_a_key_safe_digest_of_untrusted_strings() -> None:
    identity = archive_id("1.0.0.0/../../x", "ref\nwith/slashes")
    assert len(identity) == 40 and all(c in "0123456789abcdef" for c in identity)
    assert identity == archive_id("1.0.0.0/../../x", "ref\nwith/slashes")


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("manual__2024-01-01T00:17:00+00:00", "mirror-state/runs/manual__2024-01-01T00_17_00+00_00.json"),
        ("scheduled__2024-05-06", "mirror-state/runs/scheduled__2024-05-06.json"),
        ("../../packages", "mirror-state/runs/.._.._packages.json"),
        ("a/b\\c d?e#f", "mirror-state/runs/a_b_c_d_e_f.json"),
    ],
)
def test_run_report_path_sanitises_the_run_id_into_one_key_segment(run_id: str, expected: str) -> None:
    path = run_report_path(run_id)
    assert path == expected
    assert path.count("/") == 2
    assert safe_key_part(path) == path


@pytest.mark.parametrize("call", [upstream_cache_path, archive_marker_prefix])
@pytest.mark.parametrize("name", ["../etc", "Psr/Log", "psr", "psr/log/../x"])
def test_paths_derived_from_a_package_name_refuse_invalid_names(call: Any, name: str) -> None:
    args = (name, False) if call is upstream_cache_path else (name,)
    with pytest.raises(InvalidPackageName):
        call(*args)


def test_state_paths_have_the_documented_layout() -> None:
    assert upstream_cache_path("psr/log", False) == "mirror-state/upstream/psr/log.json"
    assert upstream_cache_path("psr/log", True) == "mirror-state/upstream/psr/log~dev.json"
    assert archive_marker_prefix("psr/log") == "mirror-state/archives/psr/log/"
    assert shard_path("ab") == "mirror-state/shards/ab.json"


def test_dumps_is_deterministic_whatever_the_key_order() -> None:
    assert dumps({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == dumps({"a": [1, {"c": 3, "d": 2}], "b": 1})
    assert dumps({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


# --- the catalog --------------------------------------------------------------------------------
def test_an_absent_catalog_loads_empty(store: S3Store) -> None:
    assert load_catalog(store) == Catalog()


def with_packages(added: dict[str, list[str]]) -> Callable[[Catalog], Catalog]:
    """A catalog change adding packages."""
    return lambda catalog: replace(catalog, packages={**catalog.packages, **added})


def test_the_catalog_round_trips_through_the_bucket(store: S3Store) -> None:
    def change(catalog: Catalog) -> Catalog:
        return replace(
            catalog,
            packages={"psr/log": ["*"], "acme/tool": ["1.0.0", "^2.0"]},
            changes_since=17_000_000_000_000,
            pending={"acme/tool": 123},
            deleted={"gone/away": 456},
            selection=["psr/log", "acme/*"],
        )

    written = update_catalog(store, change)
    loaded = load_catalog(store)
    assert loaded.to_json() == written.to_json()
    assert loaded.packages == {"psr/log": ["*"], "acme/tool": ["1.0.0", "^2.0"]}
    assert (loaded.changes_since, loaded.pending, loaded.deleted) == (
        17_000_000_000_000,
        {"acme/tool": 123},
        {"gone/away": 456},
    )
    assert loaded.selection == ["psr/log", "acme/*"]
    assert loaded.etag == written.etag is not None
    assert json.loads(store.get(CATALOG).body)["format"] == 1


def test_a_corrupt_catalog_is_a_store_error_naming_the_key(store: S3Store) -> None:
    store.put(CATALOG, b"{not json")
    with pytest.raises(StoreError, match=r"repo/mirror-state/catalog\.json is corrupt"):
        load_catalog(store)


def test_merged_with_unions_selectors_without_touching_the_catalog() -> None:
    catalog = Catalog(packages={"a/a": ["^1.0"], "b/b": ["*"]})
    merged = catalog.merged_with({"a/a": ["*", "^1.0"], "c/c": ["1.0.0"]})
    assert merged == {"a/a": ["*", "^1.0"], "b/b": ["*"], "c/c": ["1.0.0"]}
    assert catalog.packages == {"a/a": ["^1.0"], "b/b": ["*"]}
    merged["b/b"].append("x")
    assert catalog.packages["b/b"] == ["*"]


def test_an_update_that_changes_nothing_writes_nothing(store: S3Store) -> None:
    update_catalog(store, with_packages({"a/a": ["*"]}))
    store.requests.clear()
    update_catalog(store, with_packages({"a/a": ["*"]}))
    assert store.request_counts() == {"GET": 1}


def test_update_catalog_retries_on_a_conflict_and_keeps_the_concurrent_writers_change(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    update_catalog(store, with_packages({"first/pkg": ["*"]}))
    original_put = S3Store.put
    conflicts = []

    def racing_put(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        if path == CATALOG and not conflicts:
            conflicts.append(path)
            # another run lands its own change between our read and our write
            document = json.loads(self.get(CATALOG).body)
            document["packages"]["other/run"] = ["^1.0"]
            original_put(self, CATALOG, dumps(document))
            raise ConflictError("changed by another writer")
        return original_put(self, path, data, **kwargs)

    monkeypatch.setattr(S3Store, "put", racing_put)
    calls = []

    def change(catalog: Catalog) -> Catalog:
        calls.append(dict(catalog.packages))
        return with_packages({"ours/pkg": ["*"]})(catalog)

    update_catalog(store, change)
    assert conflicts == [CATALOG]
    assert len(calls) == 2 and "other/run" in calls[1]
    assert load_catalog(store).packages == {"first/pkg": ["*"], "other/run": ["^1.0"], "ours/pkg": ["*"]}


def test_update_catalog_never_overwrites_a_catalog_changed_after_it_was_read(store: S3Store) -> None:
    update_catalog(store, with_packages({"first/pkg": ["*"]}))
    calls = []

    def change(catalog: Catalog) -> Catalog:
        calls.append(dict(catalog.packages))
        if len(calls) == 1:  # another writer replaces the catalog after this one was read
            store.put(CATALOG, dumps({**catalog.to_json(), "packages": {"other/run": ["*"]}}))
        return with_packages({"ours/pkg": ["*"]})(catalog)

    update_catalog(store, change)
    assert calls == [{"first/pkg": ["*"]}, {"other/run": ["*"]}]
    assert load_catalog(store).packages == {"other/run": ["*"], "ours/pkg": ["*"]}


def test_update_catalog_gives_up_after_its_attempts(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_conflict(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        raise ConflictError("always")

    monkeypatch.setattr(S3Store, "put", always_conflict)
    with pytest.raises(ConflictError, match=f"after {CAS_ATTEMPTS} attempts"):
        update_catalog(store, with_packages({"a/a": ["*"]}))


# --- package shards -----------------------------------------------------------------------------
def entry(n: int) -> PackageState:
    """A shard entry told apart by ``n``."""
    return PackageState(revision=n, description=f"package {n}")


def test_package_states_land_in_their_shards_and_load_back(store: S3Store) -> None:
    states = {"psr/log": PackageState(selectors=["*"], complete=True), "twig/twig": PackageState(selectors=["^3.0"])}
    assert save_package_states(store, states) == len({shard_of(n) for n in states})
    shards = load_shards(store, ["psr/log", "twig/twig", "never/saved"])
    assert set(shards) == {shard_of("psr/log"), shard_of("twig/twig"), shard_of("never/saved")}
    assert shards[shard_of("psr/log")].packages["psr/log"] == states["psr/log"]
    assert shards[shard_of("twig/twig")].packages["twig/twig"] == states["twig/twig"]
    assert shards[shard_of("never/saved")].packages.get("never/saved") is None


@pytest.mark.parametrize("size", [1, 7, 100])
def test_shard_windows_hold_whole_shards_and_every_name_once(size: int) -> None:
    names = [f"vendor{i % 13}/package-{i}" for i in range(500)]
    windows = list(shard_windows(names, size))
    assert sorted(name for window in windows for name in window) == sorted(names)
    shards_seen = [{shard_of(name) for name in window} for window in windows]
    for index, shards in enumerate(shards_seen):
        assert all(shards.isdisjoint(other) for other in shards_seen[index + 1 :])  # a shard is in one window
    assert all(len(window) >= size for window in windows[:-1])
    assert list(shard_windows([], size)) == []


def test_many_shards_are_saved_side_by_side_and_each_once(store: S3Store) -> None:
    states = {f"vendor/package-{i}": entry(i) for i in range(300)}
    shards = {shard_of(name) for name in states}
    assert save_package_states(store, states) == len(shards)
    assert store.request_counts()["PUT"] == len(shards)
    loaded = load_shards(store, states)
    assert {name: loaded[shard_of(name)].packages[name] for name in states} == states


def test_saving_unchanged_states_writes_nothing(store: S3Store) -> None:
    states = {"psr/log": PackageState(selectors=["*"])}
    save_package_states(store, states)
    store.requests.clear()
    assert save_package_states(store, states) == 0
    assert store.request_counts().get("PUT", 0) == 0
    assert save_package_states(store, {}) == 0


def test_saving_a_package_keeps_the_other_packages_of_its_shard(store: S3Store) -> None:
    first, second = names_in_one_shard(2)
    save_package_states(store, {first: entry(1)})
    save_package_states(store, {second: entry(2)})
    assert load_shard(store, shard_of(first)).packages == {first: entry(1), second: entry(2)}


def test_saving_a_package_writes_the_other_entries_of_its_shard_back_as_they_were(store: S3Store) -> None:
    first, second = names_in_one_shard(2)
    store.put(shard_path(shard_of(first)), dumps({first: {"revision": 1, "from_a_later_release": [1]}}))
    save_package_states(store, {second: entry(2)})
    assert json.loads(store.get(shard_path(shard_of(first))).body) == {
        first: {"revision": 1, "from_a_later_release": [1]},
        second: entry(2).to_json(),
    }


def test_a_package_entry_keeps_the_shape_it_was_written_in() -> None:
    written = {"published": {"": '"e"'}, "revision": 2, "versions": {}, "withdrawn": {}}  # by a withdrawal only
    assert PackageState.from_json(written).to_json() == written
    assert PackageState.from_json(written).selectors is None


def test_two_writers_of_one_shard_both_land(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seed, first, second = names_in_one_shard(3)
    save_package_states(store, {seed: entry(0)})  # the shard exists: both writers send If-Match with its ETag
    both_read = threading.Barrier(2, timeout=10)
    first_reads: set[int] = set()
    write_lock = threading.Lock()  # S3 applies one conditional write at a time; moto's check is not atomic
    original_get, original_put = S3Store.get, S3Store.put

    def get(self: S3Store, path: str) -> Any:
        found = original_get(self, path)
        if path == shard_path(shard_of(first)) and threading.get_ident() not in first_reads:
            first_reads.add(threading.get_ident())
            both_read.wait()  # both writers hold the same ETag before either writes
        return found

    conflicts: list[str] = []

    def put(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        with write_lock:
            try:
                return original_put(self, path, data, **kwargs)
            except ConflictError:
                conflicts.append(path)
                raise

    monkeypatch.setattr(S3Store, "get", get)
    monkeypatch.setattr(S3Store, "put", put)
    errors: list[BaseException] = []

    def save(name: str, n: int) -> None:
        try:
            save_package_states(store, {name: entry(n)})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(first, 1)), threading.Thread(target=save, args=(second, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    monkeypatch.undo()
    assert errors == []
    assert conflicts == [shard_path(shard_of(first))], "the second writer should have lost the race once"
    packages = load_shard(store, shard_of(first)).packages
    assert packages == {seed: entry(0), first: entry(1), second: entry(2)}


def test_a_corrupt_shard_is_a_store_error(store: S3Store) -> None:
    store.put(shard_path(shard_of("psr/log")), b"[truncated")
    with pytest.raises(StoreError, match="is corrupt"):
        load_shards(store, ["psr/log"])


def test_save_package_states_gives_up_after_its_attempts(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_conflict(self: S3Store, path: str, data: bytes, **kwargs: Any) -> str:
        raise ConflictError("always")

    monkeypatch.setattr(S3Store, "put", always_conflict)
    shard = shard_of("psr/log")
    with pytest.raises(ConflictError, match=f"could not update repo/mirror-state/shards/{shard}.json after"):
        save_package_states(store, {"psr/log": PackageState()})
