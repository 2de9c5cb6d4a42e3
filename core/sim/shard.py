"""Simulated workloads in worker processes: a world too big for one event loop, sharded.

One Python process serving a few hundred simulated workloads (their traffic, health endpoints and
``/metrics``) and the metrics API over all of them wakes up seconds late, and whatever measures a
client against it measures the world instead. :class:`WorkloadShards` spreads the workloads over
``n`` worker processes; each runs its share of :class:`~core.sim.workload.SimWorkload` and a
:class:`~core.sim.sim_prometheus.SimPrometheus` over just those (so a query about a service goes
to the process that has its samples). The canary weight each workload serves stays the parent's
to say (it holds the simulated API server): it pushes changes down a pipe, as the Service's
endpoints follow the Pods' readiness in a cluster, a fraction of a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

#: how often the parent looks for weight changes to push (wall seconds)
PUSH_EVERY_S = 0.2


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload: what :class:`SimWorkload` is built from, picklable."""

    namespace: str
    service: str
    scenario: str
    wall_rps: float
    seed: int
    stable_version: str
    canary_version: str
    tick_s: float
    speed: float


async def _serve(conn: Connection, specs: list[WorkloadSpec], weights: dict[tuple[str, str], int]) -> None:
    from core.clock import ScaledClock
    from core.sim.environment import scaled
    from core.sim.scenarios import get_scenario
    from core.sim.sim_prometheus import SimPrometheus
    from core.sim.workload import SimWorkload

    clocks: dict[float, ScaledClock] = {}
    workloads: list[SimWorkload] = []
    for spec in specs:
        key = (spec.namespace, spec.service)
        workload = SimWorkload(
            scaled(get_scenario(spec.scenario), spec.wall_rps, spec.speed),
            service=spec.service,
            namespace=spec.namespace,
            stable_version=spec.stable_version,
            canary_version=spec.canary_version,
            weight=lambda key=key: weights.get(key, 0),  # type: ignore[misc]
            clock=clocks.setdefault(spec.speed, ScaledClock(spec.speed)),
            seed=spec.seed,
            tick_s=spec.tick_s,
        )
        await workload.start()
        workloads.append(workload)
    prometheus = SimPrometheus(workloads)
    url = await prometheus.start()
    conn.send({"prometheus": url, "urls": {(w.namespace, w.service): w.base_url for w in workloads}})
    lags: list[float] = []
    watch = asyncio.create_task(_loop_lag(lags), name="shard-loop-lag")
    try:
        while (changes := await asyncio.to_thread(conn.recv)) is not None:
            weights.update(changes)
    finally:
        watch.cancel()
        await prometheus.stop()
        for workload in workloads:
            await workload.stop()
    conn.send({"lags": lags})  # asked for by stop(): how late this shard's loop woke


async def _loop_lag(lags: list[float], period_s: float = 0.1) -> None:
    """How late this process's event loop wakes up (its workloads and metrics API answer from it)."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period_s)
        lags.append(loop.time() - before - period_s)


def _worker(conn: Connection, specs: list[WorkloadSpec], weights: dict[tuple[str, str], int]) -> None:
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        asyncio.run(_serve(conn, specs, weights))


class WorkloadShards:
    """``specs`` over ``n`` processes, by service (round robin: a service's workloads in every
    namespace share a process, so one metrics API has all of its samples); ``share(namespace,
    service)`` says each one's canary weight, asked every :data:`PUSH_EVERY_S` in this process."""

    def __init__(
        self,
        specs: list[WorkloadSpec],
        n: int,
        share: Callable[[str, str], int],
        *,
        push_every_s: float = PUSH_EVERY_S,
    ) -> None:
        self.specs, self.n, self.share, self.push_every_s = specs, max(1, n), share, push_every_s
        #: (namespace, service) -> the workload's base URL; and its shard's metrics API
        self.urls: dict[tuple[str, str], str] = {}
        self.prometheus: dict[tuple[str, str], str] = {}
        self.pids: list[int] = []
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._owner: dict[tuple[str, str], int] = {}
        self._sent: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        #: every shard's event-loop lag samples (seconds), filled by stop()
        self.lags: list[float] = []

    async def start(self) -> None:
        # spawn, not fork: this process already runs an event loop and servers
        context = multiprocessing.get_context("spawn")
        services = list(dict.fromkeys(s.service for s in self.specs))
        shard_of = {service: i % self.n for i, service in enumerate(services)}
        groups: list[list[WorkloadSpec]] = [[] for _ in range(self.n)]
        for spec in self.specs:
            groups[shard_of[spec.service]].append(spec)
        for group in groups:
            if not group:
                continue
            weights = {(s.namespace, s.service): self.share(s.namespace, s.service) for s in group}
            self._sent.update(weights)
            here, there = context.Pipe()
            proc = context.Process(target=_worker, args=(there, group, weights), daemon=True)
            proc.start()
            there.close()
            self._procs.append(proc)
            self._conns.append(here)
            self.pids.append(proc.pid)
            for spec in group:
                self._owner[(spec.namespace, spec.service)] = len(self._conns) - 1
        for conn in self._conns:
            ready = await asyncio.to_thread(conn.recv)
            self.urls.update(ready["urls"])
            for key in ready["urls"]:
                self.prometheus[key] = ready["prometheus"]
        self._task = asyncio.create_task(self._push(), name="shard-weights")

    async def _push(self) -> None:
        while True:
            await asyncio.sleep(self.push_every_s)
            self.push()

    def push(self) -> None:
        """Send every weight that changed since the last push to the shard serving it."""
        changes: list[dict[tuple[str, str], int]] = [{} for _ in self._conns]
        for key, shard in self._owner.items():
            weight = self.share(*key)
            if self._sent.get(key) != weight:
                self._sent[key] = weight
                changes[shard][key] = weight
        for conn, change in zip(self._conns, changes, strict=True):
            if change:
                conn.send(change)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in self._conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(None)
        for conn in self._conns:
            with contextlib.suppress(OSError, EOFError):
                if await asyncio.to_thread(conn.poll, 10):
                    self.lags.extend(conn.recv().get("lags", []))
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
        for conn in self._conns:
            conn.close()
