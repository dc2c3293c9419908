"""One size limit for every SBOM: pasted in the conf, given as PURLs, read by ``sbom_s3_key``, uploaded.

The limit is shrunk to 200 bytes so that nothing here writes or reads megabytes; every reader must
therefore look the limit up when it runs, not copy it at import time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from composer_mirror import sbom, sbom_upload
from composer_mirror.context import Context
from composer_mirror.errors import TargetError
from composer_mirror.resolve import load_request
from composer_mirror.settings import Settings
from composer_mirror.store import S3Store
from composer_mirror.sync.planning import resolve_request
from tests.composer_mirror.conftest import UNIT_BUCKET

LIMIT = 200


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sbom, "MAX_SBOM_BYTES", LIMIT)
    return LIMIT


@pytest.fixture
def ctx(store: S3Store) -> Context:
    """Enough of a task's context for resolve_request to read its input (the upstream is never asked)."""
    settings = Settings(bucket=UNIT_BUCKET, public_url="http://mirror.test/repo", prefix="repo")
    return Context(settings=settings, store=store, client=None)  # type: ignore[arg-type]


def cyclonedx(size: int) -> bytes:
    """A valid CycloneDX SBOM naming psr/log, padded to ``size`` bytes (so only its size can refuse it)."""
    document = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
        {"type": "library", "name": "log", "purl": "pkg:composer/psr/log@3.0.2"}]}  # fmt: skip
    text = json.dumps(document).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


class CountingBody:
    """A GET's body that counts the bytes taken from it."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.taken = 0

    def read(self, amt: int | None = None) -> bytes:
        data = self.body.read(amt)
        self.taken += len(data)
        return data

    def close(self) -> None:
        self.body.close()


# --- sbom_s3_key --------------------------------------------------------------------------------


def test_a_key_over_the_limit_is_refused_from_its_head_without_a_get(ctx: Context, limit: int) -> None:
    ctx.store.put("sboms/big.cdx.json", cyclonedx(limit + 1))
    with pytest.raises(TargetError, match=rf"sbom_s3_key 'repo/sboms/big\.cdx\.json' has {limit + 1} bytes, over the"):
        resolve_request(ctx, {"sbom_s3_key": "repo/sboms/big.cdx.json"})
    assert ctx.store.request_counts() == {"PUT": 1, "HEAD": 1}


def test_a_key_at_the_limit_is_read(ctx: Context, limit: int) -> None:
    ctx.store.put("uploads/app.cdx.json", cyclonedx(limit))
    assert sbom_upload.read_sbom_object(ctx.store, "repo/uploads/app.cdx.json") == cyclonedx(limit)


def test_a_key_replaced_after_its_head_is_read_no_further_than_the_limit(
    ctx: Context, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ctx.store
    store.put("sboms/app.cdx.json", cyclonedx(limit))
    head = store.head

    def head_then_replace(path: str) -> dict[str, Any] | None:
        found = head(path)
        store.put(path, cyclonedx(10_000))  # another writer, between the HEAD and the GET
        return found

    bodies: list[CountingBody] = []
    get_object = store.client.get_object

    def counting_get_object(**kwargs: Any) -> dict[str, Any]:
        response = get_object(**kwargs)
        bodies.append(CountingBody(response["Body"]))
        return {**response, "Body": bodies[-1]}

    monkeypatch.setattr(store, "head", head_then_replace)
    monkeypatch.setattr(store.client, "get_object", counting_get_object)
    with pytest.raises(
        TargetError, match=rf"sbom_s3_key 'repo/sboms/app\.cdx\.json' grew past the limit of {limit} bytes"
    ):
        resolve_request(ctx, {"sbom_s3_key": "repo/sboms/app.cdx.json"})
    assert [body.taken for body in bodies] == [limit + 1]


@pytest.mark.parametrize(
    "path", ["dists/ab/cd/" + "ab" * 32 + ".zip", "p2/psr/log.json", "mirror-state/catalog.json", "dists/x.json"]
)
def test_the_mirrors_own_objects_are_refused_without_a_request(ctx: Context, path: str) -> None:
    ctx.store.put(path, cyclonedx(200))
    with pytest.raises(TargetError, match=rf"sbom_s3_key 'repo/{path}' is one of the mirror's own objects"):
        resolve_request(ctx, {"sbom_s3_key": f"repo/{path}"})
    assert ctx.store.request_counts() == {"PUT": 1}


# --- pasted in the conf -------------------------------------------------------------------------


def test_a_pasted_sbom_over_the_limit_is_refused_before_parsing(ctx: Context, limit: int) -> None:
    with pytest.raises(TargetError, match=f"the SBOM has {limit + 1} bytes, over the limit of {limit} bytes"):
        resolve_request(ctx, {"sbom": cyclonedx(limit + 1).decode()})


def test_a_pasted_sbom_over_twenty_megabytes_is_refused_whatever_it_holds() -> None:
    with pytest.raises(TargetError, match=f"the SBOM has {20 * 1024 * 1024 + 1} bytes, over the limit of"):
        load_request("x" * (20 * 1024 * 1024 + 1), None)


def test_a_pasted_sbom_is_measured_in_utf8_bytes(limit: int) -> None:
    with pytest.raises(TargetError, match=f"the SBOM has {limit + 2} bytes, over the limit of {limit} bytes"):
        load_request("é" * (limit // 2 + 1), None)


def test_a_pasted_sbom_at_the_limit_is_parsed(limit: int) -> None:
    requested, _, formats = load_request(cyclonedx(limit).decode(), None)
    assert [(r.name, r.version) for r in requested] == [("psr/log", "3.0.2")]
    assert formats == ["CycloneDX 1.5 JSON (1 components)"]


def test_purls_over_the_byte_limit_are_refused(limit: int) -> None:
    purls = [f"pkg:composer/psr/log@3.0.{n}" for n in range(8)]  # 8 x 26 bytes
    with pytest.raises(TargetError, match=f"the PURL list has 208 bytes, over the limit of {limit} bytes"):
        load_request(None, purls)


def test_purls_over_the_count_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom, "MAX_PURLS", 3)
    with pytest.raises(TargetError, match="4 PURLs given; a run takes at most 3"):
        load_request(None, ["pkg:composer/psr/log"] * 4)


def test_the_purl_count_limit_is_a_hundred_thousand() -> None:
    assert sbom.MAX_PURLS == 100_000


# --- the upload page ----------------------------------------------------------------------------


def test_the_limit_is_twenty_megabytes_as_on_the_upload_page() -> None:
    assert sbom.MAX_SBOM_BYTES == 20 * 1024 * 1024


def test_the_upload_page_validates_with_the_same_limit(limit: int) -> None:
    assert sbom_upload.validate(cyclonedx(limit))["valid"] is True
    summary = sbom_upload.validate(cyclonedx(limit + 1))
    assert (summary["valid"], summary["bytes"]) == (False, limit + 1)
    assert summary["problems"] == [f"the SBOM has {limit + 1} bytes, over the limit of {limit} bytes"]
