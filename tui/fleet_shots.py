"""The fleet screen's screenshots (``python -m tui.screenshots fleet-80x24 fleet-120x40``).

A fleet of real engines on the simulated world, each walked to a different state by a release
manager's commands on a FreezingClock that stops there, so every run of this shows the same
screen. The rows are built from each engine as the agent builds them from the DeployRun it
mirrors (core.agent.runs.FleetRow); who else is attached is part of the scene.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.agent.client import AgentClient, FleetEntry, Identity
from core.agent.crd import deployrun_name
from core.domain import GateStatus
from core.events import Event, PhaseChanged
from tui.remote import AttachApp
from tui.screens.fleet import FleetScreen
from tui.screenshots import (
    ACTOR,
    FreezingClock,
    Until,
    at_gates,
    canary_at,
    rolled_back,
    stop_for_humans,
    verifying,
)
from tui.widgets.model import DeckModel

#: what the title shows: the agent's Service inside the cluster, as `attach --agent` would name it
AGENT_URL = "https://deploydeck-agent.deploydeck-system.svc:8443"
#: (size name, terminal size)
FLEET_SHOTS = {"fleet-80x24": (80, 24), "fleet-120x40": (120, 40)}


@dataclass(frozen=True)
class Scene:
    service: str
    versions: tuple[str, str]
    scenario: str
    until: Until
    operate: bool
    attached: tuple[str, ...] = ()
    #: the replica driving it: two of the agent's Pods share the fleet
    pod: str = "deploydeck-agent-5f7c9-x2k4p"


SCENE = [
    Scene("checkout", ("1.4.2", "1.5.0"), "healthy", canary_at(25), True, ("bob", "carol")),
    Scene("payments", ("2.0.0", "2.0.1"), "bad-canary", rolled_back, True),
    Scene("search", ("3.0.4", "3.1.0"), "healthy", at_gates, False, ("dave",)),
    Scene(
        "inventory",
        ("0.9.2", "1.0.0"),
        "healthy",
        verifying(),
        True,
        ("bob",),
        "deploydeck-agent-5f7c9-q8m2t",
    ),
]


@dataclass
class _Run:
    scene: Scene
    session: Any
    model: DeckModel
    clock: FreezingClock
    task: asyncio.Task[Any] | None = None

    def row(self, now: datetime) -> FleetEntry:
        """The row as of ``now``: each engine has its own simulated clock, a fleet shares one, so the
        phase's start is placed as long before ``now`` as it is before this engine's own time."""
        rollout = self.session.rollout
        since = next((e.ts for e in reversed(rollout.events) if isinstance(e, PhaseChanged)), None)
        if since is not None:
            since = now - (self.clock.now() - since)
        plan = self.session.plan
        return FleetEntry(
            namespace=plan.targets.production.namespace,
            name=deployrun_name(plan.service, plan.version.to),
            service=plan.service,
            version_from=plan.version.from_,
            version_to=plan.version.to,
            phase=rollout.phase.value,
            weight=rollout.weight,
            phase_since=since,
            # as an in-cluster agent names itself: identity deploydeck-agent/<pod>, on host <pod>, pid 1
            lease_holder=None if rollout.outcome else f"deploydeck-agent/{self.scene.pod}@{self.scene.pod}:1",
            outcome=rollout.outcome.value if rollout.outcome else None,
            deploy_id=rollout.deploy_id,
            attached=[ACTOR, *self.scene.attached],
        )


async def _walk(run: _Run, timeout_s: float = 60.0) -> None:
    """Sign off and proceed as a release manager would, until the scene's state (time stops there)."""
    rollout = run.session.rollout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    idle = 0
    while not run.scene.until(run.model):
        if loop.time() > deadline:
            raise TimeoutError(f"{run.scene.service}: state not reached ({run.model.phase.value})")
        acted = False
        if run.scene.operate and run.model.finished is None and not run.clock.frozen:
            waiting = [g for g, v in run.model.gates.items() if v.status == GateStatus.NEEDS_SIGN_OFF]
            for gate in waiting:
                acted = (await rollout.sign_off(gate, "alice")).ok or acted
            if not waiting and run.model.window is None and rollout.allowed("proceed").ok:
                acted = (await rollout.proceed("alice")).ok
        idle = 0 if acted else idle + 1
        if idle > 3 and run.clock.waiting_for_human:
            run.clock.human_done()
        await asyncio.sleep(0.01)


@asynccontextmanager
async def fleet_scene(directory: Path) -> AsyncIterator[list[_Run]]:
    from core.session import demo_plan, open_session

    runs: list[_Run] = []
    try:
        for scene in SCENE:
            plan = demo_plan(scene.scenario)
            version = plan.version.model_copy(update={"from_": scene.versions[0], "to": scene.versions[1]})
            plan = plan.model_copy(update={"service": scene.service, "version": version})
            clock = FreezingClock()
            session = await open_session(
                plan, actor="dave", clock=clock, journal_path=directory / f"{scene.service}.jsonl"
            )
            run = _Run(scene, session, DeckModel(), clock)

            def follow(event: Event, run: _Run = run) -> None:
                run.model.apply(event)
                if run.scene.until(run.model):
                    run.clock.freeze()

            session.rollout.subscribe(follow)
            # time stands still while the engine waits for a person: the scene's instants are the same
            # every run, however long the commands below take
            stop_for_humans(SimpleNamespace(session=session, rollout=session.rollout, model=run.model))  # type: ignore[arg-type]
            runs.append(run)
            run.task = asyncio.create_task(session.rollout.run())
            await _walk(run)
        yield runs
    finally:
        for run in runs:
            run.clock.thaw()
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
            await run.session.close()


class FleetShotApp(AttachApp):
    """The attach app on the scene's rows instead of an agent's (the screen is the same code)."""

    def __init__(self, runs: list[_Run]) -> None:
        me = Identity(username=ACTOR, groups=["deploydeck:release-managers"])
        # never asked: the fleet below reads the scene's engines; the URL is only the title's
        super().__init__(AgentClient(AGENT_URL, None), me, period_s=3600)
        self.runs = runs
        self.cursor_blink = False

    async def rows(self) -> list[FleetEntry]:
        latest = max(run.clock.now() for run in self.runs)
        return [run.row(latest) for run in self.runs]

    def fleet_screen(self) -> FleetScreen:
        latest = max(run.clock.now() for run in self.runs)
        return FleetScreen(
            self.rows,
            title=f"deploydeck · {AGENT_URL} · you: {ACTOR} (deploydeck:release-managers)",
            me=ACTOR,
            now=lambda: latest,
            period_s=self.period_s,
        )

    async def on_unmount(self) -> None:
        await self.client.close()


async def take_fleet(name: str, out_dir: Path) -> Path:
    size = FLEET_SHOTS[name]
    with tempfile.TemporaryDirectory(prefix="deploydeck-fleet-") as tmp:
        async with fleet_scene(Path(tmp)) as runs:
            app = FleetShotApp(runs)
            async with app.run_test(size=size) as pilot:
                while not (isinstance(app.screen, FleetScreen) and app.screen.fetches > 0):
                    await pilot.pause(0.05)
                await pilot.pause()
                path = out_dir / f"{name}.svg"
                app.save_screenshot(filename=path.name, path=str(out_dir))
                return path
