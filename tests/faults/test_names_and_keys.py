"""Names that are not names never become keys outside the prefix (the DAG-level check is in test_fetch_policy).

Package names reach the mirror from the selection, the upstream's list.json, p2 files, the changes
feed, SBOM PURLs and the mirror's own state in the bucket; every key derives from one of them.
"""

from __future__ import annotations

import json
import posixpath
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from composer_mirror.composer_format import parse_p2
from composer_mirror.errors import MirrorError
from composer_mirror.sbom import parse_purl
from composer_mirror.sbom_upload import read_sbom_object
from composer_mirror.settings import Settings
from composer_mirror.store import S3Store
from composer_mirror.store.layout import (
    CATALOG,
    archive_id,
    archive_marker_prefix,
    archive_path,
    p2_path,
    run_report_path,
    shard_of,
    shard_path,
    upstream_cache_path,
)
from composer_mirror.targets import expand_patterns, parse_selection
from composer_mirror.upstream import Fetched
from composer_mirror.upstream.changes import read_changes
from devtools.fixture_registry import RegistryServer
from devtools.harness import MotoServer
from tests.faults.helpers import PREFIX, keys, mirror_variables, run_pipeline
from tests.mirror_checks import check_repository

MALICIOUS = [
    "../evil",
    "a/b/../../c",
    "psr/../../../etc/passwd",
    "psr/log/..",
    "psr/./log",
    "./psr/log",
    "/psr/log",
    "psr//log",
    "psr/log/",
    "psr\\..\\log",
    "PSR/Log",
    "psr/log\n",
    "psr/log\x00",
    "psr/l\u043eg",  # a Cyrillic o
    "psr/log%2f..%2f..",
    "psr/" + "a" * 300,
    "psr",
    "",
    "..",
    ".",
]


def fuzzed(count: int = 500, seed: int = 7) -> list[str]:
    """Random short strings over the characters that matter for paths."""
    rng = random.Random(seed)
    alphabet = "ab./\\-_~%0 \t\n:"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def assert_safe(key: str) -> None:
    full = f"{PREFIX}/{key}"
    assert ".." not in key.split("/") and not key.startswith("/") and "\\" not in key, key
    assert posixpath.normpath(full).startswith(f"{PREFIX}/"), key
    S3Store(None, "bucket", f"{PREFIX}/").key(key)  # the store's own guard agrees


KEY_MAKERS: dict[str, Callable[[str], str]] = {
    "p2 file": lambda name: p2_path(name),
    "p2 ~dev file": lambda name: p2_path(name, dev=True),
    "upstream cache": lambda name: upstream_cache_path(name, False),
    "archive marker": lambda name: archive_marker_prefix(name) + archive_id(name, name) + ".json",
    "state shard": lambda name: shard_path(shard_of(name)),
    "run report": run_report_path,
}


@pytest.mark.parametrize("maker", sorted(KEY_MAKERS))
def test_every_key_made_from_an_untrusted_name_stays_under_the_prefix_or_is_refused(maker: str) -> None:
    refused = 0
    for name in [*MALICIOUS, *fuzzed()]:
        try:
            key = KEY_MAKERS[maker](name)
        except MirrorError:
            refused += 1
            continue
        assert_safe(key)
    if maker not in ("state shard", "run report"):
        assert refused >= len(MALICIOUS), f"{maker} accepted names that are not Composer names"


def test_archive_keys_come_only_from_sha256_digests() -> None:
    for bad in ("../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "g" * 64, "../../../../etc/passwd"):
        with pytest.raises(MirrorError):
            archive_path(bad)
    assert_safe(archive_path("ab" * 32))


def test_the_selection_refuses_invalid_names_and_lowercases_the_rest() -> None:
    for entry in ("../evil", "a/b/../../c", "psr/log/..", "/psr/log", "psr\\log", "psr/lo g"):
        with pytest.raises(MirrorError):
            parse_selection([entry])
    assert [e.pattern for e in parse_selection(["PSR/Log", "Psr/*"]).entries] == ["psr/log", "psr/*"]


def test_names_from_the_upstream_list_that_are_not_names_are_dropped() -> None:
    listed = ["psr/log", *MALICIOUS, "psr/../../x", "psr/evil/../../x"]
    targets = expand_patterns(parse_selection(["psr/*"]), lambda pattern: listed)
    assert sorted(targets) == ["psr/log"]


def test_a_p2_file_is_read_only_for_the_package_it_was_asked_for() -> None:
    document = {"packages": {"../evil": [{"version": "1.0.0"}], "psr/log": [{"version": "1.0.0", "name": "../x"}]}}
    versions = parse_p2(json.dumps(document), "psr/log")
    assert [v["version"] for v in versions] == ["1.0.0"]
    with pytest.raises(MirrorError):
        parse_p2(json.dumps({"packages": {"../evil": []}}), "psr/missing")


class FeedClient:
    def __init__(self, document: dict) -> None:
        self.document = document

    def get_metadata(self, url: str, *args: object, **kwargs: object) -> Fetched:
        return Fetched(200, json.dumps(self.document).encode())


def test_the_changes_feed_ignores_actions_naming_invalid_packages() -> None:
    actions = [{"type": "update", "package": name, "time": 1} for name in MALICIOUS]
    actions += [{"type": "delete", "package": "../../evil", "time": 1}, {"type": "update", "package": "psr/log~dev"}]
    changes = read_changes(FeedClient({"actions": actions, "timestamp": 2}), "http://up/metadata/changes.json", 1)
    assert list(changes.min_times()) == ["psr/log"]
    assert changes.deletes == {}
    assert changes.ignored >= len(MALICIOUS)


def test_purls_naming_invalid_packages_are_refused() -> None:
    for purl in ("pkg:composer/..%2F..%2Fevil@1.0", "pkg:composer/a%2Fb/c@1.0", "pkg:composer/../evil@1.0"):
        try:
            parsed = parse_purl(purl, "test")
        except MirrorError:
            continue
        assert isinstance(parsed, str) or ".." not in parsed.name, purl


def test_an_sbom_key_outside_the_prefix_is_never_read() -> None:
    store = S3Store(None, "bucket", f"{PREFIX}/")
    for key in ("other/sbom.json", f"{PREFIX}/../other/sbom.json", f"{PREFIX}//sbom.json", f"{PREFIX}/", "/etc/passwd"):
        with pytest.raises(MirrorError):
            read_sbom_object(store, key)


def test_the_prefix_setting_cannot_climb_out_of_the_bucket() -> None:
    for prefix in ("../other", "repo/../../other", "/abs"):
        with pytest.raises(MirrorError):
            Settings(bucket="mirror-bucket", public_url="http://m.test/repo", prefix=prefix)


@pytest.mark.integration
def test_invalid_names_planted_in_the_mirrors_own_state_are_reported_and_never_become_keys(
    registry_server: RegistryServer, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    """Whoever can write the catalog can name anything: the run reports it and writes nothing for it."""
    variables = mirror_variables(registry_server.url, moto_server, bucket, ["psr/log"])
    catalog = {"format": 1, "packages": {"../evil": ["*"], "psr/../../x": ["*"], "psr/log": ["*"]}}
    moto_server.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{CATALOG}", Body=json.dumps(catalog).encode())
    report = run_pipeline(variables, moto_server.client())
    assert {f["package"] for f in report["failures"]} == {"../evil", "psr/../../x"}
    for key in keys(moto_server, bucket):
        assert key.startswith(f"{PREFIX}/") and ".." not in key.split("/") and "evil" not in key, key
    published = check_repository(variables["composer_mirror_public_url"])
    assert published.problems == []
    assert set(published.packages) == {"psr/log"}
