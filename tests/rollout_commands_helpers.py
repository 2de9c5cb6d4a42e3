"""Helpers of the people's-command mutation tests (tests/test_mutants_rollout_commands*.py): a rollout
put by hand in the state a command meets (phase, window, last sample, pending decision), without
running the flow, so each rule of core/rollout/commands.py is read on its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from core.domain import GateGroup, GateStatus, Phase
from core.events import AnalysisSample, DecisionRequired, WindowStarted
from core.rollout import Rollout
from tests.engine_helpers import sim_session
from tests.test_mutants_rollout import _of

LAST_STEP = 3  # the demo plan's canary: 5, 25, 50 and 100 %


async def at(
    tmp_path: Path,
    phase: Phase,
    *,
    paused_from: Phase | None = None,
    interactive: bool = True,
    **state: Any,
) -> Rollout:
    """The demo's rollout standing in ``phase`` (PAUSED: paused from ``paused_from``), ``state`` set."""
    session = await sim_session(tmp_path, interactive=interactive)
    rollout = session.rollout
    rollout.phase = phase
    rollout._paused_from = paused_from
    for name, value in state.items():
        setattr(rollout, name, value)
    return rollout


def window(rollout: Rollout, left_s: float = 600.0) -> WindowStarted:
    now = rollout.clock.now()
    return WindowStarted(
        ts=now, phase=Phase.CANARY, name="canary", duration_s=900.0, ends_at=now + timedelta(seconds=left_s)
    )


def sample(rollout: Rollout, verdict: str = "healthy", no_data_reason: str | None = None) -> AnalysisSample:
    return AnalysisSample(
        ts=rollout.clock.now(),
        phase=Phase.CANARY,
        weight=100,
        verdict=verdict,  # type: ignore[arg-type]
        no_data_reason=no_data_reason,
    )


def decision(rollout: Rollout) -> DecisionRequired:
    return DecisionRequired(
        ts=rollout.clock.now(),
        phase=Phase.VERIFY,
        question="verification failed: roll back or fix forward?",
        options=["rollback", "fix_forward"],
        recommended="rollback",
    )


def pass_all(rollout: Rollout, group: GateGroup) -> None:
    """Every gate of ``group`` passed (automated) or signed (manual)."""
    now = rollout.clock.now()
    for gate in rollout.catalogue.values():
        if gate.group == group:
            rollout.gates[gate.id] = gate.result(GateStatus.PASS, "ok", at=now)


def of(rollout: Rollout, cls: type) -> list[Any]:
    return _of(rollout.events, cls)
