"""The dashboard driven by keys (App.run_test) on the simulated world with a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

from core.domain import GateStatus, Outcome, Phase
from core.events import AnalysisSample, RuleReading
from tui.app import DeckCommands, DeployDeckApp
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen, ReplayScreen
from tui.screens.log import LogScreen
from tui.screens.main import MainScreen
from tui.screens.modals import ConfirmModal, ProceedModal, SignOffModal
from tui.screenshots import (
    ACTOR,
    at_gates,
    canary_at,
    completed,
    demo_app,
    drive,
    needs_sign_off,
    proceed,
    rolled_back,
)
from tui.widgets.chart import Series, nice_ceiling, render_chart
from tui.widgets.eventlog import EventLog
from tui.widgets.header import HeaderBar
from tui.widgets.meters import meter_line, meter_style
from tui.widgets.why import WhyPanel


def journal_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def header_text(app: DeployDeckApp) -> str:
    return str(app.screen.query_one(HeaderBar).render())


async def test_sign_off_and_proceed_through_every_step_to_complete(tmp_path: Path) -> None:
    journal = tmp_path / "deployments.jsonl"
    async with demo_app("healthy", journal=journal, promote=True) as (app, pilot):
        await drive(app, pilot, completed, promote=True)
        assert app.outcome == Outcome.COMPLETED
        assert app.model.phase == Phase.COMPLETE
        assert "outcome: completed" in header_text(app)
    lines = journal_lines(journal)
    signed = [rec for rec in lines if rec["type"] == "gate_signed_off"]
    assert {rec["gate_id"] for rec in signed} == {"rollback-plan", "dashboards-reviewed"}
    assert all(rec["actor"] == ACTOR for rec in signed)
    proceeds = [rec for rec in lines if rec["type"] == "log" and rec["message"] == f"{ACTOR} proceeds"]
    assert len(proceeds) >= 4  # past the pre-deploy gates, then 5 → 25 → 50 → 100
    weights = [
        rec["effective"] for rec in lines if rec["type"] == "traffic_changed" and rec.get("applied", True)
    ]
    assert [w for w in weights if w in {5, 25, 50, 100}][:4] == [5, 25, 50, 100]


async def test_promoting_to_100_asks_for_the_service_name(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", promote=True) as (app, pilot):
        await drive(app, pilot, canary_at(50, samples=1), promote=True)
        await drive(app, pilot, lambda m: app.check_action("proceed", ()) is True, operate=False)
        await pilot.press("p")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ProceedModal) and modal.needs_typing
        await pilot.press("enter")  # nothing typed: nothing happens
        await pilot.press(*"checkou")
        await pilot.press("enter")  # wrong name: still nothing
        await pilot.pause()
        assert app.screen is modal and app.model.weight == 50
        await pilot.press("t", "enter")
        await drive(app, pilot, lambda m: m.weight == 100, operate=False)
        assert app.model.weight == 100


async def test_proceed_is_refused_while_a_gate_is_pending(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal, freeze_at=at_gates) as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        assert needs_sign_off(app.model)
        assert app.check_action("proceed", ()) is None  # shown greyed out in the footer
        assert not await proceed(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, ProceedModal)
        assert app.model.phase == Phase.PREFLIGHT
    messages = [rec.get("message") for rec in journal_lines(journal)]
    assert f"{ACTOR} proceeds" not in messages


async def test_sign_off_dialog_defaults_to_the_actor_and_records_the_note(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal) as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        gate_id = app._gate_to_sign()
        assert gate_id is not None
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SignOffModal)
        assert app.screen.query_one("#signer").value == ACTOR  # type: ignore[attr-defined]
        await pilot.press(*"checked runbook", "enter")
        await drive(app, pilot, lambda m: m.gates[gate_id].status == GateStatus.SIGNED, operate=False)
    signed = [rec for rec in journal_lines(journal) if rec["type"] == "gate_signed_off"]
    assert signed[0]["gate_id"] == gate_id and signed[0]["note"] == "checked runbook"


async def test_r_mid_canary_rolls_back_at_once_and_the_journal_names_who(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal, freeze_at=canary_at(25, samples=1)) as (app, pilot):
        await drive(app, pilot, canary_at(25, samples=1))
        app.action_rollback()
        # the same frame: the header says so before the engine has answered anything
        assert f"rolling back — started by {ACTOR}" in header_text(app)
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, rolled_back, operate=False)
        assert app.outcome == Outcome.ROLLED_BACK
        log = "\n".join(e.text for e in app.model.log)
        assert f"started by {ACTOR}" in log
    triggered = [rec for rec in journal_lines(journal) if rec["type"] == "rollback_triggered"]
    assert len(triggered) == 1
    assert triggered[0]["actor"] == ACTOR and triggered[0]["automatic"] is False
    assert triggered[0]["weight_at_trigger"] == 25


async def test_r_key_reaches_the_engine(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=canary_at(5, samples=1)) as (
        app,
        pilot,
    ):
        await drive(app, pilot, canary_at(5, samples=1))
        await pilot.press("r")
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, rolled_back, operate=False)
        assert app.model.rollback is not None and app.model.rollback.actor == ACTOR


async def test_bad_canary_rolls_back_by_itself_and_explains_why(tmp_path: Path) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        assert app.outcome == Outcome.ROLLED_BACK
        why = app.screen.query_one(WhyPanel)
        assert why.has_class("-shown") and why.display
        text = str(why.render())
        assert "WHY IT ROLLED BACK" in text and "automatic rollback at 25 %" in text
        assert "error rate above baseline" in text and "FIRED" in text and "error_rate" not in text
        assert app.model.rollback is not None and app.model.rollback.rule == "error_rate"
        # nothing left to steer: the live commands are hidden, not greyed
        assert app.check_action("rollback", ()) is False and app.check_action("proceed", ()) is False


async def test_quitting_mid_rollout_asks_and_says_it_stays_where_it_is(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=canary_at(5, samples=1)) as (
        app,
        pilot,
    ):
        await drive(app, pilot, canary_at(5, samples=1))
        await pilot.press("q")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert "leaves it where it is" in modal.body and "canary at 5 %" in modal.body
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.click("#ok")
        await pilot.pause()
        assert app._exit
        assert app.model.rollback is None  # quitting rolled nothing back


async def test_space_pauses_and_resumes(tmp_path: Path) -> None:
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("space")
        await drive(app, pilot, lambda m: m.phase == Phase.PAUSED, operate=False)
        assert f"paused by {ACTOR}" in header_text(app)
        assert app.check_action("proceed", ()) is None  # paused: resume first
        await pilot.press("space")
        await drive(app, pilot, lambda m: m.phase == Phase.CANARY and m.paused_by is None, operate=False)


async def test_abort_asks_for_a_reason_and_ends_aborted(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=journal, freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and app.screen.reason == f"aborted by {ACTOR}"
        await pilot.click("#ok")
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, completed, operate=False)
        assert app.outcome == Outcome.ABORTED
    assert any(rec["type"] == "finished" and rec["outcome"] == "aborted" for rec in journal_lines(journal))


async def test_quitting_after_the_deploy_finished_does_not_ask(tmp_path: Path) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert app._exit


async def test_read_only_hides_commands_and_allows_rollback_only_when_asked(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "a.jsonl", read_only=True) as (app, pilot):
        await drive(app, pilot, lambda m: m.phase == Phase.PREFLIGHT and needs_sign_off(m), operate=False)
        for action in ("proceed", "sign_off", "abort", "pause_resume", "rollback"):
            assert app.check_action(action, ()) is False, action
        await pilot.press("s", "r")
        await pilot.pause()
        assert not isinstance(app.screen, SignOffModal)
        assert app.model.rollback_requested_by is None
    async with demo_app("healthy", journal=tmp_path / "b.jsonl", read_only=True, allow_rollback=True) as (
        app,
        pilot,
    ):
        await drive(app, pilot, lambda m: m.phase == Phase.PREFLIGHT and needs_sign_off(m), operate=False)
        assert app.check_action("proceed", ()) is False
        assert app.check_action("rollback", ()) is True


async def test_event_log_filters_warnings_and_errors(tmp_path: Path) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        log = app.screen.query_one(EventLog)
        everything = len(log.lines)
        await pilot.press("w")
        await pilot.pause()
        problems = [e for e in app.model.log if e.level in {"warning", "error"}]
        assert problems and log.problems_only
        assert 0 < len(log.lines) < everything
        assert all("✘" in strip.text or "▲" in strip.text or strip.text[:1] != "1" for strip in log.lines)


async def test_history_lists_the_deploy_and_replays_it(tmp_path: Path) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        await pilot.press("h")
        await pilot.pause()
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert [s.deploy_id for s in history.summaries] == [app.session.rollout.deploy_id]
        await pilot.press("enter")
        await pilot.pause()
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        assert replay.model.outcome == Outcome.ROLLED_BACK
        assert replay.model.rollback is not None and replay.model.rollback.rule == "error_rate"
        assert replay.query_one(WhyPanel).has_class("-shown")
        # the replayed charts hold the same samples the live ones did
        assert len(replay.model.errors) == len(app.model.errors)
        await pilot.press("home")
        assert replay.position == 0 and replay.model.finished is None
        await pilot.press("end")
        assert replay.model.outcome == Outcome.ROLLED_BACK
        assert app.check_action("rollback", ()) is False  # a replay never steers the live deploy


async def test_help_shows_remapped_keys(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl") as (app, pilot):
        app.set_keymap({"rollback": "R"})
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Help" in str(app.screen.query_one(".dialog").border_title)
        assert isinstance(app.screen, HelpScreen) and app.screen.keymap is not None
        assert app.screen.keymap["rollback"] == "R"
        await pilot.press("escape")
        assert app.key_names()["rollback"] == "R"


async def test_palette_switches_scenario(tmp_path: Path) -> None:
    from core.session import demo_plan, open_session
    from tui.screenshots import FreezingClock

    opened: list[str] = []

    async def reopen(name: str):  # type: ignore[no-untyped-def]
        opened.append(name)
        return await open_session(
            demo_plan(name), actor=ACTOR, clock=FreezingClock(), journal_path=tmp_path / f"{name}.jsonl"
        )

    async with demo_app("healthy", journal=tmp_path / "j.jsonl") as (app, pilot):
        app.reopen = reopen
        first = app.session
        titles = [hit.text for hit in [h async for h in DeckCommands(app.screen).discover()]]  # type: ignore[attr-defined]
        assert "Switch scenario: bad-canary" in titles
        app.switch_scenario("bad-canary")
        await drive(
            app, pilot, lambda m: m.started is not None and m.started.scenario == "bad-canary", operate=False
        )
        assert opened == ["bad-canary"] and app.session is not first
        assert app.session.rollout.events[0].type == "deploy_started"
        assert isinstance(app.screen, MainScreen) and app.screen.model is app.model


# --- the widgets on their own ------------------------------------------------------------


def test_chart_puts_canary_baseline_and_limit_on_one_scale() -> None:
    canary = Series("canary", [(0.0, 0.4), (30.0, 3.0)], "red")
    baseline = Series("baseline", [(0.0, 0.4), (30.0, 0.4)], "blue")
    limit = Series("limit", [(0.0, 0.9), (30.0, 0.9)], "red", dashed=True)
    text = render_chart([limit, baseline, canary], 40, 10, unit="%")
    lines = text.plain.split("\n")
    assert len(lines) == 10 and all(len(line) <= 40 for line in lines)
    assert lines[1].strip().startswith("5%┤")  # 3.0 × 1.1 rounds up to 5: one axis for all three
    assert "canary" in lines[0] and "limit" in lines[0]
    assert render_chart([], 40, 10).plain.count("no data yet") == 1
    assert nice_ceiling(3.3) == 5 and nice_ceiling(0.9) == 1 and nice_ceiling(120) == 200


def test_chart_leaves_a_gap_where_there_is_no_data() -> None:
    gappy = Series("c", [(0.0, 1.0), (10.0, None), (20.0, 1.0)], "red")
    full = Series("c", [(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)], "red")
    dots = lambda s: sum(ch != " " for ch in render_chart([s], 30, 6).plain.split("\n")[3])  # noqa: E731
    assert dots(gappy) < dots(full)


def test_meters_turn_amber_near_the_limit_and_red_when_fired() -> None:
    calm = RuleReading(rule="error_rate", value=0.1, limit=0.5, unit="pp")
    near = RuleReading(rule="error_rate", value=0.4, limit=0.5, unit="pp")
    fired = RuleReading(rule="error_rate", value=0.8, limit=0.5, unit="pp", fired=True)
    blind = RuleReading(rule="p99_latency", value=None, limit=1.5, unit="x")
    ratio = RuleReading(rule="p99_latency", value=1.08, limit=1.5, unit="x")
    assert meter_style(calm) == "green" and meter_style(ratio) == "green"
    assert meter_style(near) == "bold yellow"
    assert meter_style(fired) == "bold red" and "FIRED" in meter_line(fired).plain
    assert "no data" in meter_line(blind).plain and meter_style(blind) == "yellow"
    assert "+0.40 pp / 0.50" in meter_line(near).plain
    health = RuleReading(rule="health", value=1, limit=2, unit="fails", consecutive=1, needed=2)
    assert "1/2" in meter_line(health).plain


def test_model_draws_the_threshold_from_the_readings() -> None:
    from datetime import UTC, datetime

    from core.events import DeployStarted
    from tui.widgets.model import DeckModel

    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    model = DeckModel()
    model.apply(
        DeployStarted(
            ts=t0,
            phase=Phase.PENDING,
            service="s",
            namespace="n",
            from_version="1",
            to_version="2",
            image="i",
            change_id="c",
            change_class="normal",
            actor="a",
            steps=[5, 100],
        )
    )
    model.apply(
        AnalysisSample(
            ts=t0.replace(minute=1),
            phase=Phase.CANARY,
            weight=5,
            verdict="healthy",
            canary_error_rate=0.5,
            baseline_error_rate=0.4,
            canary_p99_ms=200,
            baseline_p99_ms=100,
            readings=[
                RuleReading(rule="error_rate", value=0.1, limit=0.7, unit="pp"),
                RuleReading(rule="p99_latency", value=2.0, limit=1.8, unit="x", fired=True),
            ],
        )
    )
    assert model.errors[-1].limit == 0.4 + 0.7
    assert model.latency[-1].limit == 100 * 1.8
    assert model.errors[-1].t == 60.0


async def test_the_checklist_row_shows_the_sign_off_once_given(tmp_path: Path) -> None:
    from tui.widgets.gates import GateChecklist

    async with demo_app("healthy", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        checklist = app.screen.query_one(GateChecklist)
        row = checklist.get_option("rollback-plan")
        assert "sign-off" in str(row.prompt).splitlines()[0]
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("enter")
        for _ in range(50):  # no drive(): it repaints everything, which would hide a missed repaint
            await pilot.pause(0.02)
            if app.model.gates["rollback-plan"].status == GateStatus.SIGNED:
                break
        await pilot.pause(0.05)
        # what the person sees, not just the model: the row itself says signed, with who
        row = checklist.get_option("rollback-plan")
        first, second = str(row.prompt).splitlines()
        assert first.rstrip().endswith("signed") and f"signed by {ACTOR}" in second


async def test_g_re_checks_the_gates_and_the_log_says_who(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal) as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        await pilot.press("g")
        for _ in range(50):
            await pilot.pause(0.02)
            if any(e.text == f"{ACTOR} re-checks the gates" for e in app.model.log):
                break
        assert any(e.text == f"{ACTOR} re-checks the gates" for e in app.model.log)
    assert any(rec.get("message") == f"{ACTOR} re-checks the gates" for rec in journal_lines(journal))
