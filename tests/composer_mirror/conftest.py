"""Unit-test fixtures shared by the library's tests: an S3Store over moto's in-process S3."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from composer_mirror.store import S3Store

UNIT_BUCKET = "unit-bucket"


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """Dummy credentials for moto; clients made from it inside ``mock_aws`` never leave the process."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def store(session: boto3.session.Session) -> Iterator[S3Store]:
    """A fresh bucket under ``repo/``, with near-zero retry backoff so fault tests stay fast."""
    with mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=UNIT_BUCKET)
        yield S3Store(s3, UNIT_BUCKET, "repo/", backoff=0.001)
