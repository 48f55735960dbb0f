"""`python -m benchmarks.discord` in small: the real bot, the fake Discord with its rate limits and the emulator, each
its own process; and how card staleness is measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from benchmarks.discord import RunPodTimeline, card_staleness
from tests.fakes.discord.views import MessageView, VersionView

REPO = Path(__file__).resolve().parents[2]
# Far above the usual run of a quick scenario (10-20 s): only a hang would reach it.
RUN_TIMEOUT_S = 120


def run_benchmark(scenario: str, redis_url: str) -> dict[str, Any]:
    """The benchmark's `--quick` run of a scenario, on the suite's Redis; its last line, parsed."""
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=str(REPO))
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.discord", "--scenario", scenario, "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def test_a_quick_burst_gets_every_job_one_card_and_one_result(redis_url: str) -> None:
    """Every `/imagine` of a small burst is acknowledged in time and delivered once, and the JSON says so."""
    report = run_benchmark("burst", redis_url)
    result = report["result"]
    assert report["rate_limits"] is True
    assert result["accepted"] == result["submitted"] == report["options"]["jobs"]
    assert result["completed"] == result["accepted"]
    assert result["exactly_once_problems"] == 0, result["problems"]
    assert result["missed_deadline"] == 0
    assert result["ack_s"]["max"] is not None


def test_a_quick_busy_channel_reports_result_lag_edits_and_staleness(redis_url: str) -> None:
    """Jobs running at once in one channel are all delivered; the result lag, 429s, edits and staleness are given."""
    report = run_benchmark("busy-channel", redis_url)
    result = report["result"]
    assert result["completed"] == result["accepted"] == report["options"]["jobs"]
    assert result["exactly_once_problems"] == 0, result["problems"]
    assert result["result_lag_s"]["p95"] is not None
    assert result["card_edits_per_job"]["total"] >= result["completed"]
    assert result["card_staleness_s"]["max"] is not None
    assert isinstance(result["rate_limited"], int)


def _version(title: str, at: float) -> VersionView:
    return VersionView(
        content="",
        embeds=[{"title": title}],
        components=[],
        attachments=[],
        flags=0,
        at=datetime.fromtimestamp(at, UTC).isoformat(),
    )


def _card(*versions: VersionView) -> MessageView:
    # Only its history matters here.
    return cast(MessageView, {"history": list(versions)})


def test_card_staleness_is_how_long_the_card_lagged_runpod() -> None:
    """A card showing step 2 of 10 until 4 s after RunPod reached step 3 is 4 s stale."""
    # Runs from 100 to 110 in 10 steps: step k at 100 + k.
    timeline = RunPodTimeline(started=100.0, finished=110.0, steps=10)
    card = _card(
        _version("Queued", 90.0),
        # Running at 100; the card says so at 100.5 (0.5 s late, but RunPod reached step 1 only at 101).
        _version("Generating", 100.5),
        # Step 1 at 101 shown at 101.2: until then the card was 0.2 s behind.
        _version("Generating — step 1/10", 101.2),
        _version("Generating — step 2/10", 102.1),
        # Step 3 came at 103; the card shows it only at 107: 4 s behind.
        _version("Generating — step 6/10", 107.0),
        # Shown until the finish at 110, while RunPod was at step 7 from 107, 8 from 108: 3 s behind at the end.
    )
    assert card_staleness(card, timeline) == pytest.approx(4.0)


def test_a_card_queued_until_the_finish_is_stale_for_the_whole_run() -> None:
    """A card never edited after "Queued" lagged RunPod from the job's start to its finish."""
    timeline = RunPodTimeline(started=100.0, finished=130.0, steps=30)
    assert card_staleness(_card(_version("Queued", 95.0)), timeline) == pytest.approx(30.0)
