"""The S3 policies that keep the mirror's private objects private, generated from :mod:`.layout`.

Uploaded SBOMs (``sboms/``, which describe internal applications) and the mirror's own state
(``mirror-state/``) must never be readable anonymously, however the bucket is served. A policy
granting ``<prefix>/*`` (or the whole bucket) would serve them, so readers are granted
``s3:GetObject`` on exactly what :data:`~composer_mirror.store.layout.PUBLIC_PATHS` and
:data:`~composer_mirror.store.layout.PUBLIC_PREFIXES` name, and nothing else. Those two tuples are
the single list: adding a public key there changes every policy generated here (and the committed
``deploy/bucket-policy.json``, which a test compares with this module's output).

- :func:`public_read_policy`: a bucket policy for anonymous readers (MinIO behind nginx, an S3
  website endpoint, a bucket served without a CDN).
- :func:`cloudfront_read_policy`: the same reads for one CloudFront distribution through origin
  access control, plus ``s3:ListBucket`` so a missing key answers 404 rather than 403 (Composer
  needs 404). CloudFront forwards only the viewer's path, never a query string, so the listing
  right cannot be used by viewers to enumerate keys, given an origin path or a default root object
  (docs/deployment.md); an anonymous ListBucket would, so :func:`public_read_policy` has none.
- :func:`sbom_upload_policy`: the identity policy of the Airflow api-server, whose upload page
  writes SBOMs under ``<prefix>sboms/`` (:func:`composer_mirror.sbom_upload.store`, one PutObject)
  and does nothing else in the bucket.

``python -m composer_mirror.store.bucket_policy --bucket B --prefix P`` prints one of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from composer_mirror.store.layout import PUBLIC_PATHS, PUBLIC_PREFIXES, SBOM_DIR, key_prefix

VERSION = "2012-10-17"
# {"AWS": ["*"]} rather than "*": AWS reads both as everyone, and it is the form MinIO writes itself.
EVERYONE = {"AWS": ["*"]}
CLOUDFRONT = {"Service": "cloudfront.amazonaws.com"}
# Characters that are wildcards in a policy's Resource: in a bucket or prefix they would widen a grant.
WILDCARDS = frozenset("*?")

Policy = dict[str, Any]


def bucket_arn(bucket: str) -> str:
    """The bucket's ARN, refusing a name whose wildcards would make a grant cover other buckets."""
    _refuse_wildcards("bucket", bucket)
    if not bucket:
        raise ValueError("the bucket name is empty")
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, prefix: str, path: str) -> str:
    """The ARN of ``path`` under the mirror's prefix (``path`` may end with a ``*`` pattern)."""
    _refuse_wildcards("prefix", prefix)
    return f"{bucket_arn(bucket)}/{key_prefix(prefix)}{path}"


def public_resources(bucket: str, prefix: str) -> list[str]:
    """What clients may read: each public path exactly, each public prefix with everything under it."""
    return [object_arn(bucket, prefix, path) for path in PUBLIC_PATHS] + [
        object_arn(bucket, prefix, f"{directory}*") for directory in PUBLIC_PREFIXES
    ]


def public_read_policy(bucket: str, prefix: str) -> Policy:
    """A bucket policy letting anyone GET the published repository, and nothing else."""
    return _policy(
        {
            "Sid": "AnonymousReadsTheRepository",
            "Effect": "Allow",
            "Principal": EVERYONE,
            "Action": "s3:GetObject",
            "Resource": public_resources(bucket, prefix),
        }
    )


def cloudfront_read_policy(bucket: str, prefix: str, distribution_arn: str) -> Policy:
    """A bucket policy letting one CloudFront distribution (origin access control) read the repository.

    The GetObject grant covers the same resources as :func:`public_read_policy`; the ListBucket
    grant makes S3 answer 404 for a missing key (S3 says "not found" only to callers that may list).
    """
    if not distribution_arn.startswith("arn:aws:cloudfront::"):
        raise ValueError(f"not a CloudFront distribution ARN: {distribution_arn!r}")
    only_this_distribution = {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    return _policy(
        {
            "Sid": "CloudFrontReadsTheRepository",
            "Effect": "Allow",
            "Principal": CLOUDFRONT,
            "Action": "s3:GetObject",
            "Resource": public_resources(bucket, prefix),
            "Condition": only_this_distribution,
        },
        {
            "Sid": "MissingKeysAnswer404",
            "Effect": "Allow",
            "Principal": CLOUDFRONT,
            "Action": "s3:ListBucket",
            "Resource": bucket_arn(bucket),
            "Condition": only_this_distribution,
        },
    )


def sbom_upload_policy(bucket: str, prefix: str) -> Policy:
    """The api-server's IAM policy: write uploaded SBOMs under ``<prefix>sboms/``, nothing more.

    The upload page validates the file in memory and stores it with one PutObject (no read, HEAD or
    listing: the key is new by construction), so it needs no other action, and it cannot touch the
    published repository or the mirror's state.
    """
    return _policy(
        {
            "Sid": "StoreUploadedSboms",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": object_arn(bucket, prefix, f"{SBOM_DIR}*"),
        }
    )


def render(policy: Policy) -> str:
    """A policy as the JSON committed in ``deploy/`` and printed by the CLI."""
    return json.dumps(policy, indent=4) + "\n"


def _policy(*statements: dict[str, Any]) -> Policy:
    return {"Version": VERSION, "Statement": list(statements)}


def _refuse_wildcards(name: str, value: str) -> None:
    if WILDCARDS & set(value):
        raise ValueError(f"the {name} {value!r} contains a policy wildcard (* or ?): it would widen the grant")


def main(argv: Sequence[str] | None = None) -> int:
    """Print a policy: anonymous reads by default, CloudFront's with its ARN, or the api-server's."""
    parser = argparse.ArgumentParser(
        prog="python -m composer_mirror.store.bucket_policy",
        description="Print an S3 policy serving the mirror's repository; sboms/ and mirror-state/ stay private.",
    )
    parser.add_argument("--bucket", required=True, help="composer_mirror_bucket")
    parser.add_argument("--prefix", default="", help="composer_mirror_prefix (empty by default)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--cloudfront-distribution-arn",
        help="print the bucket policy for this distribution's origin access control instead of anonymous reads",
    )
    kind.add_argument(
        "--sbom-upload",
        action="store_true",
        help="print the api-server's IAM policy (the SBOM upload page) instead of a bucket policy",
    )
    args = parser.parse_args(argv)
    try:
        if args.sbom_upload:
            policy = sbom_upload_policy(args.bucket, args.prefix)
        elif args.cloudfront_distribution_arn:
            policy = cloudfront_read_policy(args.bucket, args.prefix, args.cloudfront_distribution_arn)
        else:
            policy = public_read_policy(args.bucket, args.prefix)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(render(policy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
