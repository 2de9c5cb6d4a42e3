"""Who may do what, when: the rules of Rollout.allowed() (issue 16; what each command then does and
journals is in test_mutants_rollout_commands_effects.py).

Written against `make mutate MUTATE_MODULES=core.rollout` in core/rollout/commands.py: each case puts
the demo's rollout by hand in the state a command meets and reads the answer and the reason the person
is shown (the reason is what they act on: "resume first", "press p to move one step"). All in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.domain import GateGroup, Outcome, Phase
from tests.rollout_commands_helpers import LAST_STEP, at, decision, pass_all, sample, window

# each test takes well under a second: a mutant that makes a wait endless fails here, not in minutes
pytestmark = pytest.mark.timeout(10)

STOPPING = "the rollout is stopping where it stands (SIGTERM received); run the plan again to resume it"
EVERY_COMMAND = [
    "rollback",
    "abort",
    "pause",
    "resume",
    "decide",
    "refresh",
    "sign_off",
    "override",
    "proceed",
]


@pytest.mark.parametrize("command", [*EVERY_COMMAND, "promote_early"])
async def test_a_signalled_rollout_refuses_every_command_until_it_is_run_again(
    tmp_path: Path, command: str
) -> None:
    rollout = await at(tmp_path, Phase.CANARY, _interrupted=("SIGTERM", 143))
    assert rollout.allowed(command).model_dump() == {"ok": False, "reason": STOPPING}


async def test_once_the_outcome_is_known_the_signal_no_longer_speaks_for_the_refusal(tmp_path: Path) -> None:
    rollout = await at(
        tmp_path, Phase.ROLLED_BACK, _interrupted=("SIGTERM", 143), outcome=Outcome.ROLLED_BACK
    )
    assert rollout.allowed("rollback").model_dump() == {"ok": False, "reason": "the rollout is rolled back"}


@pytest.mark.parametrize(
    ("phase", "outcome", "reason"),
    [
        (Phase.PENDING, None, "the rollout has not started"),
        (Phase.ROLLING_BACK, None, "the rollout is rolling back"),
        (Phase.COMPLETE, Outcome.COMPLETED, "the rollout is complete"),
        # the outcome alone ends commands, whatever phase the screen still shows
        (Phase.VERIFY, Outcome.ERROR, "the rollout is verify"),
    ],
)
async def test_no_command_before_the_start_during_a_rollback_or_after_the_end(
    tmp_path: Path, phase: Phase, outcome: Outcome | None, reason: str
) -> None:
    rollout = await at(tmp_path, phase, outcome=outcome)
    for command in EVERY_COMMAND:
        assert rollout.allowed(command).model_dump() == {"ok": False, "reason": reason}, command


@pytest.mark.parametrize("phase", [Phase.PREFLIGHT, Phase.STAGING, Phase.CANARY, Phase.VERIFY, Phase.PAUSED])
async def test_rollback_and_abort_are_allowed_in_every_active_phase(tmp_path: Path, phase: Phase) -> None:
    rollout = await at(tmp_path, phase, paused_from=Phase.CANARY if phase == Phase.PAUSED else None)
    assert rollout.allowed("rollback").model_dump() == {"ok": True, "reason": ""}
    assert rollout.allowed("abort").model_dump() == {"ok": True, "reason": ""}


async def test_pause_only_when_running_and_resume_only_when_paused(tmp_path: Path) -> None:
    running = await at(tmp_path, Phase.CANARY)
    assert running.allowed("pause").ok
    assert running.allowed("resume").model_dump() == {"ok": False, "reason": "not paused"}
    paused = await at(tmp_path, Phase.PAUSED, paused_from=Phase.CANARY)
    assert paused.allowed("pause").model_dump() == {"ok": False, "reason": "already paused"}
    assert paused.allowed("resume").ok


async def test_decide_only_while_a_decision_is_pending(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.VERIFY)
    assert rollout.allowed("decide").model_dump() == {"ok": False, "reason": "no decision is pending"}
    rollout._decision_pending = decision(rollout)
    assert rollout.allowed("decide").ok


REFRESH_REFUSED = {"ok": False, "reason": "gates are re-checked only while the rollout waits at them"}


@pytest.mark.parametrize("phase", [Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING])
async def test_gates_are_re_checked_on_demand_in_the_waiting_phases_paused_or_not(
    tmp_path: Path, phase: Phase
) -> None:
    assert (await at(tmp_path, phase)).allowed("refresh").ok
    assert (await at(tmp_path, Phase.PAUSED, paused_from=phase)).allowed("refresh").ok
    # a run without a person never waits at a gate: nothing to re-check
    assert (await at(tmp_path, phase, interactive=False)).allowed("refresh").model_dump() == REFRESH_REFUSED


@pytest.mark.parametrize("phase", [Phase.CANARY, Phase.VERIFY])
async def test_gates_are_not_re_checked_on_demand_outside_the_waiting_phases(
    tmp_path: Path, phase: Phase
) -> None:
    assert (await at(tmp_path, phase)).allowed("refresh").model_dump() == REFRESH_REFUSED
    paused = await at(tmp_path, Phase.PAUSED, paused_from=phase)
    assert paused.allowed("refresh").model_dump() == REFRESH_REFUSED


@pytest.mark.parametrize("phase", [Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING, Phase.VERIFY])
async def test_sign_off_and_override_only_where_gates_are_open_paused_or_not(
    tmp_path: Path, phase: Phase
) -> None:
    for rollout in (await at(tmp_path, phase), await at(tmp_path, Phase.PAUSED, paused_from=phase)):
        assert rollout.allowed("sign_off").ok
        assert rollout.allowed("override").ok


async def test_no_sign_off_or_override_in_the_canary(tmp_path: Path) -> None:
    for rollout in (
        await at(tmp_path, Phase.CANARY),
        await at(tmp_path, Phase.PAUSED, paused_from=Phase.CANARY),
    ):
        for command in ("sign_off", "override"):
            assert rollout.allowed(command).model_dump() == {
                "ok": False,
                "reason": "no gates are open in canary",
            }


# --- proceed ---------------------------------------------------------------------------------------


async def test_proceed_while_paused_says_resume_first_even_at_a_satisfied_gate(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PAUSED, paused_from=Phase.PREFLIGHT, _awaiting_proceed=True)
    pass_all(rollout, GateGroup.PRE_DEPLOY)
    assert rollout.allowed("proceed").model_dump() == {"ok": False, "reason": "paused: resume first"}


async def test_proceed_at_gates_names_every_gate_still_blocking(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT, _awaiting_proceed=True)
    pass_all(rollout, GateGroup.PRE_DEPLOY)
    del rollout.gates["rollback-plan"], rollout.gates["ci-green"]
    assert rollout.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "ci-green: not evaluated yet; rollback-plan: not evaluated yet",
    }
    pass_all(rollout, GateGroup.PRE_DEPLOY)
    assert rollout.allowed("proceed").model_dump() == {"ok": True, "reason": ""}


async def test_a_proceed_the_engine_waits_for_in_the_canary_needs_no_analysis_sample(tmp_path: Path) -> None:
    # the wait before the first step (or after a resume): there is no sample yet, and none is needed
    rollout = await at(tmp_path, Phase.CANARY, _awaiting_proceed=True, step_index=0)
    assert rollout.pending_reasons() == ["no analysis sample yet in this step"]
    assert rollout.allowed("proceed").model_dump() == {"ok": True, "reason": ""}
    # ...but a sample that is not healthy still blocks it
    rollout.last_analysis = sample(rollout, "fired")
    assert rollout.allowed("proceed").model_dump() == {"ok": False, "reason": "last analysis: fired"}


async def test_in_a_canary_window_proceed_needs_a_healthy_sample_of_this_step(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=1)
    rollout.window = window(rollout)
    assert rollout.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "no healthy analysis sample in this step yet",
    }
    rollout.last_analysis = sample(rollout, "fired")
    assert rollout.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "no healthy analysis sample in this step yet",
    }
    rollout.last_analysis = sample(rollout, "no_data", "prometheus unreachable")
    assert rollout.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "last analysis had no data: prometheus unreachable",
    }
    rollout.last_analysis = sample(rollout, "no_data")  # no reason given: the generic refusal
    assert rollout.allowed("proceed").reason == "no healthy analysis sample in this step yet"
    rollout.last_analysis = sample(rollout, "healthy")
    assert rollout.allowed("proceed").model_dump() == {"ok": True, "reason": ""}


async def test_proceed_never_cuts_the_100_percent_bake_short(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=LAST_STEP)
    rollout.window = window(rollout)
    rollout.last_analysis = sample(rollout, "healthy")
    assert rollout.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "the 100 % bake ends by itself; promote early (P) skips the rest of it",
    }
    rollout.step_index = LAST_STEP - 1  # the step before it: a healthy sample lets p move on
    assert rollout.allowed("proceed").ok


async def test_proceed_with_nothing_to_wait_for_says_why(tmp_path: Path) -> None:
    verify = await at(tmp_path, Phase.VERIFY)
    pass_all(verify, GateGroup.POST_DEPLOY)
    assert verify.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "nothing to proceed to in verify",
    }
    # at gates the flow is not yet waiting at: every gate still open, by name
    preflight = await at(tmp_path, Phase.PREFLIGHT)
    pass_all(preflight, GateGroup.PRE_DEPLOY)
    del preflight.gates["ci-green"], preflight.gates["dashboards-reviewed"]
    assert preflight.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "ci-green: not evaluated yet; dashboards-reviewed: not evaluated yet",
    }
    # a canary between windows: the pending reasons are the answer
    between = await at(tmp_path, Phase.CANARY, step_index=1)
    assert between.allowed("proceed").model_dump() == {
        "ok": False,
        "reason": "no analysis sample yet in this step",
    }


# --- promote early ----------------------------------------------------------------------------------


async def _in_the_bake(tmp_path: Path, **state: Any) -> Any:
    rollout = await at(tmp_path, Phase.CANARY, step_index=LAST_STEP)
    for name, value in state.items():
        setattr(rollout, name, value)
    rollout.window = window(rollout)
    rollout.last_analysis = sample(rollout, "healthy")
    return rollout


async def test_promote_early_only_in_the_100_percent_bake_after_a_healthy_sample(tmp_path: Path) -> None:
    rollout = await _in_the_bake(tmp_path)
    assert rollout.allowed("promote_early").model_dump() == {"ok": True, "reason": ""}
    rollout.last_analysis = sample(rollout, "no_data", "prometheus unreachable")
    assert rollout.allowed("promote_early").model_dump() == {
        "ok": False,
        "reason": "no healthy analysis sample at 100 % yet",
    }
    rollout.last_analysis = None
    assert rollout.allowed("promote_early").reason == "no healthy analysis sample at 100 % yet"


async def test_promote_early_before_the_last_step_points_to_proceed(tmp_path: Path) -> None:
    rollout = await _in_the_bake(tmp_path, step_index=LAST_STEP - 1)
    assert rollout.allowed("promote_early").model_dump() == {
        "ok": False,
        "reason": "promote early only skips the 100 % bake; before it, press p to move one step",
    }
    rollout.step_index = None  # the canary not yet at its first step
    assert not rollout.allowed("promote_early").ok


async def test_promote_early_outside_a_canary_window_or_while_paused_is_refused(tmp_path: Path) -> None:
    only_the_bake = {"ok": False, "reason": "promote early only skips the rest of the 100 % bake"}
    rollout = await _in_the_bake(tmp_path)
    rollout.window = None
    assert rollout.allowed("promote_early").model_dump() == only_the_bake
    verify = await _in_the_bake(tmp_path, phase=Phase.VERIFY)
    assert verify.allowed("promote_early").model_dump() == only_the_bake
    paused = await _in_the_bake(tmp_path, phase=Phase.PAUSED, _paused_from=Phase.CANARY)
    assert paused.allowed("promote_early").model_dump() == {"ok": False, "reason": "paused: resume first"}
    paused._paused_from = Phase.CANARY
    paused.phase = Phase.CANARY  # the same bake, resumed
    assert paused.allowed("promote_early").ok


async def test_an_unknown_command_is_refused_by_name(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    assert rollout.allowed("promote").model_dump() == {"ok": False, "reason": "unknown command 'promote'"}


# --- previews ---------------------------------------------------------------------------------------


async def test_the_proceed_preview_names_the_time_cut_short_and_the_next_steps_full_window(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=1)
    rollout.window = window(rollout, left_s=150.0)
    rollout.last_analysis = sample(rollout, "healthy")
    assert (
        rollout.proceed_preview()
        == "skips the remaining 2m30s of the 25 % window; 50 % then gets its full 5m window"
    )
    rollout.window = window(rollout, left_s=-30.0)  # the window already over: nothing left, never negative
    assert (
        rollout.proceed_preview()
        == "skips the remaining 0s of the 25 % window; 50 % then gets its full 5m window"
    )
    rollout.window = None
    assert rollout.proceed_preview() is None
    rollout.step_index, rollout.window = 2, window(rollout, left_s=60.0)  # the step before the bake
    assert (
        rollout.proceed_preview()
        == "skips the remaining 1m of the 50 % window; 100 % then gets its full 15m window"
    )


async def test_no_proceed_preview_where_a_proceed_is_awaited_without_a_window_or_a_next_step(
    tmp_path: Path,
) -> None:
    # the waits for a proceed around the canary's windows: a proceed is allowed, and cuts nothing short
    before = await at(tmp_path, Phase.CANARY, _awaiting_proceed=True, step_index=0)
    assert before.allowed("proceed").ok and before.proceed_preview() is None
    last = await at(tmp_path, Phase.CANARY, _awaiting_proceed=True, step_index=LAST_STEP)
    last.window = window(last)
    assert last.allowed("proceed").ok and last.proceed_preview() is None
    unstepped = await at(tmp_path, Phase.CANARY, _awaiting_proceed=True, step_index=None)
    unstepped.window = window(unstepped)
    assert unstepped.allowed("proceed").ok and unstepped.proceed_preview() is None


async def test_no_proceed_preview_when_proceed_is_refused_or_there_is_no_next_step(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=1)
    rollout.window = window(rollout)
    assert rollout.proceed_preview() is None  # refused: no healthy sample
    gates = await at(tmp_path, Phase.PREFLIGHT, _awaiting_proceed=True)
    pass_all(gates, GateGroup.PRE_DEPLOY)
    assert gates.allowed("proceed").ok and gates.proceed_preview() is None  # allowed, but no window


async def test_the_promote_early_preview_names_the_rest_of_the_bake(tmp_path: Path) -> None:
    rollout = await _in_the_bake(tmp_path)
    rollout.window = window(rollout, left_s=420.0)
    assert rollout.promote_early_preview() == "skip the remaining 7m of the 100 % bake"
    rollout.window = window(rollout, left_s=-5.0)
    assert rollout.promote_early_preview() == "skip the remaining 0s of the 100 % bake"
    rollout.last_analysis = None
    assert rollout.promote_early_preview() is None
