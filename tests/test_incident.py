"""Incident record and rollback message, built from the deploy's events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from core.adapters.journal import read_journal, verify_journal
from core.domain import GateGroup, GateResult, GateStatus, Outcome, Phase
from core.events import Finished, GateEvaluated, NotificationSent, RollbackStep, RollbackTriggered
from core.history import export_deploy, list_deploys
from core.incident import incident_record, postmortem_reasons, rollback_message, write_incident_record
from tests.test_history import T0, make_deploy


def rolled_back(weight: int = 25) -> list:
    return make_deploy("abc123def4567890", outcome=Outcome.ROLLED_BACK, fire_at_weight=weight, restore_s=95)


def test_record_has_every_section_with_the_numbers() -> None:
    md = incident_record(rolled_back())
    assert md.startswith("# Incident: checkout 1.4.0 → 1.5.0 rolled back")
    # summary
    assert "- Deploy id: `abc123def4567890`" in md
    assert "- Rolled back automatically at 2026-11-02 09:05:43 UTC by engine, rule **error_rate**" in md
    assert "- Canary weight when it fired: 25 %" in md
    assert "- Time to restore: 1m35s" in md
    # the rule that fired, with its numbers
    assert (
        "| error_rate | 2.7 pp | 0.5 pp | **yes** | 0/1 | canary 3.10 % vs baseline 0.40 %: +2.70 pp > 0.50 pp |"
        in md
    )
    # metrics at the trigger
    assert "| error rate | 3.10 % | 0.40 % |" in md
    assert "| p99 latency | 190 ms | 180 ms |" in md
    assert "| requests | 600 | 2400 |" in md
    # who signed off and who acted
    assert "**alice** signed off rollback-plan: runbook ok" in md
    assert "rm-bob: started the deploy" in md
    assert "engine: automatic rollback (error_rate)" in md
    # rollback steps and timeline
    assert "undo_stable: ok revision 7" in md
    assert "| 09:05:43 | canary | ROLLBACK triggered (automatic, rule error_rate) by engine:" in md
    assert "1 healthy analysis samples omitted" in md


def test_postmortem_flag_when_users_affected() -> None:
    assert "Post-mortem required: **yes**" in incident_record(rolled_back(25))
    assert "canary weight was 25 % when it fired (threshold 25 %)" in incident_record(rolled_back(25))
    low = incident_record(rolled_back(5))
    assert "Post-mortem required: no" in low
    assert "Post-mortem required: **yes**" in incident_record(rolled_back(5), users_affected_weight=5)


def test_postmortem_flag_when_error_budget_burned_or_not_restored() -> None:
    events = rolled_back(5)
    budget = GateEvaluated(
        ts=T0 + timedelta(minutes=20),
        phase=Phase.ROLLED_BACK,
        deploy_id="abc123def4567890",
        gate=GateResult(
            gate_id="error-budget",
            title="Error budget",
            policy="POL-008",
            group=GateGroup.PRE_DEPLOY,
            status=GateStatus.FAIL,
            evidence="-12 % of error budget left",
        ),
    )
    reasons = postmortem_reasons([*events, budget])
    assert reasons == ["error budget burned: -12 % of error budget left"]
    failed_verify = RollbackStep(
        ts=T0 + timedelta(minutes=21),
        phase=Phase.ROLLING_BACK,
        deploy_id="abc123def4567890",
        action="verify",
        ok=False,
        detail="error rate still 2.9 %",
    )
    assert "service not restored after the rollback: error rate still 2.9 %" in postmortem_reasons(
        [*events, failed_verify]
    )


def test_record_without_trigger_or_samples_says_so() -> None:
    md = incident_record(make_deploy("x", outcome=Outcome.COMPLETED)[:3])
    assert "No rollback trigger is recorded" in md
    assert "No analysis sample recorded before the trigger (no data)." in md


def test_write_incident_record(tmp_path: Path) -> None:
    path = write_incident_record(rolled_back(), tmp_path / "incidents")
    assert path.name == "incident-abc123def456-20261102T090543Z.md"
    assert path.read_text(encoding="utf-8") == incident_record(rolled_back())
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_rollback_message_names_rule_numbers_and_actor() -> None:
    message = rollback_message(rolled_back())
    assert message.level == "critical"
    assert message.title == "Rollback: checkout 1.5.0"
    assert "Rolled back automatically by engine at 09:05:43 UTC" in message.text
    assert "canary 3.10 % vs baseline 0.40 %: +2.70 pp > 0.50 pp" in message.text
    assert message.fields["Rule"] == "error_rate"
    assert message.fields["Acted"] == "engine (automatic)"
    assert message.fields["Weight at trigger"] == "25 %"
    assert message.fields["Rollback"] == "weight_reset ok, undo_stable ok"


# --- end to end on the simulated world, the channel being a real HTTP server on loopback ---------


@pytest.fixture
async def channel() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T1/B1/secret", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/services/T1/B1/secret", received
    finally:
        await runner.cleanup()


async def run_demo(scenario: str, tmp_path: Path, webhook_url: str) -> tuple[Outcome, Path]:
    from core.adapters.webhook import WebhookNotifier
    from core.clock import VirtualClock
    from core.plan import WebhookSpec
    from core.session import demo_plan, open_session

    clock = VirtualClock()
    session = await open_session(
        demo_plan(scenario),
        actor="tester",
        clock=clock,
        journal_path=tmp_path / "deployments.jsonl",
        interactive=False,
        approvals=["rollback-plan", "dashboards-reviewed"],
    )
    session.world.notifier = WebhookNotifier(
        [WebhookSpec(url=webhook_url, kind="slack", name="#deploys")], clock=clock, timeout_s=5, retries=2
    )
    try:
        outcome = await session.rollout.run()
    finally:
        await session.close()
    return outcome, session.journal_path


@pytest.mark.parametrize("scenario", ["bad-canary", "late-regression"])
async def test_rollback_procedure_end_to_end(
    scenario: str, tmp_path: Path, channel: tuple[str, list[dict[str, object]]]
) -> None:
    url, received = channel
    outcome, journal = await run_demo(scenario, tmp_path, url)
    assert outcome == Outcome.ROLLED_BACK
    events = read_journal(journal).events
    trigger = next(e for e in events if isinstance(e, RollbackTriggered))
    if scenario == "late-regression":
        assert trigger.phase == Phase.VERIFY  # the triggers stay armed after promotion
    # communicate: a Slack message naming the rule and who acted
    rollback_posts = [b for b in received if str(b["text"]).startswith("Rollback:")]
    assert len(rollback_posts) == 1
    fields = {f["text"] for block in rollback_posts[0]["blocks"] for f in block.get("fields", [])}
    assert f"*Rule*\n{trigger.rule}" in fields
    sent = [e for e in events if isinstance(e, NotificationSent)]
    assert sent and sent[0].channel == "#deploys" and sent[0].delivered
    assert all("secret" not in e.model_dump_json() for e in events)
    # document: the incident record on disk, from the journal
    step = next(e for e in events if isinstance(e, RollbackStep) and e.action == "document")
    assert step.ok
    records = list((journal.parent / "incidents").glob("incident-*.md"))
    assert len(records) == 1
    text = records[0].read_text(encoding="utf-8")
    assert f"rule **{trigger.rule}**" in text
    assert "## Metrics at the moment of the trigger" in text and "| error rate |" in text
    assert "tester** signed off rollback-plan" in text
    assert verify_journal(journal).ok


async def test_healthy_demo_completes_with_summary(
    tmp_path: Path, channel: tuple[str, list[dict[str, object]]]
) -> None:
    url, received = channel
    outcome, journal = await run_demo("healthy", tmp_path, url)
    events = read_journal(journal).events
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert outcome == Outcome.COMPLETED, finished.reason
    assert [
        r.gate_id
        for r in (e.gate for e in events if isinstance(e, GateEvaluated))
        if r.group == "post_deploy"
    ]
    assert any(str(b["text"]).startswith("Deployed: checkout 1.5.0") for b in received)
    assert not (journal.parent / "incidents").exists()
    deploy = list_deploys(journal)[0]
    assert deploy.outcome == Outcome.COMPLETED and deploy.max_weight == 100
    audit = export_deploy(events, "md")
    assert "verify-error-rate" in audit and "| 100 % | 100 % |" in audit
