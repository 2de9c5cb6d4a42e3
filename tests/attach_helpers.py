"""A fleet for the attach tests: real engines behind the agent's real API (core.agent.api) on loopback,
authenticated and authorized by the simulated API server (TokenReview, SubjectAccessReview against
deploy/rbac-users.yaml's Roles), positioned by release managers through that same API.

Each run is a real Rollout on the simulated world with a FreezingClock: driven (sign-offs and
proceeds POSTed as alice) until the wanted state, where simulated time stops, so the fleet stands
still while a test looks at it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.agent.client import AgentClient
from core.domain import GateStatus
from core.events import Event
from core.session import Session, demo_plan, open_session
from tests.agent_api_helpers import TOKENS, Replica, View, start_cluster, start_replica
from tui.screenshots import FreezingClock, Until, at_gates, canary_at, rolled_back
from tui.widgets.model import DeckModel

NS = "shop"


@dataclass
class Run:
    name: str
    session: Session
    model: DeckModel
    clock: FreezingClock
    task: asyncio.Task[Any] | None = None


@dataclass
class Fleet:
    cluster: Any
    replica: Replica
    runs: dict[str, Run] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.replica.url

    def client(self, user: str, **kwargs: Any) -> AgentClient:
        return AgentClient(self.url, TOKENS[user], **kwargs)

    def kubeconfig(self, directory: Path, user: str) -> Path:
        """A person's kubeconfig for the simulated API server (what `attach --context` reads)."""
        path = directory / f"kubeconfig-{user}.yaml"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": {"server": self.cluster.url}}],
            "users": [{"name": user, "user": {"token": TOKENS[user]}}],
            "contexts": [{"name": user, "context": {"cluster": "sim", "user": user, "namespace": NS}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


async def _position(fleet: Fleet, run: Run, until: Until, *, operate: bool, timeout_s: float = 60.0) -> None:
    """Sign off and proceed as alice, through the agent, until `until` holds (time then stops)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    rollout = run.session.rollout
    idle = 0
    async with fleet.client("alice") as alice:
        while not until(run.model):
            if loop.time() > deadline:
                raise TimeoutError(f"{run.name}: not reached; phase {run.model.phase.value}")
            acted = False
            if operate and run.model.finished is None and not run.clock.frozen:
                waiting = [
                    v.result.gate_id
                    for v in run.model.gates.values()
                    if v.status == GateStatus.NEEDS_SIGN_OFF
                ]
                for gate in waiting:
                    acted = (
                        await alice.command(NS, run.name, "signoff", {"gate": gate, "note": ""})
                    ).ok or acted
                if not waiting and run.model.window is None and rollout.allowed("proceed").ok:
                    acted = (await alice.command(NS, run.name, "proceed")).ok
            idle = 0 if acted else idle + 1
            if idle > 3 and run.clock.waiting_for_human:
                run.clock.human_done()
            await asyncio.sleep(0.02)


def _follow(run: Run, until: Until) -> None:
    clock = run.clock

    def check(event: Event) -> None:
        run.model.apply(event)
        if until(run.model):
            clock.freeze()

    run.session.rollout.subscribe(check)


async def _start_run(tmp: Path, name: str, scenario: str, service: str, until: Until) -> Run:
    clock = FreezingClock()
    plan = demo_plan(scenario)
    if service != plan.service:
        plan = plan.model_copy(update={"service": service})
    session = await open_session(plan, actor="dave", clock=clock, journal_path=tmp / f"{name}.jsonl")
    run = Run(name, session, DeckModel(), clock)
    _follow(run, until)
    return run


# (name, scenario, service, state to stop at, whether alice operates it)
DEFAULT_RUNS: list[tuple[str, str, str, Until, bool]] = [
    ("checkout-1-5-0", "healthy", "checkout", canary_at(25), True),
    ("payments-2-0-1", "bad-canary", "payments", rolled_back, True),
    ("search-3-1-0", "healthy", "search", at_gates, False),
]


@asynccontextmanager
async def agent_fleet(
    tmp: Path, runs: list[tuple[str, str, str, Until, bool]] | None = None
) -> AsyncIterator[Fleet]:
    cluster = await start_cluster()
    started: list[Run] = []
    replica: Replica | None = None
    try:
        for name, scenario, service, until, _ in runs or DEFAULT_RUNS:
            started.append(await _start_run(tmp, name, scenario, service, until))
        replica = await start_replica(cluster.url, [View((NS, r.name), r.session.rollout) for r in started])
        fleet = Fleet(cluster, replica, {r.name: r for r in started})
        for run, (_, _, _, until, operate) in zip(started, runs or DEFAULT_RUNS, strict=True):
            run.task = asyncio.create_task(run.session.rollout.run())
            await _position(fleet, run, until, operate=operate)
        yield fleet
    finally:
        for run in started:
            run.clock.thaw()
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
            await run.session.close()
        if replica is not None:
            await replica.close()
        await cluster.stop()


def samples(model: DeckModel) -> int:
    """Canary analysis samples the model holds (what the charts draw)."""
    return len([p for p in model.errors if p.canary is not None])


Check = Callable[[DeckModel], bool]
