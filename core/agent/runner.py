"""`deploydeck agent` as it is today: watch DeployRuns, validate them, say what it would drive.

It serves ``/healthz``, ``/readyz`` and ``/metrics``, lists and watches DeployRuns in the
namespaces given (or all), checks each spec with the plan loader, keeps ``deploydeck_runs_in_flight``
by phase, and logs one line per change: what it *would* drive. It does not drive anything yet:
taking a run over from another replica mid-canary needs the resume machinery (persisted progress,
lease fencing), which is being built; an agent that drove runs without it could repeat or skip a
traffic change after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from typing import Any

import yaml

from core.adapters.kubernetes.api import KubeApi
from core.agent.http import AgentMetrics, Health, make_app, serve
from core.agent.watch import DeployRunWatcher, Key, RunChange, finished, phase_of

log = logging.getLogger("deploydeck.agent")


def check_spec(spec: dict[str, Any], where: str, env: dict[str, str] | None = None) -> str:
    """ "" when the spec is a plan the engine could run; else the loader's problems, one line each."""
    from core.plan import PlanError, parse_plan

    try:
        parse_plan(yaml.safe_dump(spec, sort_keys=False), where, env=dict(os.environ) if env is None else env)
    except PlanError as exc:
        return "; ".join(exc.problems)
    return ""


class Agent:
    def __init__(
        self, api: KubeApi, namespaces: list[str] | None, *, metrics: AgentMetrics | None = None
    ) -> None:
        self.api = api
        self.metrics = metrics or AgentMetrics()
        self.watchers = [
            DeployRunWatcher(api, ns, self.on_change)
            for ns in (namespaces or [None])  # type: ignore[list-item]
        ]
        self.tasks: list[asyncio.Task[None]] = []
        self._said: dict[Key, tuple[str, str]] = {}  # what was last logged per run, to log changes only
        self.health = Health(live=self._live, ready=self._ready)

    # --- what the probes see ----------------------------------------------------------

    def _live(self) -> str:
        for task in self.tasks:
            if task.done():
                error = task.exception() if not task.cancelled() else None
                return f"watch loop ended: {error or 'cancelled'}"
        return ""

    def _ready(self) -> str:
        waiting = [w for w in self.watchers if not w.synced]
        if not waiting:
            return ""
        return "; ".join(
            f"{w.namespace or 'all namespaces'}: {w.last_error or 'not listed yet'}" for w in waiting
        )

    # --- what it does with a change -----------------------------------------------------

    def runs(self) -> dict[Key, dict[str, Any]]:
        out: dict[Key, dict[str, Any]] = {}
        for watcher in self.watchers:
            out.update(watcher.runs)
        return out

    async def on_change(self, change: RunChange) -> None:
        self.metrics.watch_events.labels(type=change.type).inc()
        counts = Counter(phase_of(obj) for obj in self.runs().values() if not finished(obj))
        self.metrics.set_in_flight(dict(counts))
        ns, name = change.key
        where = f"deployrun {ns}/{name}"
        if change.type == "DELETED":
            self._said.pop(change.key, None)
            log.info("%s: deleted", where)
            return
        spec = change.obj.get("spec") or {}
        phase = phase_of(change.obj)
        if finished(change.obj):
            said = f"finished: {change.obj['status']['outcome']}; nothing to drive"
        else:
            problem = check_spec(spec, where)
            version = spec.get("version") or {}
            said = (
                f"not a valid plan, would refuse it: {problem}"
                if problem
                else f"{spec.get('service')} {version.get('from')} → {version.get('to')}, phase {phase}: "
                "would drive it (not yet: driving needs the resume machinery)"
            )
        generation = str(change.obj.get("metadata", {}).get("generation", ""))
        if self._said.get(change.key) != (generation + phase, said):
            self._said[change.key] = (generation + phase, said)
            log.info("%s: %s", where, said)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self.tasks = [asyncio.create_task(w.run(), name=f"watch {w.namespace or '*'}") for w in self.watchers]

    async def stop(self) -> None:
        # cancel until done: on Python 3.11 asyncio.wait_for (inside KubeApi.request) can swallow a
        # cancellation that lands as the inner call completes, and the loop would then go on
        # watching for minutes while SIGTERM waits (seen as a Pod that will not stop)
        for task in self.tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()


async def run_agent(api: KubeApi, namespaces: list[str] | None, host: str, port: int) -> None:
    """Serve the endpoints and watch until cancelled (Ctrl-C, SIGTERM)."""
    agent = Agent(api, namespaces)
    runner, bound = await serve(make_app(agent.health, agent.metrics), host, port)
    log.info(
        "agent: health and metrics on http://%s:%d; watching DeployRuns in %s; driving them is not built yet",
        host,
        bound,
        ", ".join(namespaces) if namespaces else "all namespaces",
    )
    agent.start()
    try:
        await asyncio.Event().wait()
    finally:
        log.info("agent: stopping")
        await agent.stop()
        log.info("agent: watchers stopped")
        await runner.cleanup()
        log.info("agent: http stopped")
        await api.close()
        log.info("agent: stopped")
