"""Deployment history: listing, prefix lookup, audit export and DORA figures from known deploys."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.adapters.journal import FileJournal
from core.domain import GateGroup, GateResult, GateStatus, Outcome, Phase, SignOff
from core.events import (
    AnalysisSample,
    DeployStarted,
    Event,
    Finished,
    GateEvaluated,
    GateSignedOff,
    NotificationSent,
    PhaseChanged,
    RollbackStep,
    RollbackTriggered,
    RuleReading,
    TrafficChanged,
    WindowStarted,
)
from core.history import HistoryError, dora, export_deploy, list_deploys, load_deploy, summarize

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def make_deploy(
    deploy_id: str,
    *,
    service: str = "checkout",
    start: datetime = T0,
    outcome: Outcome = Outcome.COMPLETED,
    fire_at_weight: int = 25,
    restore_s: float = 90.0,
    signer: str = "alice",
) -> list[Event]:
    """A realistic event stream: gates, a sign-off, canary steps, and either completion or a rollback."""
    t = start

    def at(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    common = {"deploy_id": deploy_id}
    events: list[Event] = [
        DeployStarted(
            ts=at(0),
            phase=Phase.PENDING,
            service=service,
            namespace="shop",
            from_version="1.4.0",
            to_version="1.5.0",
            image=f"registry.local/{service}:1.5.0",
            change_id="CHG-1001",
            change_class="normal",
            actor="rm-bob",
            steps=[5, 25, 50, 100],
            **common,
        ),
        PhaseChanged(ts=at(1), phase=Phase.PREFLIGHT, previous=Phase.PENDING, **common),
        GateEvaluated(
            ts=at(2),
            phase=Phase.PREFLIGHT,
            gate=GateResult(
                gate_id="ci-green",
                title="CI gates green",
                policy="POL-015",
                group=GateGroup.PRE_DEPLOY,
                status=GateStatus.PASS,
                evidence="5/5 required checks green",
                detail="lint success\ntests success",
            ),
            **common,
        ),
        GateEvaluated(
            ts=at(3),
            phase=Phase.PREFLIGHT,
            gate=GateResult(
                gate_id="rollback-plan",
                title="Rollback plan documented",
                policy="POL-007",
                group=GateGroup.PRE_DEPLOY,
                status=GateStatus.SIGNED,
                evidence="signed by alice",
                sign_offs=(SignOff(actor=signer, at=at(4)),),
            ),
            **common,
        ),
        GateSignedOff(
            ts=at(4),
            phase=Phase.PREFLIGHT,
            gate_id="rollback-plan",
            actor=signer,
            note="runbook ok",
            **common,
        ),
        PhaseChanged(ts=at(10), phase=Phase.CANARY, previous=Phase.PREFLIGHT, step=0, **common),
    ]
    clock = 10.0
    for index, weight in enumerate([5, 25, 50, 100]):
        clock += 1
        events.append(
            TrafficChanged(
                ts=at(clock), phase=Phase.CANARY, step=index, requested=weight, effective=weight, **common
            )
        )
        events.append(
            WindowStarted(
                ts=at(clock),
                phase=Phase.CANARY,
                name=f"canary {weight} %",
                duration_s=300,
                ends_at=at(clock + 300),
                **common,
            )
        )
        fires = outcome == Outcome.ROLLED_BACK and weight == fire_at_weight
        clock += 30
        sample = AnalysisSample(
            ts=at(clock),
            phase=Phase.CANARY,
            step=index,
            weight=weight,
            canary_error_rate=3.1 if fires else 0.41,
            baseline_error_rate=0.40,
            canary_p99_ms=190,
            baseline_p99_ms=180,
            canary_requests=600,
            baseline_requests=2400,
            health_ok=True,
            verdict="fired" if fires else "healthy",
            readings=[
                RuleReading(
                    rule="error_rate",
                    value=2.7 if fires else 0.01,
                    limit=0.5,
                    unit="pp",
                    fired=fires,
                    text="canary 3.10 % vs baseline 0.40 %: +2.70 pp > 0.50 pp" if fires else "+0.01 pp",
                )
            ],
            **common,
        )
        events.append(sample)
        if fires:
            events.append(
                RollbackTriggered(
                    ts=at(clock + 1),
                    phase=Phase.CANARY,
                    actor="engine",
                    automatic=True,
                    rule="error_rate",
                    reason="error rate +2.70 pp over baseline (limit 0.50 pp)",
                    readings=sample.readings,
                    samples=[sample],
                    weight_at_trigger=weight,
                    **common,
                )
            )
            events.append(
                PhaseChanged(ts=at(clock + 2), phase=Phase.ROLLING_BACK, previous=Phase.CANARY, **common)
            )
            events.append(
                RollbackStep(
                    ts=at(clock + 3), phase=Phase.ROLLING_BACK, action="weight_reset", ok=True, **common
                )
            )
            events.append(
                RollbackStep(
                    ts=at(clock + 4),
                    phase=Phase.ROLLING_BACK,
                    action="undo_stable",
                    ok=True,
                    detail="revision 7",
                    **common,
                )
            )
            events.append(
                NotificationSent(
                    ts=at(clock + 5), phase=Phase.ROLLING_BACK, channel="#deploys", delivered=True, **common
                )
            )
            done = clock + 1 + restore_s
            events.append(
                PhaseChanged(ts=at(done), phase=Phase.ROLLED_BACK, previous=Phase.ROLLING_BACK, **common)
            )
            events.append(
                Finished(
                    ts=at(done),
                    phase=Phase.ROLLED_BACK,
                    outcome=Outcome.ROLLED_BACK,
                    duration_s=done,
                    **common,
                )
            )
            return events
        clock += 270
    if outcome == Outcome.COMPLETED:
        events.append(PhaseChanged(ts=at(clock), phase=Phase.COMPLETE, previous=Phase.VERIFY, **common))
        events.append(
            Finished(
                ts=at(clock), phase=Phase.COMPLETE, outcome=Outcome.COMPLETED, duration_s=clock, **common
            )
        )
    elif outcome == Outcome.BLOCKED:
        events.append(
            Finished(ts=at(clock), phase=Phase.BLOCKED, outcome=Outcome.BLOCKED, duration_s=clock, **common)
        )
    return events


async def write_journal(path: Path, deploys: list[list[Event]]) -> None:
    journal = FileJournal(path, fsync=False)
    for events in deploys:
        for event in events:
            await journal.append(event.model_dump(mode="json"))


def write_journal_sync(path: Path, deploys: list[list[Event]]) -> None:
    """For sync tests and fixtures: tests that touch files directly must not be coroutines."""
    asyncio.run(write_journal(path, deploys))


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "deployments.jsonl"
    day = timedelta(days=1)
    write_journal_sync(
        path,
        [
            make_deploy("aaaa1111", start=T0),
            make_deploy("aaaa2222", start=T0 + day, outcome=Outcome.ROLLED_BACK, restore_s=120),
            make_deploy("bbbb3333", start=T0 + 2 * day),
            make_deploy(
                "cccc4444", start=T0 + 3 * day, outcome=Outcome.ROLLED_BACK, restore_s=60, fire_at_weight=50
            ),
            make_deploy("dddd5555", start=T0 + 4 * day, service="search"),
            make_deploy("eeee6666", start=T0 + 5 * day, service="search", outcome=Outcome.BLOCKED),
        ],
    )
    return path


def test_list_deploys_summarises_each(journal_path: Path) -> None:
    deploys = list_deploys(journal_path)
    assert [d.deploy_id for d in deploys] == [
        "aaaa1111",
        "aaaa2222",
        "bbbb3333",
        "cccc4444",
        "dddd5555",
        "eeee6666",
    ]
    first, second = deploys[0], deploys[1]
    assert first.outcome == Outcome.COMPLETED and first.max_weight == 100
    assert first.sign_offs[0].gate == "rollback-plan" and first.sign_offs[0].actor == "alice"
    assert first.duration_s == pytest.approx(10 + 4 * 301)
    assert second.outcome == Outcome.ROLLED_BACK
    assert second.rollback_rule == "error_rate"
    assert second.restore_s == pytest.approx(120)
    assert second.max_weight == 25


def test_load_deploy_accepts_unique_prefix(journal_path: Path) -> None:
    events = load_deploy(journal_path, "bbbb")
    assert {e.deploy_id for e in events} == {"bbbb3333"}
    with pytest.raises(HistoryError, match="matches 2 deploys"):
        load_deploy(journal_path, "aaaa")
    with pytest.raises(HistoryError, match="no deploy with id 'zzz'"):
        load_deploy(journal_path, "zzz")


def test_dora_figures_from_known_deploys(journal_path: Path) -> None:
    now = T0 + timedelta(days=7)
    figures = dora(list_deploys(journal_path), now, window_days=7)
    checkout = figures["checkout"]
    assert (checkout.deploys, checkout.completed, checkout.rolled_back) == (4, 2, 2)
    assert checkout.change_failure_rate == pytest.approx(0.5)
    assert checkout.per_week == pytest.approx(2.0)
    assert checkout.per_day == pytest.approx(2 / 7)
    assert checkout.mttr_s == pytest.approx((120 + 60) / 2)
    assert checkout.lead_time_s == pytest.approx(10 + 4 * 301)
    search = figures["search"]
    assert (search.completed, search.rolled_back, search.blocked) == (1, 0, 1)
    assert search.change_failure_rate == pytest.approx(0.0)
    assert search.mttr_s is None


def test_dora_window_excludes_old_deploys(journal_path: Path) -> None:
    now = T0 + timedelta(days=7)
    figures = dora(list_deploys(journal_path), now, window_days=4.5)  # from day 2.5 on
    assert figures["checkout"].deploys == 1 and figures["checkout"].rolled_back == 1
    assert figures["checkout"].change_failure_rate == pytest.approx(1.0)


def test_unfinished_deploy_has_no_outcome() -> None:
    events = make_deploy("ffff", outcome=Outcome.ABORTED)  # builder writes no Finished for aborted
    summary = summarize(events)
    assert summary is not None and summary.outcome is None and summary.duration_s is None
    assert dora([summary], T0 + timedelta(days=1)) == {}


def test_export_markdown_is_the_audit_record(journal_path: Path) -> None:
    events = load_deploy(journal_path, "aaaa2222")
    md = export_deploy(events, "md")
    assert "# Deploy audit record: checkout 1.4.0 → 1.5.0" in md
    assert "| ci-green | POL-015 | pre_deploy | pass | 5/5 required checks green |" in md
    assert "lint success" in md  # gate detail evidence
    assert "rollback-plan signed off by **alice** (self-declared): runbook ok" in md
    assert "| 5 % | 5 % | engine |" in md and "| 25 % | 25 % | engine |" in md
    assert "| 50 % |" not in md.split("## Trigger evaluations")[0]  # never reached 50 %
    assert "error_rate FIRED: canary 3.10 % vs baseline 0.40 %" in md
    assert "**error_rate** (automatic, by engine, at 25 %)" in md
    assert "step undo_stable: ok revision 7" in md
    assert "finished: rolled_back" in md


def test_export_json_has_every_section(journal_path: Path) -> None:
    events = load_deploy(journal_path, "aaaa2222")
    data = json.loads(export_deploy(events, "json", integrity="ok"))
    assert data["deploy"]["deploy_id"] == "aaaa2222"
    assert [g["gate_id"] for g in data["gates"]] == ["ci-green", "rollback-plan"]
    assert data["gates"][1]["sign_offs"][0]["actor"] == "alice"
    assert [t["effective"] for t in data["traffic_changes"]] == [5, 25]
    assert len(data["trigger_evaluations"]) == 2
    assert data["rollback"]["triggers"][0]["rule"] == "error_rate"
    assert [s["action"] for s in data["rollback"]["steps"]] == ["weight_reset", "undo_stable"]
    assert data["outcome"]["outcome"] == "rolled_back"
    assert data["journal_integrity"] == "ok"


def test_export_without_start_line_is_a_clear_error() -> None:
    events = make_deploy("x1")[1:]
    with pytest.raises(HistoryError, match="no deploy_started line"):
        export_deploy(events, "md")
