"""The benchmark suite's pure parts: ranking samples and laying out the table. No benchmark
runs here, and no timing is judged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import _common  # found through the path above
import suite


def test_percentile_is_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1..100, shuffled below
    shuffled = samples[50:] + samples[:50]
    assert _common.percentile(shuffled, 0.50) == 50
    assert _common.percentile(shuffled, 0.99) == 99
    assert _common.percentile(shuffled, 1.0) == 100
    assert _common.percentile(shuffled, 0.0) == 1
    assert _common.percentile([7.0], 0.9) == 7
    with pytest.raises(ValueError):
        _common.percentile([], 0.5)


def test_failover_cells_count_slow_and_lost_samples() -> None:
    samples: list[float | None] = [0.1, 0.2, 0.3, 2.5, None]
    median, spread, slow = suite.failover_cells(samples)
    assert median == "250"  # of the four that committed
    assert spread == "2,500 / 2,500 (1 never committed)"
    assert slow == "2 of 5"  # over 1.9 s, and the one that never committed
    assert suite.failover_cells([None, None]) == ("-", "-", "2 of 2")
    assert suite.failover_cells([0.0123])[0] == "12.3"


def test_rows_number_each_reason_once() -> None:
    done = suite.Column(figures={"rate1": 1234.6, "p50": 0.00042}, kill=[0.05],
                        marks={"rate1": "*"}, about={"kill": "crashed, not killed"})
    missing = suite.Column(na=dict.fromkeys(("rate1", "kill", "transfer"), "cannot"))
    rows, notes = suite.metric_rows({"a": done, "b": missing})
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["commits/s, 1 in flight"] == ["1,235*", "n/a [1]"]
    assert by_name["sequential commit latency p50 (ms)"] == ["0.42", "-"]
    assert by_name["failover after kill -9 of the leader: median (ms)"] == ["50.0 [2]",
                                                                              "n/a [1]"]
    assert notes == ["cannot", "crashed, not killed"]


def test_markdown_table_lines_up() -> None:
    text = suite.markdown_table(["metric", "x"], [["a", "1"], ["longer", "1,000"]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1] == "| ------ | ----: |"
    assert lines[3] == "| longer | 1,000 |"
