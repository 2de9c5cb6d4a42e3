"""Helpers of the engine-step mutation tests (tests/test_mutants_rollout_steps*.py): a driver with every
manual gate approved, what it left in the cluster, and what it said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.domain import Phase
from core.events import (
    Finished,
    LogLine,
    RunResumed,
)
from core.plan import Plan
from core.policy import gates_for
from core.rollout.progress import RolloutStatus
from core.session import Session, open_session
from tests.test_mutants_rollout import _of

IMAGE = "registry.example.com/shop/checkout:1.5.0"


async def driver(tmp_path: Path, plan: Plan, world: Any = None, **kwargs: Any) -> Session:
    """A driver with every manual gate approved on the command line (a second one resumes on ``world``)."""
    return await open_session(
        plan,
        actor=kwargs.pop("actor", "tester"),
        clock=VirtualClock() if world is None else world.clock,
        interactive=kwargs.pop("interactive", False),
        approvals=kwargs.pop("approvals", [g.id for g in gates_for(plan) if not g.automated]),
        journal_path=tmp_path / "deployments.jsonl",
        world=world,
        **kwargs,
    )


def left_in_cluster(session: Session) -> RolloutStatus:
    inner: Any = session.world.production.inner  # type: ignore[attr-defined]
    status = RolloutStatus.from_state(inner.state)
    assert status is not None
    return status


def since_resume(session: Session) -> list[Any]:
    events = session.rollout.events
    starts = [i for i, e in enumerate(events) if isinstance(e, RunResumed)]
    return events[starts[0] :] if starts else events


def finished_reason(session: Session) -> str:
    [finished] = _of(session.rollout.events, Finished)
    return finished.reason  # type: ignore[no-any-return]


def log_lines(session: Session, phase: Phase | None = None) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in _of(session.rollout.events, LogLine) if phase in (None, e.phase)]
