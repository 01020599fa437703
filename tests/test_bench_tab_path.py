"""``bench/tab_path_bench.py`` drives a tab follower's real message path: every frame is
stepped, saved, answered and applied, and ``--profile`` counts its Python calls."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import tab_path_bench  # found through the path above

FRAMES = 50


async def test_every_frame_is_answered_and_committed() -> None:
    result = await tab_path_bench.run(FRAMES)
    assert result.sent == FRAMES  # one answer per append
    # Entry k arrives with commit k - 1: the last frame commits all but itself.
    assert result.commit == tab_path_bench.WARMUP + FRAMES - 1
    assert result.seconds > 0 and result.calls == 0 and result.profile == ""


async def test_profile_counts_the_calls_of_the_handler() -> None:
    result = await tab_path_bench.run(FRAMES, profile=True)
    assert result.calls > 20 * FRAMES  # dozens of Python calls per frame at the least
    assert f"{result.calls} function calls" in result.profile
    assert "webraft/" in result.profile  # the functions listed are the path's own


async def test_the_webraft_log_level_is_left_as_it_was() -> None:
    logger = logging.getLogger("webraft")
    before = logger.level
    await tab_path_bench.run(5)
    assert logger.level == before  # other tests' captured warnings still reach them


async def test_the_leader_path_commits_every_proposal_in_turn() -> None:
    """``--leader``: each proposal is sent, answered, committed and settled before the next;
    the log holds the new leader's no-op, the warm-up and the measured commits."""
    result = await tab_path_bench.run_leader(FRAMES)
    assert result.commit == 1 + tab_path_bench.WARMUP + FRAMES
    assert result.sent >= FRAMES  # at least the quorum follower's append per commit
    profiled = await tab_path_bench.run_leader(FRAMES, profile=True)
    assert profiled.calls > 100 * FRAMES
    assert "webraft/" in profiled.profile
