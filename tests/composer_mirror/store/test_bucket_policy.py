"""Private objects stay private: the generated policies, and what a real S3 endpoint does with them.

The unit tests check what :mod:`composer_mirror.store.bucket_policy` generates from the layout. The
integration tests put the mirror's objects into a moto server the way the mirror writes them
(:class:`S3Store` puts, a managed upload for the archive, :func:`sbom_upload.store` for the SBOM),
apply the policy, and ask for each object anonymously over plain HTTP: moto evaluates the bucket
policy (and the object's ACL) for an unsigned request, as S3 does. The IAM test runs the upload
page's write with the credentials of a moto IAM user holding only :func:`sbom_upload_policy`, on a
server of its own that enforces IAM.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from composer_mirror import sbom_upload
from composer_mirror.errors import StoreError
from composer_mirror.store import ARCHIVE_CACHE, JSON, METADATA_CACHE, ROOT_CACHE, STATE_CACHE, ZIP, S3Store
from composer_mirror.store.bucket_policy import (
    cloudfront_read_policy,
    main,
    public_read_policy,
    public_resources,
    sbom_upload_policy,
)
from composer_mirror.store.layout import (
    CATALOG,
    INDEX_HTML,
    INDEX_JSON,
    PUBLIC_PATHS,
    PUBLIC_PREFIXES,
    ROOT,
    STATUS_JSON,
    archive_path,
    key_prefix,
    p2_path,
    record_path,
    run_report_path,
)
from devtools.harness import MotoServer

ROOT_DIR = Path(__file__).resolve().parents[3]
SBOM = (ROOT_DIR / "tests/fixtures/sboms/symfony-demo.cdx.json").read_bytes()
DEPLOYMENT_GUIDE = ROOT_DIR / "docs/deployment.md"
DISTRIBUTION = "arn:aws:cloudfront::111122223333:distribution/EDFDVBD6EXAMPLE"
_buckets = itertools.count()
# A bucket, the prefix, and every key written with its bytes.
Mirrored = tuple[str, str, dict[str, bytes]]
# The IAM test's bucket owner: sets the bucket up and shows that a denial is the uploader's policy.
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}

# Keys (relative to the prefix) of each kind the mirror writes; the SBOM's is made by the upload.
PUBLISHED = {
    ROOT: b'{"packages": []}',
    p2_path("psr/log"): b'{"packages": {"psr/log": []}}',
    p2_path("psr/log", dev=True): b'{"packages": {"psr/log": []}}',
    STATUS_JSON: b'{"failures": 0}',
    INDEX_HTML: b"<!doctype html><title>mirror</title>",
    INDEX_JSON: b'{"packages": []}',
}
ARCHIVE = archive_path("ab" * 32)
PRIVATE_STATE = (CATALOG, record_path("psr/log"), run_report_path("manual__1"))


def arn_pattern(resource: str) -> re.Pattern[str]:
    """An IAM Resource as S3 matches it: ``*`` any run of characters (slashes too), ``?`` one."""
    return re.compile("".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in resource))


def as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def granted(policy: dict[str, Any], action: str, arn: str, *, bucket_policy: bool = False) -> bool:
    """Whether an Allow statement of ``policy`` names ``action`` on ``arn`` (conditions left aside).

    With ``bucket_policy``, only statements with a Principal count (a bucket policy's grants to
    others, not an identity policy's to its own role).
    """
    for statement in policy["Statement"]:
        if bucket_policy and "Principal" not in statement:
            continue
        allows = statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        if allows and any(arn_pattern(resource).fullmatch(arn) for resource in as_list(statement.get("Resource", []))):
            return True
    return False


# --- what is generated ---------------------------------------------------------------------------
@pytest.mark.parametrize(("prefix", "written"), [("repo", "repo/"), ("/repo/", "repo/"), ("", ""), ("a/b", "a/b/")])
def test_the_resources_are_the_layouts_public_paths_and_prefixes_under_the_prefix(prefix: str, written: str) -> None:
    assert public_resources("bucket", prefix) == [
        *(f"arn:aws:s3:::bucket/{written}{path}" for path in PUBLIC_PATHS),
        *(f"arn:aws:s3:::bucket/{written}{directory}*" for directory in PUBLIC_PREFIXES),
    ]


@pytest.mark.parametrize("prefix", ["repo", ""])
def test_anonymous_reads_cover_every_published_key_and_no_private_one(prefix: str) -> None:
    policy = public_read_policy("bucket", prefix)
    key = sbom_upload.sbom_path("app.cdx.json", SBOM)
    start = f"arn:aws:s3:::bucket/{key_prefix(prefix)}"
    for path in [*PUBLISHED, ARCHIVE]:
        assert granted(policy, "s3:GetObject", start + path), path
    for path in [key, *PRIVATE_STATE, "sboms/", "mirror-state/", ""]:
        assert not granted(policy, "s3:GetObject", start + path), path
    assert [s["Principal"] for s in policy["Statement"]] == [{"AWS": ["*"]}]
    assert not granted(policy, "s3:ListBucket", "arn:aws:s3:::bucket"), "anyone could list the SBOMs' names"


def test_the_cloudfront_policy_grants_the_same_resources_to_one_distribution_only() -> None:
    policy = cloudfront_read_policy("bucket", "repo", DISTRIBUTION)
    read, listing = policy["Statement"]
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == public_read_policy("bucket", "repo")["Statement"][0]["Resource"]
    assert listing == {
        "Sid": "MissingKeysAnswer404",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::bucket",
        "Condition": {"StringEquals": {"AWS:SourceArn": DISTRIBUTION}},
    }
    assert read["Principal"] == listing["Principal"] and read["Condition"] == listing["Condition"]
    with pytest.raises(ValueError, match="not a CloudFront distribution ARN"):
        cloudfront_read_policy("bucket", "repo", "EDFDVBD6EXAMPLE")


@pytest.mark.parametrize("prefix", ["repo", ""])
def test_the_api_servers_policy_only_writes_under_sboms(prefix: str) -> None:
    policy = sbom_upload_policy("bucket", prefix)
    start = f"arn:aws:s3:::bucket/{key_prefix(prefix)}"
    assert granted(policy, "s3:PutObject", start + sbom_upload.sbom_path("app.cdx.json", SBOM))
    for path in [*PUBLISHED, ARCHIVE, *PRIVATE_STATE]:
        assert not granted(policy, "s3:PutObject", start + path), path
    assert {statement["Action"] for statement in policy["Statement"]} == {"s3:PutObject"}


def test_the_deployment_guide_shows_the_generated_policies_and_no_broader_one() -> None:
    """docs/deployment.md's AWS recipe: its example policies are this module's output, for its example names."""
    blocks = re.findall(r"^```json\n(.*?)^```", DEPLOYMENT_GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    policies = [document for document in map(json.loads, blocks) if "Statement" in document]
    assert cloudfront_read_policy("composer-mirror", "repo", DISTRIBUTION) in policies
    assert sbom_upload_policy("composer-mirror", "repo") in policies
    private = ["repo/sboms/20260101T000000Z-0123456789ab-app.json", "repo/mirror-state/catalog.json"]
    for policy in policies:
        for path in private:
            assert not granted(policy, "s3:GetObject", f"arn:aws:s3:::composer-mirror/{path}", bucket_policy=True)


@pytest.mark.parametrize(("bucket", "prefix"), [("bucket*", "repo"), ("bucket", "re*po"), ("bucket", "rep?"), ("", "")])
def test_a_bucket_or_prefix_that_would_widen_the_grant_is_refused(bucket: str, prefix: str) -> None:
    with pytest.raises(ValueError):
        public_read_policy(bucket, prefix)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], public_read_policy("b", "repo")),
        (["--cloudfront-distribution-arn", DISTRIBUTION], cloudfront_read_policy("b", "repo", DISTRIBUTION)),
        (["--sbom-upload"], sbom_upload_policy("b", "repo")),
    ],
)
def test_the_cli_prints_the_policy_asked_for(
    options: list[str], expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--bucket", "b", "--prefix", "repo", *options]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_the_cli_refuses_a_wildcard_bucket(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--bucket", "b*"])
    assert exited.value.code == 2
    assert "wildcard" in capsys.readouterr().err


# --- what a real S3 endpoint does with it --------------------------------------------------------
def mirror_objects(store: S3Store, tmp_path: Path) -> dict[str, bytes]:
    """Write one object of each kind the way the mirror does; returns every key written and its bytes."""
    written = {}
    for path, body in PUBLISHED.items():
        cache = ROOT_CACHE if path == ROOT else METADATA_CACHE
        store.put(path, body, content_type=JSON, cache_control=cache)
        written[store.key(path)] = body
    archive = tmp_path / "archive.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    store.upload_file(ARCHIVE, str(archive), content_type=ZIP, cache_control=ARCHIVE_CACHE)
    written[store.key(ARCHIVE)] = archive.read_bytes()
    for path in PRIVATE_STATE:
        assert store.create(path, b"{}", content_type=JSON, cache_control=STATE_CACHE)
        written[store.key(path)] = b"{}"
    written[sbom_upload.store(store, "internal-app.cdx.json", SBOM, uploaded_by="admin")] = SBOM
    return written


def anonymous_get(server: MotoServer, bucket: str, key: str) -> requests.Response:
    """A plain GET of the path-style URL, no Authorization and no signature: what a proxy forwards."""
    return requests.get(f"{server.endpoint}/{bucket}/{key}", timeout=10)


@pytest.fixture
def mirrored(moto_server: MotoServer, tmp_path: Path, request: pytest.FixtureRequest) -> Mirrored:
    """A private bucket (no policy yet) holding the mirror's objects under the test's prefix."""
    prefix = request.param
    bucket = f"policy-{next(_buckets)}"
    client = moto_server.client()
    client.create_bucket(Bucket=bucket)
    store = S3Store(client, bucket, key_prefix(prefix), backoff=0.001)
    return bucket, prefix, mirror_objects(store, tmp_path)


def is_public_key(key: str, prefix: str) -> bool:
    return not key.removeprefix(key_prefix(prefix)).startswith(("sboms/", "mirror-state/"))


@pytest.mark.integration
@pytest.mark.parametrize("mirrored", ["repo", ""], indirect=True)
def test_under_the_generated_policy_anyone_reads_the_repository_and_no_sbom_or_state(
    moto_server: MotoServer, mirrored: Mirrored
) -> None:
    bucket, prefix, written = mirrored
    moto_server.apply_public_read_policy(bucket, prefix)
    public = {key: body for key, body in written.items() if is_public_key(key, prefix)}
    private = set(written) - set(public)
    assert len(public) == len(PUBLISHED) + 1 and len(private) == len(PRIVATE_STATE) + 1
    for key, body in public.items():
        response = anonymous_get(moto_server, bucket, key)
        assert (response.status_code, response.content) == (200, body), key
    for key in private:
        assert anonymous_get(moto_server, bucket, key).status_code in (403, 404), key


@pytest.mark.integration
@pytest.mark.parametrize("mirrored", ["repo"], indirect=True)
def test_without_the_policy_nothing_the_mirror_writes_is_anonymous(moto_server: MotoServer, mirrored: Mirrored) -> None:
    """The control: the policy is what grants the reads, and no upload of the mirror sets a public ACL."""
    bucket, _prefix, written = mirrored
    for key in written:
        assert anonymous_get(moto_server, bucket, key).status_code == 403, key


@pytest.mark.integration
@pytest.mark.parametrize("mirrored", ["repo"], indirect=True)
def test_a_grant_on_the_whole_prefix_would_serve_the_sboms_and_the_state(
    moto_server: MotoServer, mirrored: Mirrored
) -> None:
    """What the generated policy replaces: moto does evaluate it, so the assertions above can fail."""
    bucket, prefix, written = mirrored
    broad = public_read_policy(bucket, prefix)
    broad["Statement"][0]["Resource"] = f"arn:aws:s3:::{bucket}/{prefix}/*"
    moto_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(broad))
    for key in written:
        assert anonymous_get(moto_server, bucket, key).status_code == 200, key


# --- the api-server's IAM policy, enforced ---------------------------------------------------------
@pytest.fixture
def iam_server() -> Iterator[MotoServer]:
    """A moto server of its own per test: enforcing IAM is server-wide and cannot be undone by a user."""
    server = MotoServer().start()
    yield server
    server.stop()


def iam_user(server: MotoServer, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """An IAM user holding only ``policy``; returns its access key as boto3 keyword arguments."""
    iam = boto3.client(
        "iam", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def s3_as(server: MotoServer, credentials: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", **credentials)


@pytest.mark.integration
@pytest.mark.parametrize("prefix", ["repo", ""])
def test_the_upload_page_stores_sboms_with_its_policy_and_nothing_else(iam_server: MotoServer, prefix: str) -> None:
    bucket, store_prefix = "composer-mirror", key_prefix(prefix)
    admin = iam_user(iam_server, "mirror-admin", ADMIN_POLICY)
    uploader = iam_user(iam_server, "api-server", sbom_upload_policy(bucket, prefix))
    owner = S3Store(s3_as(iam_server, admin), bucket, store_prefix, backoff=0.001)
    owner.client.create_bucket(Bucket=bucket)
    owner.put(CATALOG, b"{}", content_type=JSON, cache_control=STATE_CACHE)
    iam_server.enforce_iam()

    api_server = S3Store(s3_as(iam_server, uploader), bucket, store_prefix, attempts=1)
    key = sbom_upload.store(api_server, "internal-app.cdx.json", SBOM, uploaded_by="admin")
    assert key.startswith(f"{store_prefix}sboms/")
    stored = owner.get(key.removeprefix(store_prefix))
    assert stored is not None and stored.body == SBOM
    with pytest.raises(StoreError, match="AccessDenied"):
        api_server.put(ROOT, b"{}", content_type=JSON, cache_control=ROOT_CACHE)
    with pytest.raises(StoreError, match="AccessDenied"):
        api_server.get(CATALOG)
    owner.put(ROOT, b"{}", content_type=JSON, cache_control=ROOT_CACHE)  # the denial is the policy's, not moto's
