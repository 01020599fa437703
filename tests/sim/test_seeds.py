"""A sample of simulator seeds passes: the real runtime under seeded faults (CI's share of
``webraft-sim --seeds 100000``)."""

from __future__ import annotations

import os

import pytest

from webraft.sim.__main__ import main as sim_main

SEEDS = int(os.environ.get("WEBRAFT_SIM_SEEDS", "300"))


def test_a_sample_of_faulty_seeds_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--seeds", str(SEEDS), "--jobs", str(os.cpu_count() or 1)]) == 0
    assert f"{SEEDS} passed, 0 failed" in capsys.readouterr().out
