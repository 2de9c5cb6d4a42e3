"""`deploydeck agent`: watch DeployRuns and drive them, one replica per run (its Lease).

It serves ``/healthz``, ``/readyz`` and ``/metrics``, lists and watches DeployRuns in the
namespaces given (or all), keeps ``deploydeck_runs_in_flight`` by phase, and hands every change
to the :class:`core.agent.drive.RunDriver`, which drives each unfinished run whose Lease it can
take and stands by for the others. With ``api_port`` it also serves the authenticated API
(core.agent.api) that attached clients use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from core.adapters.kubernetes.api import KubeApi
from core.agent.drive import RunDriver
from core.agent.http import AgentMetrics, Health, make_app, serve
from core.agent.runs import RunRegistry
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


def agent_identity() -> str:
    """Who drives, as the journal and the Lease say it: ``deploydeck-agent/<pod or host>``."""
    return f"deploydeck-agent/{os.environ.get('POD_NAME') or socket.gethostname()}"


class Agent:
    def __init__(
        self,
        api: KubeApi,
        namespaces: list[str] | None,
        *,
        metrics: AgentMetrics | None = None,
        driver: RunDriver | None = None,
        api_url: str | None = None,
    ) -> None:
        self.api = api
        self.metrics = metrics or AgentMetrics()
        self.api_url = api_url
        self.http_url = ""  # where /healthz, /readyz and /metrics answer, once serving
        # drives every run it can; without one (tests of the watch alone) it only watches
        self.driver = driver
        self.watchers = [
            DeployRunWatcher(api, ns, self.on_change)
            for ns in (namespaces or [None])  # type: ignore[list-item]
        ]
        self.tasks: list[asyncio.Task[None]] = []
        self._said: dict[Key, tuple[str, str]] = {}  # what was last logged per run, to log changes only
        # the plan check of each run's spec, by the spec's exact JSON: every status write the agent
        # makes comes back as a watch event, and parsing the plan again for each (~20 ms of YAML)
        # was a fifth of the agent's CPU at 50 runs
        self._checked: dict[Key, tuple[str, str]] = {}
        self.health = Health(live=self._live, ready=self._ready)

    @property
    def registry(self) -> RunRegistry:
        """Every run this replica watches (core.agent.runs), for the API server."""
        assert self.driver is not None, "an agent without a driver has no registry"
        return self.driver

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
        self._log(change)
        if self.driver is not None:
            await self.driver.on_change(change)

    def _log(self, change: RunChange) -> None:
        ns, name = change.key
        where = f"deployrun {ns}/{name}"
        if change.type == "DELETED":
            self._said.pop(change.key, None)
            self._checked.pop(change.key, None)
            log.info("%s: deleted", where)
            return
        spec = change.obj.get("spec") or {}
        phase = phase_of(change.obj)
        if finished(change.obj):
            said = f"finished: {change.obj['status']['outcome']}"
        else:
            problem = self._check(change.key, spec, where)
            version = spec.get("version") or {}
            said = (
                f"not a valid plan: {problem}"
                if problem
                else f"{spec.get('service')} {version.get('from')} → {version.get('to')}, phase {phase}"
            )
        generation = str(change.obj.get("metadata", {}).get("generation", ""))
        if self._said.get(change.key) != (generation + phase, said):
            self._said[change.key] = (generation + phase, said)
            log.info("%s: %s", where, said)

    def _check(self, key: Key, spec: dict[str, Any], where: str) -> str:
        text = json.dumps(spec, sort_keys=True, default=str)
        seen = self._checked.get(key)
        if seen is not None and seen[0] == text:
            return seen[1]
        problem = check_spec(spec, where)
        self._checked[key] = (text, problem)
        return problem

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self.tasks = [asyncio.create_task(w.run(), name=f"watch {w.namespace or '*'}") for w in self.watchers]

    async def stop(self) -> None:
        # the runs first: each stops where it stands and hands its lease back, so a standby
        # replica takes it at once instead of waiting out the TTL
        if self.driver is not None:
            await self.driver.stop()
        # cancel until done: on Python 3.11 asyncio.wait_for (inside KubeApi.request) can swallow a
        # cancellation that lands as the inner call completes, and the loop would then go on
        # watching for minutes while SIGTERM waits (seen as a Pod that will not stop)
        for task in self.tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()


async def run_agent(
    api: KubeApi,
    namespaces: list[str] | None,
    host: str,
    port: int,
    *,
    drive: dict[str, Any] | None = None,
    api_host: str = "127.0.0.1",
    api_port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    api_url: str | None = None,
    ready: asyncio.Future[Agent] | None = None,
) -> None:
    """Serve the endpoints, watch and drive until cancelled (Ctrl-C, SIGTERM).

    ``drive``: RunDriver keyword arguments (identity, kubeconfig, context, journal, journal_path);
    ``api_port``: also serve the authenticated API (core.agent.api) there; ``api_url``: the URL the
    other replicas reach it at (default: from the bound address, $POD_IP in a Pod)."""
    metrics = AgentMetrics()
    options = dict(drive or {})
    options.setdefault("identity", agent_identity())
    driver = RunDriver(api, metrics=metrics, **options)
    agent = Agent(api, namespaces, metrics=metrics, driver=driver)
    runner, bound = await serve(make_app(agent.health, agent.metrics), host, port)
    agent.http_url = f"http://{_host_in_url(host)}:{bound}"
    api_runner: Any = None
    try:
        if api_port is not None:
            api_runner, api_bound = await _serve_api(agent, api_host, api_port, tls)
            scheme = "https" if tls else "http"
            shown = os.environ.get("POD_IP") or api_host
            agent.api_url = driver.api_url = api_url or f"{scheme}://{_host_in_url(shown)}:{api_bound}"
        log.info(
            "agent %s: health and metrics on http://%s:%d%s; driving DeployRuns in %s",
            driver.identity,
            host,
            bound,
            f"; API at {agent.api_url}" if agent.api_url else "",
            ", ".join(namespaces) if namespaces else "all namespaces",
        )
        agent.start()
        if ready is not None and not ready.done():
            ready.set_result(agent)
        await asyncio.Event().wait()
    finally:
        log.info("agent: stopping")
        await agent.stop()
        log.info("agent: runs and watchers stopped")
        if api_runner is not None:
            with contextlib.suppress(Exception):
                await api_runner.cleanup()
        await runner.cleanup()
        log.info("agent: http stopped")
        await api.close()
        log.info("agent: stopped")


async def _serve_api(agent: Agent, host: str, port: int, tls: tuple[Path, Path] | None) -> tuple[Any, int]:
    """B's API server (core.agent.api.serve_api): returns (something with cleanup(), bound port)."""
    from core.agent.api import serve_api

    cert, key = tls if tls is not None else (None, None)
    return await serve_api(agent, host, port, cert, key)


def _host_in_url(host: str) -> str:
    if host in {"0.0.0.0", "::", ""}:
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host
