"""Issue 14, item 3: "no data" means no data.

Paused blind, then data returned: it still rolled back "for no data" (15 healthy samples logged
while paused, then `no data for 10m11s while paused`). A pause for blindness ends by itself when
data returns, journaled with how long it was blind; the 10-minute countdown counts only
continuous blindness and is in every sample while paused blind (on screen and in `--json`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.domain import Outcome, Phase
from core.events import AnalysisSample, Paused, Resumed, RollbackTriggered
from core.sim.scenarios import SCENARIOS, Scenario
from tests.engine_helpers import sim_session


def _with_outages(monkeypatch: pytest.MonkeyPatch, name: str, *outages: tuple[float, float]) -> None:
    scenario = Scenario(name=name, title=name, expected="completed", metrics_outages=outages)
    monkeypatch.setitem(SCENARIOS, name, scenario)


async def test_a_blind_pause_ends_by_itself_when_data_returns(tmp_path: Path, monkeypatch) -> None:
    # five minutes without Prometheus mid-canary, then it answers again
    _with_outages(monkeypatch, "blip", (420.0, 720.0))
    session = await sim_session(tmp_path, "blip")
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    pause = next(e for e in events if isinstance(e, Paused))
    assert pause.actor == "engine" and "no data" in pause.reason
    back = next(e for e in events if isinstance(e, Resumed))
    assert back.actor == "engine" and back.blind_s is not None
    assert 270 <= back.blind_s <= 360, back.blind_s  # about the five minutes it was blind
    assert not [e for e in events if isinstance(e, RollbackTriggered)]
    lines = [json.loads(x) for x in (tmp_path / "deployments.jsonl").read_text().splitlines()]
    resumed = next(x for x in lines if x["type"] == "resumed")
    assert resumed["actor"] == "engine" and resumed["blind_s"] == back.blind_s
    assert any(x["type"] == "log" and "data is back after" in x["message"] for x in lines)


async def test_the_rollback_countdown_counts_only_continuous_blindness(tmp_path: Path, monkeypatch) -> None:
    # blind 8 minutes, one interval of data, blind 8 more: 16 blind minutes, never 10 in a row
    _with_outages(monkeypatch, "flapping", (420.0, 900.0), (930.0, 1410.0))
    session = await sim_session(tmp_path, "flapping")
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    assert len([e for e in events if isinstance(e, Paused) and e.actor == "engine"]) == 2
    assert not [e for e in events if isinstance(e, RollbackTriggered)]


async def test_still_blind_after_ten_minutes_rolls_back_with_the_countdown_in_every_sample(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "metrics-outage")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    trigger = next(e for e in events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "no_data" and "POL-010" in trigger.reason
    paused = [e for e in events if isinstance(e, AnalysisSample) and e.phase == Phase.PAUSED]
    assert paused, "samples are taken while paused"
    countdown = [s.rollback_in_s for s in paused]
    assert all(c is not None for c in countdown)
    assert countdown == sorted(countdown, reverse=True) and countdown[-1] == 0
    assert countdown[0] >= 600 - session.plan.analysis.interval
    # the blind count and the blind time grow with every blind interval
    blind = [e for e in events if isinstance(e, AnalysisSample) and e.verdict == "no_data"]
    assert [s.blind_intervals for s in blind] == list(range(1, len(blind) + 1))
    assert blind[-1].blind_s is not None and blind[-1].blind_s >= 600
    lines = [json.loads(x) for x in (tmp_path / "deployments.jsonl").read_text().splitlines()]
    in_json = [x for x in lines if x["type"] == "analysis" and x["phase"] == "paused"]
    assert in_json[-1]["rollback_in_s"] == 0 and in_json[0]["rollback_in_s"] > 0


async def test_the_paused_blind_screen_shows_data_time_countdown_and_blind_count(tmp_path: Path) -> None:
    """Item 3 and 6: not `00:00 left`, `05:00 / 05:00` and `(blind 0)` while 2 of 5 minutes had data."""
    from datetime import timedelta

    from tui.widgets.header import header_text
    from tui.widgets.ladder import ladder_text
    from tui.widgets.meters import meters_text
    from tui.widgets.model import DeckModel

    session = await sim_session(tmp_path, "metrics-outage")
    await session.rollout.run()
    model = DeckModel()
    sample = None
    for event in session.rollout.events:
        model.apply(event)
        if (
            isinstance(event, AnalysisSample)
            and event.phase == Phase.PAUSED
            and event.rollback_in_s is not None
            and event.rollback_in_s < 400
        ):
            sample = event
            break
    assert sample is not None
    now = sample.ts + timedelta(seconds=10)
    left = sample.rollback_in_s - 10
    header = header_text(model, now, "tester").plain
    assert f"rollback in {int(left // 60):02d}:{int(left % 60):02d}" in header, header
    assert f"blind {sample.blind_intervals}" in header and sample.blind_intervals > 3
    assert "00:00 left" not in header
    ladder = ladder_text(model, now).plain
    data_m, data_s = divmod(int(sample.elapsed_s), 60)
    assert f"{data_m:02d}:{data_s:02d} / 05:00 with data" in ladder, ladder
    assert sample.elapsed_s < 300 and "05:00 / 05:00" not in ladder
    assert f"(blind {sample.blind_intervals})" in meters_text(model).plain


async def test_after_a_blind_rollback_headline_and_outcome_say_what_is_known(tmp_path: Path) -> None:
    """Item 5: not `SERVICE NOT RESTORED … error rate no data` beside outcome rolled_back."""
    from datetime import timedelta

    from core.events import LogLine, RollbackStep
    from tui.widgets.header import header_text
    from tui.widgets.model import DeckModel

    session = await sim_session(tmp_path, "metrics-outage")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    verify = next(e for e in events if isinstance(e, RollbackStep) and e.action == "verify")
    assert not verify.ok  # never called restored while the error rate is unknown
    assert verify.detail.startswith("traffic restored (canary 0 %), health green, metrics unknown")
    said = [e.message for e in events if isinstance(e, LogLine)]
    assert not [m for m in said if "SERVICE NOT RESTORED" in m]
    assert any(
        m.startswith("rolled back: traffic restored (canary 0 %), health green, metrics unknown")
        for m in said
    )
    model = DeckModel()
    for event in events:
        model.apply(event)
    header = header_text(model, events[-1].ts + timedelta(seconds=1), "tester").plain
    assert "outcome: rolled back — traffic restored, health green, metrics unknown" in header, header
