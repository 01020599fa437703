"""The Prometheus text format both metrics endpoints render with."""

from __future__ import annotations

from webraft.prometheus import family, labels, number


def test_a_family_declares_itself_then_lists_its_samples() -> None:
    assert family("x_total", "counter", "Things.", [("", labels(kind='a"b\\c\nd'), 3)]) == [
        "# HELP x_total Things.", "# TYPE x_total counter",
        'x_total{kind="a\\"b\\\\c\\nd"} 3']


def test_numbers_are_written_as_the_format_reads_them() -> None:
    assert [number(v) for v in (True, False, 7, 0.25, float("inf"), float("-inf"))] == [
        "1", "0", "7", "0.25", "+Inf", "-Inf"]
