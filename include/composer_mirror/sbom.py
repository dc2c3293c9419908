"""Turn an SBOM (CycloneDX or SPDX) or a list of PURLs into the Composer packages to mirror.

Everything here is untrusted input that ends up naming S3 keys, so every package name is validated
and every malformed document is refused with a :class:`TargetError` that says what is wrong and
where (component number, line, PURL). Nothing but the given text is read: XML is parsed with
defusedxml and any DOCTYPE is refused, so no entity can expand or fetch anything.

Only ``pkg:composer/<vendor>/<package>[@version]`` PURLs become targets. Every other component is
counted under a skip reason, so a report can show that ``components == requested + skipped``.

Libraries and why they are (not) used for each format:

* PURLs are parsed by packageurl-python, which also decodes percent-encoded versions.
* CycloneDX: the supported spec versions come from cyclonedx-python-lib's ``SchemaVersion``, but the
  document is walked as plain JSON / XML. The library's model keeps components in sorted sets (input
  order is lost), merges components it considers equal, rejects a whole SBOM over fields the mirror
  never reads (an unknown hash algorithm or external reference type) and its errors do not say
  which component is wrong.
* SPDX: spdx-tools 0.8 is not used either. It rejects a whole document over a license expression or
  supplier string it cannot parse and over unknown tag-value tags, crashes with ``AttributeError`` on
  a ``packages`` that is not a list, and its tag-value parser writes LALR tables into site-packages.
  The few fields needed here (packages and their purl external references) are read directly,
  strictly where the mirror depends on them and leniently everywhere else.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from cyclonedx.schema import SchemaVersion
from defusedxml import DefusedXmlException
from packageurl import PackageURL

from composer_mirror.composer_format import is_platform_package, validate_package_name
from composer_mirror.errors import InvalidPackageName, TargetError

logger = logging.getLogger(__name__)

NO_PURL = "no purl"
PLATFORM_PACKAGE = "platform package"
DUPLICATE = "duplicate"
APPLICATION_ITSELF = "application itself (metadata.component)"

# JSON CycloneDX starts at 1.2; newer versions are accepted as soon as cyclonedx-python-lib knows them.
CYCLONEDX_VERSIONS = tuple(v.to_version() for v in sorted(SchemaVersion) if v >= SchemaVersion.V1_2)
CYCLONEDX_XML_NAMESPACE = "http://cyclonedx.org/schema/bom/"
SPDX_VERSION_RE = re.compile(r"^SPDX-(2\.\d+)$")
# Greedy and stripped afterwards: a lazy group before optional blanks is quadratic on a long line.
SPDX_TAG_VALUE_RE = re.compile(r"^[ \t]*SPDXVersion:(.*)$", re.MULTILINE)
# Tag-value tags that start a new element, i.e. end the package read so far.
SPDX_ELEMENT_TAGS = frozenset({"PackageName", "FileName", "SnippetSPDXID", "LicenseID"})
SPDX_PACKAGE_MANAGER = frozenset({"PACKAGE-MANAGER", "PACKAGE_MANAGER"})
SNIPPET_LENGTH = 40
# Larger SBOMs, and PURL lists (in UTF-8 bytes), are refused before they are parsed, wherever they come
# from: the upload page, the DAG's pasted ``sbom`` and ``purls``, an ``sbom_s3_key`` object (not even
# read then). A CycloneDX SBOM of a big application is a few MB.
MAX_SBOM_BYTES = 20 * 1024 * 1024
# PURLs one run takes: far more packages than any application has, far fewer than a run could resolve.
MAX_PURLS = 100_000
# Room for the longest name (255), a percent-encoded version and qualifiers; refused before parsing, so
# no PURL, however long, costs more than this much work.
MAX_PURL_LENGTH = 2048


@dataclass(frozen=True)
class Requested:
    """One Composer package the user asked for."""

    name: str
    version: str | None
    source: str


@dataclass
class TargetList:
    """What an SBOM or PURL list asks for, with counts of everything left out and why."""

    requested: list[Requested]
    skipped: dict[str, int]
    format: str
    components: int


@dataclass
class _Collector:
    """Accumulates components in input order, merging duplicates and counting skip reasons."""

    format: str
    requested: list[Requested] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    components: int = 0
    seen: set[tuple[str, str | None]] = field(default_factory=set)

    def skip(self, reason: str) -> None:
        """Count a component that is never a target, whatever its purl."""
        self.components += 1
        self.skipped[reason] += 1

    def add(self, where: str, purl: str | None) -> None:
        """Count a component and request it when its purl names a Composer package.

        A blank purl identifies nothing, exactly like a missing one, so it is not an error.
        """
        purl = (purl or "").strip()
        if not purl:
            self.skip(NO_PURL)
        else:
            self.components += 1
            self.record(parse_purl(purl, f"{where} ({purl})"))

    def record(self, result: Requested | str) -> None:
        """Keep a parsed purl's package unless already requested, or count its skip reason."""
        if isinstance(result, str):
            self.skipped[result] += 1
        elif (result.name, result.version) in self.seen:
            self.skipped[DUPLICATE] += 1
        else:
            self.seen.add((result.name, result.version))
            self.requested.append(result)

    def result(self) -> TargetList:
        """The finished list; logged because it is what the whole run will mirror."""
        targets = TargetList(self.requested, dict(self.skipped), self.format, self.components)
        logger.info(
            "%s: %d components, %d composer packages requested, skipped %s",
            targets.format,
            targets.components,
            len(targets.requested),
            targets.skipped or "none",
        )
        return targets


def parse_purl(purl: str, source: str) -> Requested | str:
    """Parse one PURL: a :class:`Requested` for a Composer package, else the reason to skip it.

    The vendor is the PURL namespace and the package its name (``pkg:composer/psr/log@3.0.2``);
    platform packages (``pkg:composer/php``, ``pkg:composer/ext-json``) have no namespace and can
    never be mirrored. Qualifiers and subpath do not select anything in Composer and are ignored.
    """
    stripped = purl.strip()
    if len(stripped) > MAX_PURL_LENGTH:
        raise TargetError(f"{source}: purl of {len(stripped)} characters, longer than the {MAX_PURL_LENGTH} allowed")
    try:
        parsed = PackageURL.from_string(stripped)
    except ValueError as exc:
        raise TargetError(f"{source}: invalid purl {purl!r}: {exc}") from exc
    if parsed.type != "composer":
        return f"not composer ({parsed.type})"
    name = (f"{parsed.namespace}/{parsed.name}" if parsed.namespace else parsed.name).lower()
    if is_platform_package(name):
        return PLATFORM_PACKAGE
    try:
        validate_package_name(name)
    except InvalidPackageName as exc:
        raise TargetError(f"{source}: purl {purl!r} does not name a Composer package: {exc}") from exc
    return Requested(name=name, version=parsed.version or None, source=source)


def utf8_size(content: str | bytes) -> int:
    """The bytes a document takes as UTF-8, which is what the limit counts (not characters).

    A lone surrogate (JSON's ``\\ud800`` in a run's conf) counts as its three bytes, not as an error.
    """
    return len(content) if isinstance(content, bytes) else len(content.encode("utf-8", "surrogatepass"))


def check_size(what: str, size: int) -> None:
    """Refuse an SBOM or PURL list of ``size`` bytes over :data:`MAX_SBOM_BYTES`; ``what`` names it."""
    if size > MAX_SBOM_BYTES:
        raise TargetError(f"{what} has {size} bytes, over the limit of {MAX_SBOM_BYTES} bytes")


def parse_purls(purls: Iterable[str]) -> TargetList:
    """Parse PURLs given one per entry; blank entries and ``#`` comments are ignored.

    Entries are numbered from 1 in input order, blanks included, so "purl #3" is the third line.
    More than :data:`MAX_PURLS` entries, or more than :data:`MAX_SBOM_BYTES` of them, are refused
    before any is parsed.
    """
    purls = list(purls)
    if len(purls) > MAX_PURLS:
        raise TargetError(f"{len(purls)} PURLs given; a run takes at most {MAX_PURLS}")
    check_size("the PURL list", sum(utf8_size(purl) for purl in purls if isinstance(purl, str)))
    collector = _Collector("PURL list")
    for number, purl in enumerate(purls, 1):
        if not isinstance(purl, str):
            raise TargetError(f"purl #{number} is not a string: {purl!r}")
        if purl.strip() and not purl.lstrip().startswith("#"):
            collector.components += 1
            collector.record(parse_purl(purl, f"purl #{number}"))
    if not collector.components:
        raise TargetError("no purls given: the list is empty or holds only blank lines and comments")
    return collector.result()


def parse_sbom(content: str | bytes) -> TargetList:
    """Parse a CycloneDX (JSON, XML) or SPDX 2.x (JSON, tag-value) document, detected from its content.

    File names are never trusted for the format: users rename files, and the content is what counts.
    A document over :data:`MAX_SBOM_BYTES` is refused before it is decoded.
    """
    check_size("the SBOM", utf8_size(content))
    text = _decode(content)
    stripped = text.lstrip()
    if not stripped:
        raise TargetError("empty SBOM: the document has no content")
    if stripped[0] in "{[":
        return _parse_json(text)
    if stripped[0] == "<":
        return _parse_xml(text)
    version = SPDX_TAG_VALUE_RE.search(text)
    if version:
        return _parse_spdx_tag_value(text, version.group(1).strip(" \t\r"))
    raise TargetError(f"not a CycloneDX or SPDX document: it starts with {_snippet(stripped)}")


def _decode(content: str | bytes) -> str:
    """SBOMs are UTF-8 (JSON requires it); a byte order mark is dropped."""
    if isinstance(content, str):
        return content.removeprefix("\ufeff")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TargetError(f"SBOM is not UTF-8 text: invalid byte at offset {exc.start}") from exc


def _snippet(text: str) -> str:
    """The start of a document, quoted, for error messages."""
    first = text.split("\n", 1)[0]
    return repr(first[:SNIPPET_LENGTH] + ("..." if len(first) > SNIPPET_LENGTH else ""))


# --- JSON ---------------------------------------------------------------------------------------------


def _parse_json(text: str) -> TargetList:
    """Dispatch a JSON document on its own markers: ``bomFormat`` or ``spdxVersion``."""
    document = _load_json(text)
    if not isinstance(document, dict):
        raise TargetError("not a CycloneDX or SPDX document: the JSON top level is not an object")
    if document.get("bomFormat") == "CycloneDX":
        return _parse_cyclonedx_json(document)
    if "spdxVersion" in document:
        return _parse_spdx_json(document)
    raise TargetError(
        "not a CycloneDX or SPDX document: the JSON object has neither bomFormat 'CycloneDX' nor spdxVersion"
    )


def _load_json(text: str) -> Any:
    """``json.loads`` with the error position in the message (and deep nesting refused, not crashing)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TargetError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise TargetError("malformed JSON: nested too deeply") from exc


def _json_array(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    """An optional JSON array member; absent means empty."""
    value = parent.get(key, [])
    if not isinstance(value, list):
        raise TargetError(f"{where}: {key!r} must be a JSON array")
    return value


def _json_string(parent: dict[str, Any], key: str, where: str) -> str | None:
    """An optional JSON string member."""
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise TargetError(f"{where}: {key!r} must be a JSON string")
    return value


# --- CycloneDX ----------------------------------------------------------------------------------------


def _cyclonedx_version(version: Any) -> str:
    """Check a CycloneDX spec version against the ones this module reads."""
    if version is None:
        raise TargetError("CycloneDX document without specVersion")
    if version not in CYCLONEDX_VERSIONS:
        supported = f"{CYCLONEDX_VERSIONS[0]} to {CYCLONEDX_VERSIONS[-1]}"
        raise TargetError(f"unsupported CycloneDX spec version {version!r} (supported: {supported})")
    return version


def _parse_cyclonedx_json(bom: dict[str, Any]) -> TargetList:
    """Collect the components of a CycloneDX JSON BOM.

    ``metadata.component`` is the application the SBOM describes, not one of its dependencies: it
    is counted (and reported as skipped) but never requested, even with a composer purl, because
    it is usually a private project that no upstream repository serves. Components nested in it are
    parts of that application and are neither counted nor requested.
    """
    collector = _Collector(f"CycloneDX {_cyclonedx_version(bom.get('specVersion'))} JSON")
    metadata = bom.get("metadata", {})
    if not isinstance(metadata, dict):
        raise TargetError("CycloneDX document: 'metadata' must be a JSON object")
    if metadata.get("component") is not None:
        collector.skip(APPLICATION_ITSELF)
    for where, purl in _cyclonedx_json_components(bom):
        collector.add(where, purl)
    return collector.result()


def _cyclonedx_json_components(bom: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(where, purl) of every component, nested ones included, depth first in document order.

    An explicit stack instead of recursion: nesting depth is chosen by whoever wrote the SBOM.
    """
    stack = list(reversed(_json_array(bom, "components", "CycloneDX document")))
    number = 0
    while stack:
        component = stack.pop()
        number += 1
        where = f"cyclonedx component {number}"
        if not isinstance(component, dict):
            raise TargetError(f"{where} is not a JSON object")
        stack.extend(reversed(_json_array(component, "components", where)))
        yield where, _json_string(component, "purl", where)


def _parse_xml(text: str) -> TargetList:
    """Collect the components of a CycloneDX XML BOM; the namespace carries the spec version."""
    root = _load_xml(text)
    namespace, _, local_name = root.tag.rpartition("}")
    namespace = namespace.removeprefix("{")
    if local_name != "bom" or not namespace.startswith(CYCLONEDX_XML_NAMESPACE):
        raise TargetError(f"not a CycloneDX or SPDX document: the XML root element is {root.tag!r}")
    version = _cyclonedx_version(namespace.removeprefix(CYCLONEDX_XML_NAMESPACE))
    collector = _Collector(f"CycloneDX {version} XML")
    if root.find(f"{{{namespace}}}metadata/{{{namespace}}}component") is not None:
        collector.skip(APPLICATION_ITSELF)  # the application itself: see _parse_cyclonedx_json
    for where, purl in _cyclonedx_xml_components(root, namespace):
        collector.add(where, purl)
    return collector.result()


def _load_xml(text: str) -> Element:
    """Parse XML without DTDs: entity declarations could expand without bound or read local files."""
    try:
        return DefusedET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise TargetError(f"XML SBOM refused: it declares a DOCTYPE or entities ({exc})") from exc
    except DefusedET.ParseError as exc:
        raise TargetError(f"malformed XML: {exc}") from exc


def _cyclonedx_xml_components(root: Element, namespace: str) -> Iterator[tuple[str, str | None]]:
    """(where, purl) of every ``<component>``, nested ones included, depth first in document order."""
    path = f"{{{namespace}}}components/{{{namespace}}}component"
    stack = list(reversed(root.findall(path)))
    number = 0
    while stack:
        component = stack.pop()
        number += 1
        stack.extend(reversed(component.findall(path)))
        purl = component.findtext(f"{{{namespace}}}purl")
        yield f"cyclonedx component {number}", purl


# --- SPDX ---------------------------------------------------------------------------------------------


def _spdx_version(value: Any) -> str:
    """``SPDX-2.3`` -> ``2.3``; SPDX 3 is a different (JSON-LD) model and not read here."""
    match = SPDX_VERSION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise TargetError(f"unsupported SPDX version {value!r} (supported: SPDX-2.x)")
    return match.group(1)


def _preferred_purl(purls: list[str]) -> str | None:
    """A package's purl: its composer one if it has several, so a package is requested at most once."""
    composer = [purl for purl in purls if purl.strip().lower().startswith("pkg:composer/")]
    return next(iter(composer or purls), None)


def _parse_spdx_json(document: dict[str, Any]) -> TargetList:
    """Collect the packages of an SPDX 2.x JSON document."""
    collector = _Collector(f"SPDX {_spdx_version(document['spdxVersion'])} JSON")
    for number, package in enumerate(_json_array(document, "packages", "SPDX document"), 1):
        where = f"spdx package {number}"
        if not isinstance(package, dict):
            raise TargetError(f"{where} is not a JSON object")
        collector.add(where, _preferred_purl(_spdx_json_purls(package, where)))
    return collector.result()


def _spdx_json_purls(package: dict[str, Any], where: str) -> list[str]:
    """The locators of a package's PACKAGE-MANAGER purl references (both spellings are in the wild)."""
    purls = []
    for index, ref in enumerate(_json_array(package, "externalRefs", where)):
        ref_where = f"{where}: externalRefs[{index}]"
        if not isinstance(ref, dict):
            raise TargetError(f"{ref_where} is not a JSON object")
        category, kind, locator = (
            _json_string(ref, key, ref_where) for key in ("referenceCategory", "referenceType", "referenceLocator")
        )
        if category in SPDX_PACKAGE_MANAGER and kind == "purl":
            if not locator:
                raise TargetError(f"{ref_where} is a purl reference without referenceLocator")
            purls.append(locator)
    return purls


def _parse_spdx_tag_value(text: str, version: str) -> TargetList:
    """Collect the packages of an SPDX 2.x tag-value document."""
    collector = _Collector(f"SPDX {_spdx_version(version)} tag-value")
    for where, purls in _spdx_tag_value_packages(text):
        collector.add(where, _preferred_purl(purls))
    return collector.result()


def _spdx_tag_value_packages(text: str) -> Iterator[tuple[str, list[str]]]:
    """(where, purls) of each package: from its ``PackageName`` up to the next element's first tag."""
    current: tuple[str, list[str]] | None = None
    packages = 0
    for line, tag, value in _spdx_tags(text):
        if tag in SPDX_ELEMENT_TAGS:
            if current is not None:
                yield current
            current = None
            if tag == "PackageName":
                packages += 1
                current = (f"spdx package {packages} at line {line}", [])
        elif tag == "ExternalRef":
            if current is None:
                raise TargetError(f"SPDX tag-value line {line}: ExternalRef outside a package")
            current[1].extend(_spdx_tag_value_purl(line, value))
    if current is not None:
        yield current


def _spdx_tag_value_purl(line: int, value: str) -> list[str]:
    """``ExternalRef: PACKAGE-MANAGER purl <locator>`` -> [locator]; other references -> []."""
    parts = value.split(None, 2)
    if len(parts) != 3:
        raise TargetError(f"SPDX tag-value line {line}: ExternalRef must be 'CATEGORY TYPE LOCATOR', got {value!r}")
    category, kind, locator = parts
    return [locator] if category in SPDX_PACKAGE_MANAGER and kind == "purl" else []


def _spdx_tags(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, tag, value) of each tag; ``<text>`` values may span lines and hide tag-like lines."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line_number, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        tag, colon, value = line.partition(":")
        if not colon or not tag.isalnum():
            raise TargetError(f"SPDX tag-value line {line_number} is not 'Tag: value': {_snippet(line)}")
        value = value.strip()
        if value.startswith("<text>"):
            while "</text>" not in value:
                if index == len(lines):
                    raise TargetError(f"SPDX tag-value line {line_number}: <text> is never closed by </text>")
                value += "\n" + lines[index]
                index += 1
        yield line_number, tag, value
