"""Killing a driver at a chosen point and starting a new one on the same cluster and journal.

A kill is simulated in-process: before the driver's k-th effect on the outside world (a
journal line or a cluster call) a :class:`Killed` is raised. It is a BaseException, so no
``except Exception`` in the engine can turn it into a rollback or a journal line: the driver
just stops, as under ``kill -9``. The world (cluster, workload, clock) lives on for the next
driver, which is opened as a new session on the same world and journal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.domain import Outcome
from core.plan import Plan
from core.session import Session, demo_plan, open_session
from core.world import World

#: the cluster calls that act on the world (reads are not effects)
_EFFECTS = frozenset({"deploy", "set_canary_weight", "rollback", "write_state", "wait_ready"})


class Killed(BaseException):
    """The driver was killed here (kill -9): nothing after this point ran."""


class KillSwitch:
    """Counts the driver's effects and kills it just before effect number ``at`` (1-based),
    or before the ``nth`` effect whose description contains ``match``."""

    def __init__(self, at: int | None = None, *, match: str = "", nth: int = 1) -> None:
        self.at = at
        self.match, self.nth = match, nth
        self.count = 0
        self.where = ""
        self.log: list[str] = []

    def tick(self, what: str) -> None:
        self.count += 1
        self.log.append(what)
        if self.match and self.match in what:
            self.nth -= 1
            if self.nth == 0:
                self.where = what
                raise Killed(what)
        if self.at is not None and self.count == self.at:
            self.where = what
            raise Killed(what)


class _KillingJournal:
    def __init__(self, inner: Any, switch: KillSwitch) -> None:
        self.inner, self.switch = inner, switch

    async def append(self, record: dict[str, object], *, durable: bool = True) -> None:
        self.switch.tick(f"journal {record.get('type')} step={record.get('step')}")
        await self.inner.append(record, durable=durable)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _KillingCluster:
    def __init__(self, inner: Any, switch: KillSwitch) -> None:
        self.inner, self.switch = inner, switch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in _EFFECTS:
            return attr

        async def effect(*args: Any, **kwargs: Any) -> Any:
            self.switch.tick(f"cluster {name}{args[:1]}")
            return await attr(*args, **kwargs)

        return effect


async def open_driver(
    world: World | None,
    tmp_path: Path,
    scenario: str = "healthy",
    actor: str = "tester",
    plan: Plan | None = None,
    **session_kw: Any,
) -> Session:
    """A non-interactive driver with every manual gate approved; extra keywords go to open_session."""
    plan = plan or demo_plan(scenario)
    return await open_session(
        plan,
        actor=actor,
        clock=VirtualClock() if world is None else world.clock,
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=tmp_path / "deployments.jsonl",
        world=world,
        **session_kw,
    )


async def run_killed_at(
    session: Session, at: int | None = None, *, match: str = "", nth: int = 1
) -> tuple[Outcome | None, KillSwitch]:
    """Run the session's rollout, killing it at a point (see KillSwitch); the outcome, or None if killed."""
    switch = KillSwitch(at, match=match, nth=nth)
    world = session.world
    real = world.production
    session.rollout.journal = _KillingJournal(session.rollout.journal, switch)  # type: ignore[assignment]
    world.production = _KillingCluster(real, switch)  # type: ignore[assignment]
    try:
        return await session.rollout.run(), switch
    except Killed:
        return None, switch
    finally:
        world.production = real  # the cluster outlives the killed driver; the next one sees it plain


def journal_records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "deployments.jsonl"
    if not path.exists():  # killed before the first line
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def applied_weights(records: list[dict[str, Any]]) -> list[int]:
    return [r["effective"] for r in records if r["type"] == "traffic_changed" and r.get("applied", True)]
