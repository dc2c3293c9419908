"""SBOM and PURL parsing: the four symfony-demo fixtures, then small inline documents for each edge case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from composer_mirror.errors import TargetError
from composer_mirror.sbom import Requested, TargetList, parse_purl, parse_purls, parse_sbom
from tests.fixtures import make_sboms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SBOMS = FIXTURES / "sboms"
ROOT_SKIPPED = {"application itself (metadata.component)": 1}


def locked() -> list[tuple[str, str]]:
    """(name, version) of the 153 packages in the symfony-demo lock file."""
    lock = json.loads((FIXTURES / "symfony-demo" / "composer.lock").read_text(encoding="utf-8"))
    return [(p["name"], p["version"]) for p in lock["packages"] + lock["packages-dev"]]


def pairs(targets: TargetList) -> list[tuple[str, str | None]]:
    """The requested (name, version) pairs, in order."""
    return [(r.name, r.version) for r in targets.requested]


def cdx_json(components: list[Any], spec: Any = "1.5", **extra: Any) -> str:
    """A minimal CycloneDX JSON document."""
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": spec, "version": 1, "components": components, **extra})


def lib(purl: str | None, *children: dict[str, Any], name: str = "x") -> dict[str, Any]:
    """A CycloneDX JSON library component, optionally with a purl and nested components."""
    component: dict[str, Any] = {"type": "library", "name": name}
    if purl is not None:
        component["purl"] = purl
    if children:
        component["components"] = list(children)
    return component


def cdx_xml(body: str, spec: str = "1.4", prolog: str = "") -> str:
    """A CycloneDX XML document around ``body``."""
    return f'{prolog}<bom xmlns="http://cyclonedx.org/schema/bom/{spec}" version="1">{body}</bom>'


def spdx_json(packages: list[Any], version: Any = "SPDX-2.3") -> str:
    """A minimal SPDX JSON document."""
    return json.dumps({"spdxVersion": version, "SPDXID": "SPDXRef-DOCUMENT", "name": "t", "packages": packages})


def spdx_package(*refs: tuple[str, str, str], name: str = "x", **extra: Any) -> dict[str, Any]:
    """An SPDX JSON package with (category, type, locator) external references."""
    external = [{"referenceCategory": c, "referenceType": t, "referenceLocator": loc} for c, t, loc in refs]
    return {
        "SPDXID": f"SPDXRef-{name}",
        "name": name,
        "downloadLocation": "NOASSERTION",
        "externalRefs": external,
        **extra,
    }


def purl_ref(purl: str, category: str = "PACKAGE_MANAGER") -> tuple[str, str, str]:
    """A purl external reference."""
    return (category, "purl", purl)


TAG_VALUE_HEADER = "SPDXVersion: SPDX-2.2\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\n"


# --- the symfony-demo fixtures -------------------------------------------------------------------------

FIXTURE_FORMATS = [
    ("symfony-demo.cdx.json", "CycloneDX 1.5 JSON", ROOT_SKIPPED),
    ("symfony-demo.cdx.xml", "CycloneDX 1.6 XML", ROOT_SKIPPED),
    ("symfony-demo.spdx.json", "SPDX 2.3 JSON", {"no purl": 1}),
    ("symfony-demo.spdx", "SPDX 2.3 tag-value", {"no purl": 1}),
]


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "str"])
@pytest.mark.parametrize(("file_name", "expected_format", "expected_skipped"), FIXTURE_FORMATS)
def test_each_symfony_demo_sbom_requests_the_153_locked_packages_at_their_locked_versions(
    file_name: str, expected_format: str, expected_skipped: dict[str, int], as_bytes: bool
) -> None:
    raw = (SBOMS / file_name).read_bytes()
    targets = parse_sbom(raw if as_bytes else raw.decode())
    assert sorted(pairs(targets)) == sorted(locked())
    assert len(targets.requested) == 153
    assert targets.format == expected_format
    assert targets.components == 154
    assert targets.skipped == expected_skipped


def test_versions_are_kept_exactly_as_the_lock_file_writes_them() -> None:
    targets = parse_sbom((SBOMS / "symfony-demo.cdx.json").read_text())
    versions = dict(pairs(targets))
    assert versions["dflydev/dot-access-data"] == "v3.0.3"
    assert versions["composer/semver"] == "3.4.4"


def test_the_committed_fixtures_are_exactly_what_make_sboms_generates() -> None:
    assert make_sboms.render() == {path.name: path.read_text(encoding="utf-8") for path in SBOMS.iterdir()}


# --- CycloneDX ------------------------------------------------------------------------------------------


def test_a_cyclonedx_sbom_requests_composer_components_and_counts_every_other_one_by_reason() -> None:
    targets = parse_sbom(
        cdx_json(
            [
                lib("pkg:composer/psr/log@3.0.2"),
                lib("pkg:npm/left-pad@1.3.0"),
                lib("pkg:npm/%40angular/core@17.0.0"),
                lib("pkg:composer/php@8.4"),
                lib("pkg:composer/ext-json"),
                lib("pkg:pypi/requests@2.31.0"),
                lib(None),
                lib(""),
            ]
        )
    )
    assert targets.requested == [
        Requested("psr/log", "3.0.2", "cyclonedx component 1 (pkg:composer/psr/log@3.0.2)"),
    ]
    assert targets.skipped == {
        "not composer (npm)": 2,
        "platform package": 2,
        "not composer (pypi)": 1,
        "no purl": 2,
    }
    assert targets.components == 8


def test_nested_cyclonedx_components_are_requested_depth_first_in_document_order() -> None:
    document = cdx_json(
        [
            lib("pkg:npm/bundle@1", lib("pkg:composer/psr/log@3.0.2", lib("pkg:composer/psr/cache@3.0.0"))),
            lib("pkg:composer/monolog/monolog@3.5.0"),
        ]
    )
    targets = parse_sbom(document)
    assert [(r.name, r.source) for r in targets.requested] == [
        ("psr/log", "cyclonedx component 2 (pkg:composer/psr/log@3.0.2)"),
        ("psr/cache", "cyclonedx component 3 (pkg:composer/psr/cache@3.0.0)"),
        ("monolog/monolog", "cyclonedx component 4 (pkg:composer/monolog/monolog@3.5.0)"),
    ]
    assert targets.components == 4


def test_the_application_in_cyclonedx_metadata_is_counted_but_never_requested() -> None:
    app = {"type": "application", "name": "app", "purl": "pkg:composer/acme/app@dev-main"}
    targets = parse_sbom(cdx_json([lib("pkg:composer/psr/log@3.0.2")], metadata={"component": app}))
    assert pairs(targets) == [("psr/log", "3.0.2")]
    assert targets.skipped == ROOT_SKIPPED
    assert targets.components == 2


@pytest.mark.parametrize("spec", ["1.2", "1.3", "1.4", "1.5", "1.6", "1.7"])
def test_every_cyclonedx_json_spec_version_from_1_2_to_1_7_is_read(spec: str) -> None:
    targets = parse_sbom(cdx_json([lib("pkg:composer/psr/log@3.0.2")], spec=spec))
    assert targets.format == f"CycloneDX {spec} JSON"
    assert pairs(targets) == [("psr/log", "3.0.2")]


def test_duplicate_packages_are_merged_keeping_the_first_and_counted_as_duplicates() -> None:
    targets = parse_sbom(
        cdx_json(
            [
                lib("pkg:composer/psr/log@3.0.2"),
                lib("pkg:composer/Psr/Log@3.0.2"),
                lib("pkg:composer/psr/log@3.0.2?repository_url=https://example.org"),
                lib("pkg:composer/psr/log@2.0.0"),
                lib("pkg:composer/psr/log"),
            ]
        )
    )
    assert pairs(targets) == [("psr/log", "3.0.2"), ("psr/log", "2.0.0"), ("psr/log", None)]
    assert targets.requested[0].source == "cyclonedx component 1 (pkg:composer/psr/log@3.0.2)"
    assert targets.skipped == {"duplicate": 2}


@pytest.mark.parametrize("spec", ["1.2", "1.4", "1.6"])
def test_a_cyclonedx_xml_sbom_is_read_with_nested_components_and_skips(spec: str) -> None:
    body = (
        "<metadata><component type='application'><name>app</name></component></metadata>"
        "<components>"
        "<component type='library'><name>bundle</name><purl>pkg:npm/bundle@1</purl><components>"
        "<component type='library'><name>log</name><purl> pkg:composer/psr/log@3.0.2 </purl></component>"
        "</components></component>"
        "<component type='library'><name>php</name><purl>pkg:composer/php@8.4</purl></component>"
        "<component type='library'><name>nopurl</name></component>"
        "<component type='library'><name>blank</name><purl> </purl></component>"
        "</components>"
    )
    targets = parse_sbom(cdx_xml(body, spec=spec, prolog='<?xml version="1.0" encoding="UTF-8"?>\n'))
    assert targets.requested == [
        Requested("psr/log", "3.0.2", "cyclonedx component 2 (pkg:composer/psr/log@3.0.2)"),
    ]
    assert targets.skipped == {**ROOT_SKIPPED, "not composer (npm)": 1, "platform package": 1, "no purl": 2}
    assert targets.format == f"CycloneDX {spec} XML"
    assert targets.components == 6


def test_deeply_nested_components_are_read_without_recursion() -> None:
    depth = 3000
    body = "<components>" + "<component><name>x</name><components>" * depth
    body += "<component><purl>pkg:composer/psr/log@3.0.2</purl></component>"
    body += "</components></component>" * depth + "</components>"
    targets = parse_sbom(cdx_xml(body))
    assert pairs(targets) == [("psr/log", "3.0.2")]
    assert targets.components == depth + 1


XML_ATTACKS = {
    "an internal entity": '<!DOCTYPE bom [<!ENTITY x "pkg:composer/psr/log@1">]>',
    "entity expansion": '<!DOCTYPE bom [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    "an external entity": '<!DOCTYPE bom [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "an external DTD": '<!DOCTYPE bom SYSTEM "http://example.invalid/bom.dtd">',
}


@pytest.mark.parametrize("doctype", XML_ATTACKS.values(), ids=XML_ATTACKS.keys())
def test_an_xml_sbom_with_a_doctype_is_refused_before_any_entity_is_used(doctype: str) -> None:
    document = cdx_xml("<components><component><purl>&x;</purl></component></components>", prolog=doctype)
    with pytest.raises(TargetError, match="XML SBOM refused: it declares a DOCTYPE or entities"):
        parse_sbom(document)


# --- SPDX -----------------------------------------------------------------------------------------------


def test_an_spdx_json_document_requests_packages_by_their_package_manager_purl() -> None:
    packages = [
        spdx_package(name="app"),
        spdx_package(purl_ref("pkg:composer/psr/log@3.0.2"), name="psr/log"),
        spdx_package(purl_ref("pkg:composer/psr/cache@3.0.0", "PACKAGE-MANAGER"), name="psr/cache"),
        spdx_package(
            ("PACKAGE_MANAGER", "purl", "pkg:github/php-fig/container@2.0.2"),
            ("SECURITY", "cpe23Type", "cpe:2.3:a:php-fig:container:2.0.2:*:*:*:*:*:*:*"),
            purl_ref("pkg:composer/psr/container@2.0.2"),
            name="psr/container",
        ),
        spdx_package(("SECURITY", "cpe23Type", "cpe:2.3:a:x:y:1:*:*:*:*:*:*:*"), name="cpe-only"),
        spdx_package(purl_ref("pkg:npm/left-pad@1.3.0"), name="left-pad"),
    ]
    targets = parse_sbom(spdx_json(packages))
    assert targets.requested == [
        Requested("psr/log", "3.0.2", "spdx package 2 (pkg:composer/psr/log@3.0.2)"),
        Requested("psr/cache", "3.0.0", "spdx package 3 (pkg:composer/psr/cache@3.0.0)"),
        Requested("psr/container", "2.0.2", "spdx package 4 (pkg:composer/psr/container@2.0.2)"),
    ]
    assert targets.skipped == {"no purl": 2, "not composer (npm)": 1}
    assert targets.format == "SPDX 2.3 JSON"
    assert targets.components == 6


def test_spdx_fields_the_mirror_never_reads_do_not_block_the_document() -> None:
    package = spdx_package(
        purl_ref("pkg:composer/psr/log@3.0.2"),
        licenseConcluded="MIT AND (",
        supplier="somebody",
        someVendorExtension={"x": 1},
    )
    targets = parse_sbom(spdx_json([package], version="SPDX-2.2"))
    assert pairs(targets) == [("psr/log", "3.0.2")]
    assert targets.format == "SPDX 2.2 JSON"


def test_an_spdx_tag_value_document_is_read_and_text_blocks_cannot_smuggle_packages() -> None:
    document = TAG_VALUE_HEADER + (
        "## Package Information\n"
        "PackageName: app\n"
        "SPDXID: SPDXRef-app\n"
        "PackageComment: <text>Tag-like lines in a text block are text:\n"
        "PackageName: evil/pkg\n"
        "ExternalRef: PACKAGE-MANAGER purl pkg:composer/evil/pkg@1.0.0\n"
        "</text>\n"
        "\n"
        "PackageName: psr/log\r\n"
        "SPDXID: SPDXRef-psr-log\n"
        "PackageLicenseDeclared: MIT AND (\n"
        "ExternalRef: SECURITY cpe23Type cpe:2.3:a:php-fig:log:3.0.2:*:*:*:*:*:*:*\n"
        "ExternalRef: PACKAGE-MANAGER purl pkg:composer/psr/log@3.0.2\n"
        "ExternalRefComment: <text>the\nlog</text>\n"
        "FileName: ./composer.json\n"
        "SPDXID: SPDXRef-file\n"
        "PackageName: left-pad\n"
        "ExternalRef: PACKAGE_MANAGER purl pkg:npm/left-pad@1.3.0\n"
        "Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-app\n"
        "VendorTag: anything\n"
    )
    targets = parse_sbom(document)
    assert targets.requested == [
        Requested("psr/log", "3.0.2", "spdx package 2 at line 12 (pkg:composer/psr/log@3.0.2)"),
    ]
    assert targets.skipped == {"no purl": 1, "not composer (npm)": 1}
    assert targets.format == "SPDX 2.2 tag-value"
    assert targets.components == 3


# --- PURLs ----------------------------------------------------------------------------------------------

PURLS = [
    ("pkg:composer/psr/log@3.0.2", ("psr/log", "3.0.2")),
    ("pkg:composer/dflydev/dot-access-data@v3.0.3", ("dflydev/dot-access-data", "v3.0.3")),
    ("pkg:composer/Symfony/Console@v7.0.0", ("symfony/console", "v7.0.0")),
    ("pkg:COMPOSER/psr/log@1.0.0", ("psr/log", "1.0.0")),
    ("pkg:composer/psr/log@dev-main", ("psr/log", "dev-main")),
    ("pkg:composer/psr/log@dev-feature%2Fnew-api", ("psr/log", "dev-feature/new-api")),
    ("pkg:composer/psr/log@1.0.0%2Bbuild.1", ("psr/log", "1.0.0+build.1")),
    ("pkg:composer/psr/log", ("psr/log", None)),
    ("pkg:composer/psr/log@", ("psr/log", None)),
    ("pkg:composer/psr/log@3.0.2?repository_url=https://example.org#src", ("psr/log", "3.0.2")),
    ("  pkg:composer/psr/log@3.0.2\n", ("psr/log", "3.0.2")),
    ("pkg:composer/php@8.4", "platform package"),
    ("pkg:composer/ext-json", "platform package"),
    ("pkg:composer/lib-icu@74.1", "platform package"),
    ("pkg:composer/composer-plugin-api@2.6.0", "platform package"),
    ("pkg:npm/left-pad@1.3.0", "not composer (npm)"),
    ("pkg:GitHub/php-fig/log@3.0.2", "not composer (github)"),
]


@pytest.mark.parametrize(("purl", "expected"), PURLS, ids=[p for p, _ in PURLS])
def test_a_purl_becomes_a_lower_case_composer_package_or_a_skip_reason(
    purl: str, expected: tuple[str, str | None] | str
) -> None:
    result = parse_purl(purl, "test")
    if isinstance(expected, str):
        assert result == expected
    else:
        assert result == Requested(*expected, source="test")


def test_a_purl_list_ignores_blanks_and_comments_and_numbers_entries_by_input_position() -> None:
    targets = parse_purls(
        [
            "# wanted for the release",
            "pkg:composer/psr/log@3.0.2",
            "",
            "pkg:npm/left-pad@1.3.0",
            "pkg:composer/psr/log@3.0.2",
            "pkg:composer/monolog/monolog",
        ]
    )
    assert targets.requested == [
        Requested("psr/log", "3.0.2", "purl #2"),
        Requested("monolog/monolog", None, "purl #6"),
    ]
    assert targets.skipped == {"not composer (npm)": 1, "duplicate": 1}
    assert targets.format == "PURL list"
    assert targets.components == 4


# --- errors ---------------------------------------------------------------------------------------------

SBOM_ERRORS = {
    "empty input": ("", r"^empty SBOM"),
    "whitespace only": (" \n\t\n", r"^empty SBOM"),
    "bytes that are not UTF-8": (b'{"a": "\xff"}', r"^SBOM is not UTF-8 text: invalid byte at offset 7$"),
    "plain text": ("hello world\nsecond line", r"^not a CycloneDX or SPDX document: it starts with 'hello world'$"),
    "a JSON array": ("[1, 2]", r"^not a CycloneDX or SPDX document: the JSON top level is not an object$"),
    "a JSON object of another kind": ('{"name": "x"}', r"neither bomFormat 'CycloneDX' nor spdxVersion$"),
    "a composer.lock": ('{"packages": []}', r"^not a CycloneDX or SPDX document"),
    "truncated JSON": (
        '{"bomFormat": "CycloneDX",\n "components": [',
        r"^malformed JSON at line 2 column 17: Expecting value$",
    ),
    "JSON nested too deeply": ("[" * 100_000, r"^malformed JSON: nested too deeply$"),
    "malformed XML": ("<bom>\n<components></bom>", r"^malformed XML: mismatched tag: line 2, column 14$"),
    "XML that is not CycloneDX": (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>',
        r"^not a CycloneDX or SPDX document: the XML root element is '\{http://www.w3.org/1999/02/22-rdf",
    ),
    "XML bom without namespace": ("<bom/>", r"^not a CycloneDX or SPDX document: the XML root element is 'bom'$"),
    "CycloneDX XML 1.1": (cdx_xml("", spec="1.1"), r"^unsupported CycloneDX spec version '1\.1' \(supported: 1\.2 to"),
    "CycloneDX JSON 1.1": (cdx_json([], spec="1.1"), r"^unsupported CycloneDX spec version '1\.1'"),
    "CycloneDX JSON 2.0": (cdx_json([], spec="2.0"), r"^unsupported CycloneDX spec version '2\.0'"),
    "CycloneDX without specVersion": ('{"bomFormat": "CycloneDX"}', r"^CycloneDX document without specVersion$"),
    "CycloneDX numeric specVersion": (cdx_json([], spec=1.5), r"^unsupported CycloneDX spec version 1\.5 "),
    "components that are not an array": (
        '{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": {}}',
        r"^CycloneDX document: 'components' must be a JSON array$",
    ),
    "a component that is not an object": (
        cdx_json([lib(None), "pkg:composer/psr/log"]),
        r"^cyclonedx component 2 is not a JSON object$",
    ),
    "nested components that are not an array": (
        cdx_json([lib(None), {"name": "x", "components": "y"}]),
        r"^cyclonedx component 2: 'components' must be a JSON array$",
    ),
    "a purl that is not a string": (
        cdx_json([{"name": "x", "purl": {"type": "composer"}}]),
        r"^cyclonedx component 1: 'purl' must be a JSON string$",
    ),
    "metadata that is not an object": (
        cdx_json([], metadata=[]),
        r"^CycloneDX document: 'metadata' must be a JSON object$",
    ),
    "an invalid purl in CycloneDX JSON": (
        cdx_json([lib("pkg:composer/psr/log@1"), lib("composer:psr/log")]),
        r"^cyclonedx component 2 \(composer:psr/log\): invalid purl 'composer:psr/log': .*\"pkg\" scheme",
    ),
    "a composer purl without vendor": (
        cdx_json([lib("pkg:composer/monolog@3.0.0")]),
        r"^cyclonedx component 1 \(pkg:composer/monolog@3\.0\.0\): purl 'pkg:composer/monolog@3\.0\.0' does not "
        r"name a Composer package: invalid Composer package name: 'monolog'",
    ),
    "a composer purl with two namespace levels": (
        cdx_json([lib("pkg:composer/a/b/c@1")]),
        r"does not name a Composer package: invalid Composer package name: 'a/b/c'",
    ),
    "a composer purl with a stray @ in the name": (
        cdx_json([lib("pkg:composer/psr/log@1@2")]),
        r"invalid Composer package name: 'psr/log@1'",
    ),
    "SPDX 3": (spdx_json([], version="SPDX-3.0"), r"^unsupported SPDX version 'SPDX-3\.0' \(supported: SPDX-2\.x\)$"),
    "SPDX version that is not a string": (spdx_json([], version=2.3), r"^unsupported SPDX version 2\.3 "),
    "SPDX packages that are not an array": (
        '{"spdxVersion": "SPDX-2.3", "packages": "x"}',
        r"^SPDX document: 'packages' must be a JSON array$",
    ),
    "an SPDX package that is not an object": (spdx_json([spdx_package(), 1]), r"^spdx package 2 is not a JSON object$"),
    "SPDX externalRefs that are not an array": (
        spdx_json([{"name": "x", "externalRefs": {}}]),
        r"^spdx package 1: 'externalRefs' must be a JSON array$",
    ),
    "an SPDX external reference that is not an object": (
        spdx_json([{"name": "x", "externalRefs": ["pkg:composer/psr/log"]}]),
        r"^spdx package 1: externalRefs\[0\] is not a JSON object$",
    ),
    "an SPDX purl reference without locator": (
        spdx_json([{"name": "x", "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl"}]}]),
        r"^spdx package 1: externalRefs\[0\] is a purl reference without referenceLocator$",
    ),
    "an SPDX JSON purl that is invalid": (
        spdx_json([spdx_package(purl_ref("pkg:composer"))]),
        r"^spdx package 1 \(pkg:composer\): invalid purl 'pkg:composer'",
    ),
    "SPDX tag-value 1.2": ("SPDXVersion: SPDX-1.2\n", r"^unsupported SPDX version 'SPDX-1\.2'"),
    "an SPDX tag-value line without a tag": (
        TAG_VALUE_HEADER + "PackageName: x\nthis is not a tag\n",
        r"^SPDX tag-value line 5 is not 'Tag: value': 'this is not a tag'$",
    ),
    "an unclosed SPDX text block": (
        TAG_VALUE_HEADER + "PackageName: x\nPackageComment: <text>never\nclosed\n",
        r"^SPDX tag-value line 5: <text> is never closed by </text>$",
    ),
    "an SPDX ExternalRef outside a package": (
        TAG_VALUE_HEADER + "ExternalRef: PACKAGE-MANAGER purl pkg:composer/psr/log@1\n",
        r"^SPDX tag-value line 4: ExternalRef outside a package$",
    ),
    "an SPDX ExternalRef without locator": (
        TAG_VALUE_HEADER + "PackageName: x\nExternalRef: PACKAGE-MANAGER purl\n",
        r"^SPDX tag-value line 5: ExternalRef must be 'CATEGORY TYPE LOCATOR', got 'PACKAGE-MANAGER purl'$",
    ),
    "an SPDX tag-value purl that is invalid": (
        TAG_VALUE_HEADER + "PackageName: x\nExternalRef: PACKAGE-MANAGER purl pkg:composer/Bad_/x@1\n",
        r"^spdx package 1 at line 4 \(pkg:composer/Bad_/x@1\): purl .* invalid Composer package name: 'bad_/x'",
    ),
}


@pytest.mark.parametrize(("content", "message"), SBOM_ERRORS.values(), ids=SBOM_ERRORS.keys())
def test_a_bad_sbom_is_refused_with_a_message_that_names_the_problem(content: str | bytes, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_sbom(content)


PURL_LIST_ERRORS = {
    "an empty list": ([], r"^no purls given"),
    "only blanks and comments": (["", "  ", "# nothing"], r"^no purls given"),
    "an entry that is not a string": (["pkg:composer/psr/log", 42], r"^purl #2 is not a string: 42$"),
    "an invalid purl": (["pkg:composer/psr/log", "", "psr/log"], r"^purl #3: invalid purl 'psr/log'"),
    "an invalid package name": (
        ["pkg:composer/psr/lo%20g@1"],
        r"^purl #1: purl 'pkg:composer/psr/lo%20g@1' does not name a Composer package: .*'psr/lo g'",
    ),
}


@pytest.mark.parametrize(("purls", "message"), PURL_LIST_ERRORS.values(), ids=PURL_LIST_ERRORS.keys())
def test_a_bad_purl_list_is_refused_with_a_message_that_names_the_entry(purls: list[Any], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_purls(purls)
