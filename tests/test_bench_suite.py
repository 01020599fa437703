"""The benchmark suite's pure parts: ranking samples, laying out the tables, choosing the
setups, the phase order. No benchmark runs here (a setup is stood in for by canned figures),
and no timing is judged."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import _common  # found through the path above
import cluster_compare
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


def member_result(rate: float, disturbed: str = "") -> dict[str, Any]:
    """What a webraft or PySyncObj member answers to ``bench``: one entry a phase, in the
    specs' order; the phase named ``disturbed`` saw the term change and its leader step down."""
    phases = []
    for name in ("inflight1", "sequential", "inflight100", "inflight10000"):
        terms, leader = ([2, 3], [True, False]) if name == disturbed else ([2, 2], [True, True])
        phase: dict[str, Any] = {"name": name, "total": 10, "ok": 10, "failed": 0,
                                 "terms": terms, "leader": leader, "max_lag": 0.004}
        if name == "sequential":
            phase["samples"] = [0.0004] * 9 + [0.002]
        else:
            phase["rate"] = rate
        phases.append(phase)
    return {"phases": phases, "cores": {"inflight1": {"leader": 0.3}}}


def measured(*keys: str) -> dict[str, Any]:
    """cluster_compare.measure()'s answer for the clusters ``keys``, from canned results."""
    summary = {key: cluster_compare.summarize(member_result(
        100.0 * (k + 1), disturbed="inflight10000" if key == "direct" else ""))
        for k, key in enumerate(keys)}
    return {"summary": summary,
            "nobatch": summary.get("pysyncobj"),
            "kill": {key: [0.02, None] for key in keys},
            "transfer": {key: [0.006] for key in keys
                         if cluster_compare.CLUSTERS[key].transfer}}


def test_every_spec_measures_sequential_right_after_one_in_flight() -> None:
    def order(spec: dict[str, Any]) -> list[list[Any]]:
        return [phase[:-1] for phase in spec["phases"]]

    full = [["inflight", 1], ["sequential"], ["inflight", 100], ["inflight", 10_000]]
    assert order(cluster_compare.WEBRAFT_SPEC) == full
    assert order(cluster_compare.PYSYNCOBJ_SPEC) == full
    assert order(cluster_compare.PYSYNCOBJ_NOBATCH_SPEC) == full[:2]
    clusters = cluster_compare.CLUSTERS
    assert clusters["direct"].spec is clusters["relay"].spec
    assert [key for key, c in clusters.items() if c.transfer] == ["relay", "direct"]


def test_direct_links_have_a_column_between_relay_and_pysyncobj() -> None:
    assert list(suite.HEADERS) == ["inprocess", "relay", "direct", "pysyncobj", "tabs",
                                   "tabs_bc"]
    assert suite.PROCESSES == ("relay", "direct", "pysyncobj")
    assert suite.SKIPS["processes"] == suite.PROCESSES
    assert suite.SKIPS["direct"] == ("direct",)


def test_process_columns_carry_samples_marks_and_what_is_missing() -> None:
    columns = suite.process_columns(measured("relay", "direct"),
                                    ["relay", "direct", "pysyncobj"])
    direct = columns["direct"]
    assert direct.figures["rate1"] == 200.0
    assert direct.figures["p50"] == 0.0004
    assert direct.kill == [0.02, None]
    assert direct.transfer == [0.006]
    assert direct.marks == {"rate10000": "*"}
    assert direct.notes == ["3 CPython members, direct links, inflight10000: term 2->3, "
                            "the leader lost leadership"]
    assert not columns["relay"].marks
    ps = columns["pysyncobj"]  # not installed: measured() had none
    assert ps.na["rate1"].startswith("PySyncObj is not installed")
    assert ps.na["transfer"] == "PySyncObj has no leadership transfer"

    ps = suite.process_columns(measured("pysyncobj"), ["pysyncobj"])["pysyncobj"]
    assert ps.kill == [0.02, None]
    assert ps.transfer is None
    assert set(ps.about) == {"rate1", "p50", "p99"}  # its appendEntriesUseBatch=False figures
    assert set(ps.na) == {"transfer"}


def cells(page: str, metric: str) -> list[str]:
    """The cells of the Markdown table's row for ``metric``, the metric's name first."""
    row = next(line for line in page.splitlines() if line.startswith(f"| {metric} "))
    return [cell.strip() for cell in row.strip("|").split("|")]


def run_suite(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              argv: list[str], processes: Any) -> str:
    """suite.main() with ``processes`` standing in for the process clusters (the other
    setups skipped by ``argv``); the page it prints."""
    monkeypatch.setattr(suite, "machine_facts", lambda: [])
    monkeypatch.setattr(suite, "processes", processes)
    monkeypatch.setattr(sys, "argv", ["suite.py", "--quick", *argv])
    assert suite.main() == 0
    return capsys.readouterr().out


def test_skip_leaves_out_one_process_cluster(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[list[str]] = []

    def processes(quick: bool, failovers: int, keys: list[str]) -> dict[str, suite.Column]:
        asked.append(keys)
        return suite.process_columns(measured(*keys), keys)

    page = run_suite(monkeypatch, capsys, ["--skip", "inprocess", "--skip", "tabs",
                                           "--skip", "direct"], processes)
    assert asked == [["relay", "pysyncobj"]]
    assert cells(page, "metric")[1:] == list(suite.HEADERS.values())
    rate1 = cells(page, "commits/s, 1 in flight")
    assert rate1[1] == rate1[3] == rate1[5] == "n/a [1]"
    assert rate1[2] == "100"
    assert "- [1] not run (--skip)" in page

    asked.clear()
    page = run_suite(monkeypatch, capsys, ["--skip", "inprocess", "--skip", "tabs"], processes)
    assert asked == [["relay", "direct", "pysyncobj"]]
    assert cells(page, "commits/s, 10,000 in flight")[3] == "200*"
    assert cells(page, "failover by graceful transfer: median (ms)")[2:4] == ["6.00", "6.00"]
    assert "- 3 CPython members, direct links, abrupt: 20, fail" in page
    assert "`DirectRaft`" in page


def test_a_failed_run_is_na_in_its_columns_only(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def processes(quick: bool, failovers: int, keys: list[str]) -> dict[str, suite.Column]:
        raise RuntimeError("no stable leader within 30 s")

    page = run_suite(monkeypatch, capsys, ["--skip", "inprocess", "--skip", "tabs",
                                           "--skip", "pysyncobj"], processes)
    assert cells(page, "sequential commit latency p50 (ms)")[1:] == [
        "n/a [1]", "n/a [2]", "n/a [2]", "n/a [1]", "n/a [1]", "n/a [1]"]
    assert ("- [2] CPython members over the relay and direct links, then PySyncObj: the run "
            "failed (RuntimeError: no stable leader within 30 s)") in page


def test_cluster_compare_prints_a_column_per_cluster(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(storage="memory")
    cluster_compare.report(args, measured("relay", "direct", "pysyncobj"), 1.0)
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("metric"))
    assert header.split() == ["metric", "webraft", "relay", "webraft", "direct", "PySyncObj",
                              "relay/PySyncObj", "direct/PySyncObj"]
    rate1 = next(line for line in lines if "commits/s, 1 in flight" in line).split()
    assert rate1[-5:] == ["100/s", "200/s", "300/s", "0.33", "0.67"]
    transfer = next(line for line in lines if "leadership transfer, median" in line).split()
    assert transfer[-5:] == ["6.00", "ms", "6.00", "ms", "n/a"]
    assert any(line.startswith("  * webraft direct inflight10000: term 2->3") for line in lines)
