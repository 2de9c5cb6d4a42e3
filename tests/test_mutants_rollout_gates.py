"""How the engine waits at a group of gates (issue 16): core/rollout/gates.py.

Written against `make mutate MUTATE_MODULES=core.rollout` in gates.py: a run without a person blocks at
once naming every unsatisfied gate; an interactive one waits, re-checks only the waiting automated gates
every `gates.refresh` seconds (all the step's automated gates when a person asks), says "press p" once
all are satisfied and goes on only on a proceed where one is needed. The gates themselves are a script
(evaluate_gates replaced) so each re-check is seen with its virtual time and the gates it asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import core.rollout.gates as gates_module
from core.domain import GateGroup, GateStatus, Phase
from core.events import GateEvaluated, LogLine
from core.rollout import Rollout
from core.rollout.context import _Blocked, _Stopped
from tests.engine_helpers import until
from tests.rollout_commands_helpers import at, of

# each test takes well under a second: a mutant that makes a wait endless fails here, not in minutes
pytestmark = pytest.mark.timeout(10)

MANUAL = {"rollback-plan", "dashboards-reviewed"}


class _Script:
    """evaluate_gates for the pre-deploy group: each gate's status from ``status`` (default pass, the
    manual ones needs_sign_off); every call is kept as (virtual seconds since the start, gates asked)."""

    def __init__(
        self, rollout: Rollout, status: Callable[[str], GateStatus | None] = lambda gid: None
    ) -> None:
        self.rollout, self.status = rollout, status
        self.start = rollout.clock.now()
        self.calls: list[tuple[float, list[str]]] = []

    async def __call__(self, ctx: Any, group: GateGroup, only: set[str] | None = None) -> list[Any]:
        assert group == GateGroup.PRE_DEPLOY and only is not None
        assert ctx.plan is self.rollout.plan and ctx.clock is self.rollout.clock  # the rollout's own context
        now = self.rollout.clock.now()
        self.calls.append(((now - self.start).total_seconds(), sorted(only)))
        default = {gid: GateStatus.NEEDS_SIGN_OFF if gid in MANUAL else GateStatus.PASS for gid in only}
        return [
            gate.result(self.status(gate.id) or default[gate.id], f"{gate.id} checked", at=now)
            for gate in self.rollout.catalogue.values()
            if gate.id in only
        ]


async def _waiting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: Callable[[str], GateStatus | None] = lambda gid: None,
    *,
    refresh: float = 30.0,
    interactive: bool = True,
) -> tuple[Rollout, _Script]:
    rollout = await at(tmp_path, Phase.PREFLIGHT, interactive=interactive)
    rollout.plan = rollout.plan.model_copy(
        update={"gates": rollout.plan.gates.model_copy(update={"refresh": refresh})}
    )
    script = _Script(rollout, status)
    monkeypatch.setattr(gates_module, "evaluate_gates", script)
    return rollout, script


def _start(rollout: Rollout, *, needs_proceed: bool, skip: set[str] = frozenset()) -> asyncio.Task[None]:  # type: ignore[assignment]
    return asyncio.create_task(
        rollout._gate_phase(GateGroup.PRE_DEPLOY, needs_proceed=needs_proceed, skip=skip)
    )


async def _wait_s(rollout: Rollout, seconds: float) -> None:
    """Let the flow run until ``seconds`` of virtual time have passed."""
    end = rollout.clock.now() + timedelta(seconds=seconds)
    await until(lambda: rollout.clock.now() >= end)


async def _ended(task: asyncio.Task[None]) -> None:
    """The task's end (its exception raised here); fails fast, in the test, if it never ends."""
    await until(task.done, turns=20_000)
    task.result()


def _messages(rollout: Rollout) -> list[str]:
    return [e.message for e in of(rollout, LogLine)]


AUTOMATED = sorted(
    [
        *("ci-green", "code-reviewed", "change-class", "freeze-window"),
        *("no-sev-incident", "monitoring-normal", "error-budget", "dependencies-healthy"),
    ]
)
ALL = sorted([*AUTOMATED, *MANUAL])


# --- without a person ----------------------------------------------------------------------------


async def test_a_run_without_a_person_blocks_at_once_naming_every_unsatisfied_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = {"ci-green": GateStatus.FAIL, "monitoring-normal": GateStatus.ERROR}
    rollout, script = await _waiting(tmp_path, monkeypatch, failing.get, interactive=False)
    with pytest.raises(_Blocked) as blocked:
        await rollout._gate_phase(GateGroup.PRE_DEPLOY, needs_proceed=False)
    assert blocked.value.reason == (
        "blocked at pre-deploy gates: ci-green (fail), monitoring-normal (error), "
        "rollback-plan (needs_sign_off), dashboards-reviewed (needs_sign_off)"
    )
    assert script.calls == [(0.0, ALL)]  # checked once: nobody is there to fix anything


async def test_a_run_without_a_person_goes_on_when_every_gate_not_skipped_is_satisfied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(
        tmp_path, monkeypatch, {"ci-green": GateStatus.FAIL}.get, interactive=False
    )
    rollout.ledger.sign(rollout.catalogue["rollback-plan"], "alice", "", rollout.clock.now())
    rollout.ledger.sign(rollout.catalogue["dashboards-reviewed"], "bob", "", rollout.clock.now())
    # a skipped gate is neither evaluated nor waited for, even when a result of it is on record
    rollout.gates["ci-green"] = rollout.catalogue["ci-green"].result(
        GateStatus.FAIL, "red", at=rollout.clock.now()
    )
    await rollout._gate_phase(GateGroup.PRE_DEPLOY, needs_proceed=True, skip={"ci-green"})
    assert script.calls == [(0.0, sorted(set(ALL) - {"ci-green"}))]
    assert "ci-green" not in {e.gate.gate_id for e in of(rollout, GateEvaluated)}
    assert rollout.gates["rollback-plan"].status == GateStatus.SIGNED  # recorded as people see it


async def test_a_skipped_gate_hides_no_other_unsatisfied_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = {"ci-green": GateStatus.FAIL, "freeze-window": GateStatus.FAIL}
    rollout, _ = await _waiting(tmp_path, monkeypatch, failing.get, interactive=False)
    with pytest.raises(_Blocked) as blocked:
        await rollout._gate_phase(
            GateGroup.PRE_DEPLOY, needs_proceed=False, skip={"ci-green", "rollback-plan"}
        )
    assert blocked.value.reason == (
        "blocked at pre-deploy gates: freeze-window (fail), dashboards-reviewed (needs_sign_off)"
    )


# --- with a person -------------------------------------------------------------------------------


async def test_satisfied_gates_that_need_no_proceed_let_the_flow_on_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(
        tmp_path, monkeypatch, lambda gid: GateStatus.SIGNED if gid in MANUAL else None
    )
    rollout._proceed_requested = None
    await _ended(_start(rollout, needs_proceed=False))
    assert script.calls == [(0.0, ALL)] and rollout.clock.now() == script.start
    assert not rollout._awaiting_proceed and "all gates satisfied: press p to proceed" not in _messages(
        rollout
    )


async def test_satisfied_gates_say_press_p_once_and_wait_for_a_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, _ = await _waiting(
        tmp_path, monkeypatch, lambda gid: GateStatus.SIGNED if gid in MANUAL else None
    )
    task = _start(rollout, needs_proceed=True)
    await _wait_s(rollout, 60)
    assert not task.done() and rollout._awaiting_proceed
    assert _messages(rollout).count("all gates satisfied: press p to proceed") == 1
    assert (await rollout.proceed("alice")).ok
    await _ended(task)
    assert (rollout._proceed_requested, rollout._awaiting_proceed) == (None, False)


async def test_while_gates_are_unsatisfied_a_proceed_is_awaited_only_where_one_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, _ = await _waiting(tmp_path, monkeypatch)
    task = _start(rollout, needs_proceed=True)
    await _wait_s(rollout, 10)
    # the refusal names the gates still open (allowed() reads the wait), not "nothing to proceed to"
    assert rollout._awaiting_proceed is True
    assert rollout.allowed("proceed").reason.startswith("rollback-plan: needs sign off")
    task.cancel()
    other, _ = await _waiting(tmp_path, monkeypatch)
    other._awaiting_proceed = True
    task = _start(other, needs_proceed=False)
    await _wait_s(other, 10)
    assert other._awaiting_proceed is False
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_sign_off_while_waiting_lets_the_flow_on_without_waiting_for_the_next_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, _ = await _waiting(tmp_path, monkeypatch)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 7)
    assert (await rollout.sign_off("rollback-plan", "alice")).ok
    assert (await rollout.sign_off("dashboards-reviewed", "bob")).ok
    signed_at = rollout.clock.now()
    await _ended(task)
    assert rollout.clock.now() == signed_at  # the sign-off woke the nap


async def test_waiting_automated_gates_are_re_checked_every_refresh_and_only_they(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(tmp_path, monkeypatch, {"ci-green": GateStatus.FAIL}.get, refresh=10)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 42)
    # the passing gates and the manual ones (waiting for a person, not a check) are not read again
    assert script.calls == [
        (0.0, ALL),
        (10.0, ["ci-green"]),
        (20.0, ["ci-green"]),
        (30.0, ["ci-green"]),
        (40.0, ["ci-green"]),
    ]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_refresh_shorter_than_the_nap_re_checks_at_its_own_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(tmp_path, monkeypatch, {"ci-green": GateStatus.FAIL}.get, refresh=3)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 10)
    assert [t for t, _ in script.calls] == [0.0, 3.0, 6.0, 9.0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_refresh_longer_than_the_nap_waits_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(tmp_path, monkeypatch, {"ci-green": GateStatus.FAIL}.get, refresh=12)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 31)
    # naps of 5 s: the first read at or after 12 s is at 15 s, and the next refresh counts from there
    assert [t for t, _ in script.calls] == [0.0, 15.0, 30.0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_only_sign_off_gates_waiting_are_never_re_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(tmp_path, monkeypatch, refresh=10)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 35)
    assert script.calls == [(0.0, ALL)]
    # a gate failing later is still noticed at the next refresh: the refresh kept its pace meanwhile
    script.status = {"ci-green": GateStatus.FAIL}.get
    rollout.gates["ci-green"] = rollout.catalogue["ci-green"].result(
        GateStatus.FAIL, "red", at=rollout.clock.now()
    )
    await _wait_s(rollout, 10)
    assert script.calls[1:] == [(40.0, ["ci-green"])]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_refresh_asked_for_re_checks_every_automated_gate_of_the_step_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout, script = await _waiting(tmp_path, monkeypatch, {"ci-green": GateStatus.FAIL}.get, refresh=30)
    task = _start(rollout, needs_proceed=False)
    await _wait_s(rollout, 12)
    asked_at = (rollout.clock.now() - script.start).total_seconds()
    assert (await rollout.refresh_gates("alice")).ok
    await until(lambda: len(script.calls) == 2)
    # at once (the request woke the nap), and the passing automated gates too, never the manual ones
    assert script.calls[1] == (asked_at, AUTOMATED)
    assert "alice re-checks the gates" in _messages(rollout) and rollout._refresh_requested is None
    # the periodic refresh counts again from the asked-for one
    await _wait_s(rollout, 31)
    assert script.calls[2:] == [(asked_at + 30, ["ci-green"])]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_stop_ends_the_wait_at_the_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rollout, _ = await _waiting(tmp_path, monkeypatch)
    task = _start(rollout, needs_proceed=True)
    await _wait_s(rollout, 6)
    await rollout.abort("alice", "wrong day")
    with pytest.raises(_Stopped):
        await _ended(task)


# --- waiting for a proceed outside the gates -----------------------------------------------------


async def test_a_wait_for_proceed_says_press_p_and_ends_only_on_a_proceed(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=0)
    task = asyncio.create_task(rollout._wait_for_proceed("canary deployed"))
    await until(lambda: rollout._awaiting_proceed)
    await _wait_s(rollout, 30)
    assert not task.done() and _messages(rollout) == ["canary deployed: press p"]
    assert (await rollout.proceed("alice")).ok
    await _ended(task)
    assert (rollout._proceed_requested, rollout._awaiting_proceed) == (None, False)


async def test_a_stop_ends_a_wait_for_proceed(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=0)
    task = asyncio.create_task(rollout._wait_for_proceed("canary deployed"))
    await _wait_s(rollout, 6)
    await rollout.rollback("alice")
    with pytest.raises(_Stopped):
        await _ended(task)


# --- the context the gates run with --------------------------------------------------------------


async def test_the_gates_run_with_the_worlds_ports_and_the_plans_folder(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    world = rollout.world
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=rollout.clock.now().tzinfo)
    rollout._started_at, rollout.plan_path = started, str(tmp_path / "deploy" / "plan.yaml")
    ctx = rollout._gate_context()
    assert (ctx.plan, ctx.clock, ctx.probe, ctx.runner) == (
        rollout.plan,
        rollout.clock,
        world.probe,
        world.runner,
    )
    assert (ctx.alerts, ctx.metrics, ctx.codehost, ctx.staging) == (
        world.alerts,
        world.metrics,
        world.codehost,
        world.staging,
    )
    assert ctx.deploy_started_at == started and ctx.base_dir == tmp_path / "deploy"
    await ctx.log("migrations", "applied 001")
    [line] = of(rollout, LogLine)
    assert (line.source, line.message) == ("migrations", "applied 001")


@pytest.mark.parametrize("plan_path", ["", "(demo)"])
async def test_a_plan_without_a_file_has_no_folder_and_a_run_not_started_dates_from_now(
    tmp_path: Path, plan_path: str
) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    rollout.plan_path, rollout._started_at = plan_path, None
    ctx = rollout._gate_context()
    assert ctx.base_dir is None and ctx.deploy_started_at == rollout.clock.now()


async def test_a_gate_the_engine_satisfied_itself_is_recorded_passed_with_its_evidence(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.STAGING)
    await rollout._record_pass("staging-deploy", "1.5.0 rolled out")
    await rollout._record_pass("no-such-gate", "ignored")
    [recorded] = of(rollout, GateEvaluated)
    gate = recorded.gate
    assert (gate.gate_id, gate.status, gate.evidence, gate.checked_at) == (
        "staging-deploy",
        GateStatus.PASS,
        "1.5.0 rolled out",
        rollout.clock.now(),
    )
    assert rollout.gates == {"staging-deploy": gate}
