"""Tests for the report table shared by the run report and the verify report."""

from __future__ import annotations

from composer_mirror.report_table import report_table


def test_values_line_up_after_the_longest_label() -> None:
    table = report_table("run report", [("packages", 42), ("archive bytes", "1 / 2"), ("on", True)])
    assert table == "run report\n  packages       42\n  archive bytes  1 / 2\n  on             True"


def test_an_indented_label_stays_indented_under_its_parent() -> None:
    table = report_table("verify report", [("problems", 3), ("  bad shasum", 1)])
    assert table.splitlines()[1:] == ["  problems      3", "    bad shasum  1"]


def test_an_empty_value_keeps_the_padding_of_its_row() -> None:
    assert report_table("t", [("S3 requests", ""), ("x", 0)]) == "t\n  S3 requests  \n  x            0"


def test_a_table_without_rows_is_its_title() -> None:
    assert report_table("empty report", []) == "empty report"
