"""Tests for resolve: requested versions checked upstream, the dependency closure, the plan, the request."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from composer_mirror.errors import TargetError
from composer_mirror.resolve import Resolution, describe_plan, load_request, resolve, selector_for
from composer_mirror.sbom import Requested
from composer_mirror.versions import normalize


def version(name: str, pretty: str, *, size: int | None = None, **fields: Any) -> dict[str, Any]:
    dist: dict[str, Any] = {"type": "zip", "url": f"https://dist.example/{name}/{pretty}.zip", "reference": pretty}
    if size is not None:
        dist["size"] = size
    return {"name": name, "version": pretty, "version_normalized": normalize(pretty), "dist": dist, **fields}


class FakeUpstream:
    """A hand-made registry: name -> tagged versions and branch versions; records every fetch."""

    def __init__(self, tagged: dict[str, list[dict[str, Any]]], dev: dict[str, list[dict[str, Any]]] | None = None):
        self.tagged = tagged
        self.dev = dev or {}
        self.calls: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, dev: bool) -> list[dict[str, Any]] | None:
        with self._lock:
            self.calls.append((name, dev))
        if name not in self.tagged and name not in self.dev:
            return None
        return [dict(e) for e in (self.dev if dev else self.tagged).get(name, [])]

    def fetched(self) -> set[str]:
        return {name for name, _dev in self.calls}


def req(name: str, pretty: str | None = None, source: str = "purl #1") -> Requested:
    return Requested(name=name, version=pretty, source=source)


APP = FakeUpstream(
    {
        "acme/app": [
            version(
                "acme/app",
                "2.0.0",
                require={"php": ">=8.1", "ext-json": "*", "acme/lib": "^1.1", "lib-icu": ">=60"},
                **{"require-dev": {"acme/test-tool": "^1.0"}},
            ),
            version("acme/app", "1.0.0", require={"acme/old": "^1.0"}),
        ],
        "acme/lib": [
            version("acme/lib", "2.0.0"),
            version("acme/lib", "1.2.0", require={"acme/base": "~1.0"}, size=300),
            version("acme/lib", "1.1.0", require={"acme/base": "~1.0"}, size=200),
            version("acme/lib", "1.1.5-RC1"),
            version("acme/lib", "1.0.0"),
        ],
        "acme/base": [version("acme/base", "1.0.1"), version("acme/base", "1.0.0"), version("acme/base", "2.0.0")],
        "acme/old": [version("acme/old", "1.0.0")],
        "acme/test-tool": [version("acme/test-tool", "1.0.0")],
    }
)


def fresh(upstream: FakeUpstream) -> FakeUpstream:
    return FakeUpstream(upstream.tagged, upstream.dev)


# --- requested versions -------------------------------------------------------------------------
@pytest.mark.parametrize(("requested", "upstream"), [("v1.2.0", "1.2.0"), ("1.2.0", "v1.2.0"), ("1.2", "1.2.0")])
def test_a_requested_version_matches_upstream_on_its_normalized_form(requested: str, upstream: str) -> None:
    fetch = FakeUpstream({"acme/lib": [version("acme/lib", upstream)]})
    resolution = resolve([req("acme/lib", requested)], fetch, with_dependencies=False)
    assert resolution.missing == []
    assert resolution.targets == {"acme/lib": [requested]}
    assert resolution.chosen["acme/lib"] == [(normalize(upstream), upstream, None)]


def test_a_missing_version_is_named_with_what_the_upstream_has() -> None:
    resolution = resolve([req("acme/lib", "9.9.9", source="component 3")], fresh(APP), with_dependencies=True)
    assert len(resolution.missing) == 1
    message = resolution.missing[0]
    assert message.startswith("acme/lib 9.9.9: version not found upstream (component 3)")
    assert "upstream has 2.0.0, 1.2.0, 1.1.0, 1.1.5-RC1, 1.0.0" in message


def test_a_missing_package_is_named_with_where_it_was_requested() -> None:
    resolution = resolve([req("ghost/pkg", "1.0.0", source="purl #4")], fresh(APP), with_dependencies=True)
    assert resolution.missing == ["ghost/pkg: no such package upstream (purl #4)"]


def test_an_invalid_requested_version_is_reported_as_missing_not_raised() -> None:
    resolution = resolve([req("acme/lib", "not a version")], fresh(APP), with_dependencies=False)
    assert len(resolution.missing) == 1
    assert resolution.missing[0].startswith("acme/lib not a version: not a valid version (purl #1)")


def test_an_unversioned_request_only_needs_the_package_to_exist() -> None:
    resolution = resolve([req("acme/base")], fresh(APP), with_dependencies=False)
    assert resolution.missing == []
    assert resolution.targets == {"acme/base": ["*"]}
    assert [pretty for _n, pretty, _s in resolution.chosen["acme/base"]] == ["1.0.1", "1.0.0", "2.0.0"]


def test_missing_requests_stop_before_dependencies_are_followed() -> None:
    fetch = fresh(APP)
    resolution = resolve([req("acme/app", "2.0.0"), req("ghost/pkg")], fetch, with_dependencies=True)
    assert resolution.missing == ["ghost/pkg: no such package upstream (purl #1)"]
    assert fetch.fetched() == {"acme/app", "ghost/pkg"}


def test_raise_for_missing_lists_every_missing_request_in_a_target_error() -> None:
    resolution = resolve(
        [req("ghost/one", source="purl #1"), req("acme/lib", "9.0.0", source="purl #2")],
        fresh(APP),
        with_dependencies=True,
    )
    with pytest.raises(TargetError) as raised:
        resolution.raise_for_missing()
    message = str(raised.value)
    assert message.startswith("2 requested packages or versions are not upstream:")
    assert "ghost/one: no such package upstream (purl #1)" in message
    assert "acme/lib 9.0.0: version not found upstream (purl #2)" in message


def test_raise_for_missing_shortens_a_long_list_and_says_how_many_more() -> None:
    resolution = Resolution(missing=[f"v/p{i}: no such package upstream (x)" for i in range(53)])
    with pytest.raises(TargetError) as raised:
        resolution.raise_for_missing()
    assert "v/p49:" in str(raised.value)
    assert "v/p50:" not in str(raised.value)
    assert str(raised.value).endswith("... and 3 more")


def test_raise_for_missing_is_silent_when_everything_was_found() -> None:
    resolve([req("acme/lib", "1.2.0")], fresh(APP), with_dependencies=False).raise_for_missing()


@pytest.mark.parametrize(("requested", "selector"), [(req("a/b", "1.0.0"), "1.0.0"), (req("a/b"), "*")])
def test_a_versioned_request_becomes_an_exact_pin_and_an_unversioned_one_every_stable_version(
    requested: Requested, selector: str
) -> None:
    assert selector_for(requested) == selector


# --- dependencies -------------------------------------------------------------------------------
def test_require_is_followed_transitively_but_require_dev_is_not() -> None:
    fetch = fresh(APP)
    resolution = resolve([req("acme/app", "2.0.0")], fetch, with_dependencies=True)
    assert resolution.missing == []
    assert resolution.targets == {"acme/app": ["2.0.0"], "acme/lib": ["^1.1"], "acme/base": ["~1.0"]}
    assert "acme/test-tool" not in fetch.fetched()
    # acme/old is only required by a version that was not requested
    assert "acme/old" not in fetch.fetched()


def test_each_dependency_gets_every_stable_version_satisfying_its_constraint() -> None:
    resolution = resolve([req("acme/app", "2.0.0")], fresh(APP), with_dependencies=True)
    assert [pretty for _n, pretty, _s in resolution.chosen["acme/lib"]] == ["1.2.0", "1.1.0"]
    assert [pretty for _n, pretty, _s in resolution.chosen["acme/base"]] == ["1.0.1", "1.0.0"]
    assert resolution.chosen["acme/lib"] == [("1.2.0.0", "1.2.0", 300), ("1.1.0.0", "1.1.0", 200)]


def test_without_dependencies_only_the_requested_packages_are_fetched() -> None:
    fetch = fresh(APP)
    resolution = resolve([req("acme/app", "2.0.0")], fetch, with_dependencies=False)
    assert resolution.targets == {"acme/app": ["2.0.0"]}
    assert fetch.fetched() == {"acme/app"}


def test_platform_requirements_are_skipped_and_counted() -> None:
    fetch = fresh(APP)
    resolution = resolve([req("acme/app", "2.0.0")], fetch, with_dependencies=True)
    assert resolution.skipped["platform requirement"] == 3
    assert not {"php", "ext-json", "lib-icu"} & fetch.fetched()


def test_invalid_requirements_are_skipped_and_counted() -> None:
    fetch = FakeUpstream({"a/a": [version("a/a", "1.0.0", require={"Not A Name": "^1.0", "b/b": 5})]})
    resolution = resolve([req("a/a")], fetch, with_dependencies=True)
    assert resolution.targets == {"a/a": ["*"]}
    assert resolution.skipped["invalid requirement"] == 2


def test_an_empty_constraint_selects_every_stable_version() -> None:
    fetch = FakeUpstream({"a/a": [version("a/a", "1.0.0", require={"b/b": " "})], "b/b": [version("b/b", "1.0.0")]})
    assert resolve([req("a/a")], fetch, with_dependencies=True).targets["b/b"] == ["*"]


def test_a_dependency_reached_by_two_constraints_gets_both_selectors() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", require={"c/c": "^1.0"})],
            "b/b": [version("b/b", "1.0.0", require={"c/c": "^2.0"})],
            "c/c": [version("c/c", "2.1.0"), version("c/c", "1.3.0"), version("c/c", "0.9.0")],
        }
    )
    resolution = resolve([req("a/a"), req("b/b")], fetch, with_dependencies=True)
    assert resolution.targets["c/c"] == ["^1.0", "^2.0"]
    assert [pretty for _n, pretty, _s in resolution.chosen["c/c"]] == ["2.1.0", "1.3.0"]


def test_a_new_constraint_on_an_already_resolved_package_follows_the_newly_chosen_versions() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", require={"b/b": "^1.0", "c/c": "^1.0"})],
            "b/b": [version("b/b", "1.0.0", require={"c/c": "^2.0"})],
            "c/c": [
                version("c/c", "2.0.0", require={"d/d": "^1.0"}),
                version("c/c", "1.0.0"),
            ],
            "d/d": [version("d/d", "1.0.0")],
        }
    )
    resolution = resolve([req("a/a")], fetch, with_dependencies=True)
    assert resolution.targets["c/c"] == ["^1.0", "^2.0"]
    assert resolution.targets["d/d"] == ["^1.0"]


def test_names_replaced_or_provided_by_a_mirrored_version_are_dropped() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [
                version(
                    "a/a",
                    "1.0.0",
                    require={"legacy/shim": "^1.0", "psr/log-implementation": "^1.0", "b/b": "^1.0"},
                    replace={"legacy/shim": "self.version"},
                    provide={"psr/log-implementation": "1.0"},
                )
            ],
            "legacy/shim": [version("legacy/shim", "1.0.0")],
            "psr/log-implementation": [version("psr/log-implementation", "1.0.0")],
            "b/b": [version("b/b", "1.0.0")],
        }
    )
    resolution = resolve([req("a/a")], fetch, with_dependencies=True)
    assert resolution.targets == {"a/a": ["*"], "b/b": ["^1.0"]}
    assert resolution.skipped["replaced or provided by a mirrored package"] == 2


def test_a_replaced_name_is_kept_when_it_was_requested_explicitly() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", replace={"legacy/shim": "self.version"})],
            "legacy/shim": [version("legacy/shim", "1.0.0")],
        }
    )
    resolution = resolve([req("a/a"), req("legacy/shim", "1.0.0")], fetch, with_dependencies=True)
    assert resolution.targets == {"a/a": ["*"], "legacy/shim": ["1.0.0"]}
    assert resolution.skipped["replaced or provided by a mirrored package"] == 0


def test_a_dependency_missing_upstream_is_skipped_with_a_warning_not_an_error(caplog: Any) -> None:
    fetch = FakeUpstream({"a/a": [version("a/a", "1.0.0", require={"ghost/dep": "^1.0"})]})
    with caplog.at_level(logging.WARNING, logger="composer_mirror.resolve"):
        resolution = resolve([req("a/a")], fetch, with_dependencies=True)
    assert resolution.missing == []
    assert resolution.targets == {"a/a": ["*"]}
    assert resolution.skipped["dependency not found upstream"] == 1
    assert "dependency ghost/dep is not upstream; skipped" in caplog.text
    resolution.raise_for_missing()


def test_a_dependency_missing_upstream_is_asked_for_only_once() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", require={"ghost/dep": "^1.0", "b/b": "^1.0"})],
            "b/b": [version("b/b", "1.0.0", require={"ghost/dep": "^2.0"})],
        }
    )
    resolve([req("a/a")], fetch, with_dependencies=True)
    assert fetch.calls.count(("ghost/dep", False)) == 1


def test_dependency_cycles_terminate() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", require={"b/b": "^1.0"})],
            "b/b": [version("b/b", "1.0.0", require={"c/c": "^1.0"})],
            "c/c": [version("c/c", "1.0.0", require={"a/a": "^1.0"})],
        }
    )
    resolution = resolve([req("a/a", "1.0.0")], fetch, with_dependencies=True)
    assert resolution.targets == {"a/a": ["1.0.0", "^1.0"], "b/b": ["^1.0"], "c/c": ["^1.0"]}
    assert sorted(fetch.calls) == [("a/a", False), ("b/b", False), ("c/c", False)]


def test_a_branch_request_reads_the_dev_file_too() -> None:
    fetch = FakeUpstream(
        {"a/a": [version("a/a", "1.0.0")]},
        dev={"a/a": [version("a/a", "dev-main")]},
    )
    resolution = resolve([req("a/a", "dev-main")], fetch, with_dependencies=False)
    assert resolution.missing == []
    assert ("a/a", True) in fetch.calls
    assert resolution.chosen["a/a"] == [("dev-main", "dev-main", None)]


def test_a_stable_request_does_not_read_the_dev_file() -> None:
    fetch = FakeUpstream({"a/a": [version("a/a", "1.0.0")]}, dev={"a/a": [version("a/a", "dev-main")]})
    resolve([req("a/a", "1.0.0")], fetch, with_dependencies=True)
    assert fetch.calls == [("a/a", False)]


# --- describe_plan ------------------------------------------------------------------------------
def test_describe_plan_counts_versions_and_only_fetches_archives_not_yet_recorded() -> None:
    resolution = resolve([req("acme/app", "2.0.0")], fresh(APP), with_dependencies=True)
    mirrored = {"acme/lib": {"1.1.0.0"}, "acme/base": {"1.0.0.0", "1.0.1.0"}}
    lines = describe_plan(resolution, mirrored)
    assert lines == [
        "acme/app [2.0.0]: 1 versions, 1 archives to fetch (2.0.0)",
        "acme/base [~1.0]: 2 versions, 0 archives to fetch",
        "acme/lib [^1.1]: 2 versions, 1 archives to fetch (1.2.0)",
        "total: 3 packages, 5 versions, 2 archives to fetch, known archive size 300 bytes "
        "(most upstreams do not state sizes)",
        "skipped 3: platform requirement",
    ]


def test_describe_plan_abbreviates_more_than_six_new_versions() -> None:
    fetch = FakeUpstream({"a/a": [version("a/a", f"1.{i}.0") for i in range(8)]})
    lines = describe_plan(resolve([req("a/a")], fetch, with_dependencies=False), {})
    assert lines[0] == "a/a [*]: 8 versions, 8 archives to fetch (1.0.0, 1.1.0, 1.2.0, 1.3.0, 1.4.0, 1.5.0, ...)"


# --- load_request -------------------------------------------------------------------------------
def cyclonedx(*purls: str) -> str:
    components = [{"type": "library", "name": p, "purl": p} for p in purls]
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components})


def test_load_request_combines_the_sbom_and_the_purls() -> None:
    sbom = cyclonedx("pkg:composer/psr/log@3.0.2", "pkg:npm/left-pad@1.0.0")
    requested, skipped, formats = load_request(sbom, ["pkg:composer/twig/twig@v3.27.1", "  ", ""])
    assert [(r.name, r.version) for r in requested] == [("psr/log", "3.0.2"), ("twig/twig", "v3.27.1")]
    assert skipped == {"not composer (npm)": 1}
    assert len(formats) == 2
    assert formats[1] == "PURL list (1 components)"
    assert "(2 components)" in formats[0]


def test_load_request_accepts_an_sbom_as_bytes_alone() -> None:
    requested, _skipped, _formats = load_request(cyclonedx("pkg:composer/psr/log@3.0.2").encode(), None)
    assert [(r.name, r.version) for r in requested] == [("psr/log", "3.0.2")]


@pytest.mark.parametrize(("sbom", "purls"), [(None, None), ("", []), ("   \n", ["", "  "]), (b"", None)])
def test_load_request_with_nothing_to_mirror_raises_a_target_error(sbom: Any, purls: Any) -> None:
    with pytest.raises(TargetError, match="nothing to mirror"):
        load_request(sbom, purls)


def test_a_branch_constraint_found_in_a_later_round_reads_the_dev_file_of_an_already_fetched_package() -> None:
    fetch = FakeUpstream(
        {
            "a/a": [version("a/a", "1.0.0", require={"c/c": "^1.0", "b/b": "^1.0"})],
            "b/b": [version("b/b", "1.0.0", require={"c/c": "dev-main"})],
            "c/c": [version("c/c", "1.0.0")],
            "d/d": [version("d/d", "1.0.0")],
        },
        dev={"c/c": [version("c/c", "dev-main", require={"d/d": "^1.0"})]},
    )
    resolution = resolve([req("a/a")], fetch, with_dependencies=True)
    assert resolution.targets["c/c"] == ["^1.0", "dev-main"]
    assert ("dev-main", "dev-main", None) in resolution.chosen["c/c"]
    assert "d/d" in resolution.targets
