"""The S3 client from the amazon provider's S3Hook: the connection's own botocore settings survive,
the pool fits the threads."""

import json

import pytest

from composer_mirror.airflow.connections import s3_client


def _connection(monkeypatch: pytest.MonkeyPatch, **config_kwargs: object) -> str:
    extra = {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1", "config_kwargs": config_kwargs}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MIRROR_S3",
        json.dumps({"conn_type": "aws", "login": "key", "password": "secret", "extra": extra}),
    )
    return "mirror_s3"


def test_pool_is_raised_to_the_thread_count_keeping_the_connection_config(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch, connect_timeout=7), threads=40)
    assert client.meta.config.max_pool_connections == 40
    assert client.meta.config.connect_timeout == 7
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


def test_a_larger_pool_from_the_connection_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch, max_pool_connections=100), threads=20)
    assert client.meta.config.max_pool_connections == 100


def test_without_config_kwargs_the_pool_still_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3_client(_connection(monkeypatch), threads=24)
    assert client.meta.config.max_pool_connections == 24
