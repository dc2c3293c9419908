"""Tests for the settings dataclass built from raw Airflow Variable values."""

from __future__ import annotations

import pytest

from composer_mirror.errors import SettingsError
from composer_mirror.settings import DEFAULT_DIST_HOSTS, DEFAULT_UPSTREAM, VARIABLES, Settings

REQUIRED = {"composer_mirror_bucket": "mirror-bucket", "composer_mirror_public_url": "https://cdn.example/repo"}


def settings(**values: str | None) -> Settings:
    """Settings from the required Variables plus ``values`` (keyed by the Variable name without its prefix)."""
    return Settings.from_strings({**REQUIRED, **{f"composer_mirror_{k}": v for k, v in values.items()}})


def test_from_strings_fills_in_the_defaults() -> None:
    made = Settings.from_strings(REQUIRED)
    assert made.bucket == "mirror-bucket"
    assert made.public_url == "https://cdn.example/repo"
    assert made.upstream_url == DEFAULT_UPSTREAM == "https://repo.packagist.org"
    assert made.prefix == ""
    assert made.key_prefix == ""
    assert made.packages == ()
    assert made.aws_conn_id == "aws_default"
    assert made.dist_hosts == DEFAULT_DIST_HOSTS
    assert (made.max_batches, made.concurrency) == (4, 10)
    assert (made.max_archive_bytes, made.max_metadata_bytes) == (500 * 1024 * 1024, 20 * 1024 * 1024)
    assert made.upstream_auth is None


@pytest.mark.parametrize("blank", [None, ""])
def test_a_blank_variable_means_the_default(blank: str | None) -> None:
    assert settings(upstream_url=blank, concurrency=blank, packages=blank) == Settings.from_strings(REQUIRED)


def test_from_strings_reads_every_variable() -> None:
    made = Settings.from_strings(
        {
            VARIABLES["bucket"]: " other-bucket ",
            VARIABLES["public_url"]: "http://127.0.0.1:9000/other-bucket/repo/",
            VARIABLES["upstream_url"]: "http://127.0.0.1:8080",
            VARIABLES["prefix"]: "repo",
            VARIABLES["packages"]: '["psr/log", " symfony/console:^6.4 ", ""]',
            VARIABLES["aws_conn_id"]: "minio",
            VARIABLES["dist_hosts"]: '["codeload.github.com"]',
            VARIABLES["max_batches"]: "8",
            VARIABLES["concurrency"]: " 4 ",
            VARIABLES["max_archive_bytes"]: "1000",
            VARIABLES["max_metadata_bytes"]: "2000",
        }
    )
    assert made == Settings(
        bucket="other-bucket",
        public_url="http://127.0.0.1:9000/other-bucket/repo/",
        upstream_url="http://127.0.0.1:8080",
        prefix="repo",
        packages=("psr/log", "symfony/console:^6.4"),
        aws_conn_id="minio",
        dist_hosts=("codeload.github.com",),
        max_batches=8,
        concurrency=4,
        max_archive_bytes=1000,
        max_metadata_bytes=2000,
    )


def test_extra_values_are_passed_through() -> None:
    made = Settings.from_strings(REQUIRED, upstream_auth=("mirror", "s3cret"))
    assert made.upstream_auth == ("mirror", "s3cret")


def test_credentials_stay_out_of_the_repr() -> None:
    assert "s3cret" not in repr(Settings.from_strings(REQUIRED, upstream_auth="s3cret"))


@pytest.mark.parametrize("variable", ["composer_mirror_bucket", "composer_mirror_public_url"])
@pytest.mark.parametrize("blank", [None, "", "absent"])
def test_a_required_variable_is_named_when_missing(variable: str, blank: str | None) -> None:
    values: dict[str, str | None] = dict(REQUIRED)
    if blank == "absent":
        del values[variable]
    else:
        values[variable] = blank
    with pytest.raises(SettingsError, match=f"Airflow Variable {variable} is required"):
        Settings.from_strings(values)


@pytest.mark.parametrize("variable", ["packages", "dist_hosts"])
@pytest.mark.parametrize(
    "raw",
    ['["psr/log"', "psr/log", '{"psr/log": "*"}', '"psr/log"', "[1, 2]", '["psr/log", null]', '[["psr/log"]]', "42"],
)
def test_a_list_variable_must_be_a_json_list_of_strings(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"composer_mirror_{variable} must be a JSON list of strings"):
        settings(**{variable: raw})


def test_an_empty_json_list_clears_the_dist_hosts() -> None:
    assert settings(dist_hosts="[]").dist_hosts == ()


@pytest.mark.parametrize("variable", ["max_batches", "concurrency", "max_archive_bytes", "max_metadata_bytes"])
@pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10"])
def test_a_number_variable_must_be_a_whole_number(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"composer_mirror_{variable} must be a whole number"):
        settings(**{variable: raw})


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("max_batches", "0", "max_batches must be between 1 and 1024"),
        ("max_batches", "1025", "max_batches must be between 1 and 1024"),
        ("concurrency", "0", "concurrency must be between 1 and 64"),
        ("concurrency", "65", "concurrency must be between 1 and 64"),
        ("max_archive_bytes", "0", "max_archive_bytes must be"),
        ("max_archive_bytes", "-1", "max_archive_bytes must be"),
        ("max_metadata_bytes", "0", "max_metadata_bytes must be"),
    ],
)
def test_a_number_out_of_range_is_refused(variable: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(**{variable: raw})


@pytest.mark.parametrize(("variable", "raw"), [("max_batches", "1"), ("max_batches", "1024"), ("concurrency", "64")])
def test_a_number_at_the_edge_of_its_range_is_accepted(variable: str, raw: str) -> None:
    assert getattr(settings(**{variable: raw}), variable) == int(raw)


@pytest.mark.parametrize("bucket", ["My_Bucket", "ab", "-bucket", "bucket-", "a" * 64, "bucket/prefix", "s3://bucket"])
def test_an_invalid_bucket_name_is_refused(bucket: str) -> None:
    with pytest.raises(SettingsError, match="composer_mirror_bucket"):
        Settings.from_strings({**REQUIRED, "composer_mirror_bucket": bucket})


@pytest.mark.parametrize("variable", ["public_url", "upstream_url"])
@pytest.mark.parametrize("url", ["cdn.example/repo", "/repo", "ftp://cdn.example/", "https://", "s3://bucket/repo"])
def test_a_url_must_be_absolute_http(variable: str, url: str) -> None:
    with pytest.raises(SettingsError, match=f"composer_mirror_{variable}=.* must be an absolute http"):
        settings(**{variable: url})


@pytest.mark.parametrize("prefix", ["..", "../other", "repo/../../other", "repo/..", "/repo", "/"])
def test_a_prefix_that_could_escape_is_refused(prefix: str) -> None:
    with pytest.raises(SettingsError, match="composer_mirror_prefix"):
        settings(prefix=prefix)


@pytest.mark.parametrize(
    ("prefix", "key_prefix"),
    [
        ("", ""),
        ("repo", "repo/"),
        ("repo/", "repo/"),
        ("repo//", "repo/"),
        ("mirrors/packagist", "mirrors/packagist/"),
        ("mirrors/packagist/", "mirrors/packagist/"),
        ("  repo  ", "repo/"),
        ("..repo", "..repo/"),
    ],
)
def test_key_prefix_is_empty_or_ends_with_one_slash(prefix: str, key_prefix: str) -> None:
    assert settings(prefix=prefix).key_prefix == key_prefix


@pytest.mark.parametrize(
    ("public_url", "repository_url"),
    [
        ("https://cdn.example", "https://cdn.example"),
        ("https://cdn.example/", "https://cdn.example"),
        ("https://cdn.example/repo/", "https://cdn.example/repo"),
        ("https://cdn.example/repo//", "https://cdn.example/repo"),
        ("http://127.0.0.1:9000/mirror-bucket/repo", "http://127.0.0.1:9000/mirror-bucket/repo"),
    ],
)
def test_repository_url_has_no_trailing_slash(public_url: str, repository_url: str) -> None:
    assert settings(public_url=public_url).repository_url == repository_url


def test_settings_are_frozen() -> None:
    made = Settings.from_strings(REQUIRED)
    with pytest.raises(AttributeError):
        made.bucket = "other"  # type: ignore[misc]


def test_the_operations_settings_default_to_a_six_hour_threshold_and_dry_scheduled_prunes() -> None:
    made = Settings.from_strings(REQUIRED)
    assert (made.max_age_hours, made.prune_scheduled_delete) == (6, False)


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), (" True ", True), ("1", True), ("false", False), ("0", False)]
)
def test_prune_scheduled_delete_reads_true_or_false(raw: str, value: bool) -> None:
    assert settings(prune_scheduled_delete=raw).prune_scheduled_delete is value


@pytest.mark.parametrize("raw", ["maybe", "on!", "2"])
def test_prune_scheduled_delete_refuses_anything_but_a_boolean(raw: str) -> None:
    with pytest.raises(SettingsError, match="composer_mirror_prune_scheduled_delete must be true or false"):
        settings(prune_scheduled_delete=raw)


@pytest.mark.parametrize(("raw", "message"), [("0", "must be at least 1"), ("six", "must be a whole number")])
def test_max_age_hours_is_a_positive_whole_number(raw: str, message: str) -> None:
    assert settings(max_age_hours="12").max_age_hours == 12
    with pytest.raises(SettingsError, match=f"composer_mirror_max_age_hours {message}"):
        settings(max_age_hours=raw)
