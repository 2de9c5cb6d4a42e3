"""Running the engine on the in-process simulated world with a virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.plan import Plan
from core.session import Session, demo_plan, open_session


async def sim_session(
    tmp_path: Path,
    scenario: str = "healthy",
    *,
    interactive: bool = False,
    approve: bool = True,
    backend: str = "memory",
    **plan_changes: object,
) -> Session:
    plan = demo_plan(scenario)
    if plan_changes:
        plan = plan.model_copy(update=plan_changes)
    return await open_session(
        plan,
        actor="tester",
        clock=VirtualClock(),
        interactive=interactive,
        approvals=[m.id for m in plan.gates.manual] if approve and not interactive else [],
        journal_path=tmp_path / "deployments.jsonl",
        sim_backend=backend,  # type: ignore[arg-type]
        kubeconfig_dir=tmp_path / "kube",
    )


async def until(condition: Callable[[], bool], turns: int = 100_000) -> None:
    """Let the event loop run until ``condition`` holds; fail instead of hanging."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def plan_with_one_migration(tmp_path: Path, monkeypatch: Any, **spec: Any) -> Plan:
    """The demo plan with one reviewed migration file (``spec``: the rest of its MigrationsSpec).

    The lint gate reads the files in a thread while the virtual clock runs on, so the thread is
    made inline: the read is done before the clock moves."""
    from core.plan import MigrationsSpec

    async def inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", inline)
    migration = tmp_path / "001_add_column.sql"
    migration.write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    migrations = MigrationsSpec(allow_outside_plan_dir=True, files=[str(migration)], **spec)
    return demo_plan().model_copy(update={"migrations": migrations})
