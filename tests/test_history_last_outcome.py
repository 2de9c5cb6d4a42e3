"""A deploy that lost its lease and was resumed has two `finished` lines: the last one is its outcome.

The first driver journals `finished: blocked` when it stops acting (lease lost); the driver that
resumes the same deploy id journals the real outcome later. List, DORA, `log show` and both audit
exports must all report that last outcome (issue 11 resume; reported by C1).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.adapters.journal import FileJournal
from core.domain import Outcome, Phase
from core.events import DeployStarted, Event, Finished, LeaseLost, RunResumed, TrafficChanged
from core.history import _audit_data, dora, export_deploy, list_deploys, load_deploy, summarize, timeline

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ID = "feed0000beef"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def resumed_deploy() -> list[Event]:
    common = {"deploy_id": ID}
    return [
        DeployStarted(
            ts=_at(0),
            phase=Phase.PENDING,
            service="checkout",
            namespace="shop",
            from_version="1.4.2",
            to_version="1.5.0",
            image="registry.local/checkout:1.5.0",
            change_id="CHG-1",
            change_class="normal",
            actor="alice",
            **common,
        ),
        TrafficChanged(ts=_at(600), phase=Phase.CANARY, requested=25, effective=25, actor="engine", **common),
        LeaseLost(ts=_at(700), phase=Phase.CANARY, reason="lease taken by bob", weight=25, **common),
        Finished(
            ts=_at(700),
            phase=Phase.BLOCKED,
            outcome=Outcome.BLOCKED,
            reason="lease lost",
            duration_s=700,
            **common,
        ),
        RunResumed(ts=_at(900), phase=Phase.CANARY, from_phase="canary", from_step=1, weight=25, **common),
        TrafficChanged(
            ts=_at(1200), phase=Phase.CANARY, requested=100, effective=100, actor="engine", **common
        ),
        Finished(
            ts=_at(3000),
            phase=Phase.COMPLETE,
            outcome=Outcome.COMPLETED,
            reason="",
            duration_s=3000,
            **common,
        ),
    ]


def _write(path: Path, events: list[Event]) -> None:
    async def write() -> None:
        journal = FileJournal(path, fsync=False)
        for event in events:
            await journal.append(event.model_dump(mode="json"))

    asyncio.run(write())


def test_every_history_view_takes_the_last_finished_line(tmp_path: Path) -> None:
    path = tmp_path / "deployments.jsonl"
    _write(path, resumed_deploy())
    events = load_deploy(path, ID[:6])
    assert [e.outcome for e in events if isinstance(e, Finished)] == [Outcome.BLOCKED, Outcome.COMPLETED]

    summary = summarize(events)
    assert summary is not None and summary.outcome == Outcome.COMPLETED and summary.finished == _at(3000)
    [listed] = list_deploys(path)
    assert listed.outcome == Outcome.COMPLETED

    figures = dora(list_deploys(path), now=_at(86400))["checkout"]
    assert figures.deploys == 1 and figures.completed == 1 and figures.blocked == 0

    audit = _audit_data(events)
    assert audit["outcome"]["outcome"] == "completed"  # type: ignore[index]
    assert json.loads(export_deploy(events, "json"))["outcome"]["outcome"] == "completed"
    markdown = export_deploy(events, "md")
    assert "- Outcome: **completed**" in markdown
    outcome_section = markdown.split("## Outcome", 1)[1]
    assert "completed" in outcome_section and "blocked" not in outcome_section

    # `log show` is a timeline: both lines happened and both are shown, in journal order
    texts = [text for _, _, text in timeline(events)]
    finished = [t for t in texts if t.startswith("finished:")]
    assert len(finished) == 2 and finished[-1].startswith("finished: completed")
