"""The simulated metrics API: Prometheus's HTTP query API over the workloads' own samples.

`sim serve` uses it when no Prometheus is installed. Every second it "scrapes" each
workload's registry in-process (an outage scenario's ``/metrics`` answering 503 is a failed
scrape here too: ``up`` 0 and no samples), and it answers ``/api/v1/query`` and
``/api/v1/query_range`` with :mod:`core.sim.promql`, so the real Prometheus adapter reads
it unchanged. A query outside the supported subset gets Prometheus's own 400 ``bad_data``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from aiohttp import web

from core.sim.promql import PromQLError, SeriesStore, Value, evaluate

SCRAPE_INTERVAL_S = 1.0


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(pairs)


class SimPrometheus:
    def __init__(self, workloads: list[Any], *, interval_s: float = SCRAPE_INTERVAL_S) -> None:
        self.workloads = workloads
        self.interval_s = interval_s
        self.store = SeriesStore()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        app = web.Application()
        for path in ("/api/v1/query", "/api/v1/query_range"):
            app.router.add_route("GET", path, self._query)
            app.router.add_route("POST", path, self._query)
        app.router.add_get("/-/ready", self._ready)
        app.router.add_get("/api/v1/status/buildinfo", self._buildinfo)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.scrape()
        self._task = asyncio.create_task(self._scrape_loop(), name="sim-prometheus-scrape")
        return self.url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _scrape_loop(self) -> None:
        while True:
            # the wall clock, as Prometheus: query windows are wall seconds
            await asyncio.sleep(self.interval_s)
            self.scrape()

    def scrape(self, at: float | None = None) -> None:
        now = time.time() if at is None else at
        for workload in self.workloads:
            target = {"job": "workload", "instance": workload.target}
            down = workload.metrics_down()
            self.store.add({"__name__": "up", **target}, now, 0.0 if down else 1.0)
            if down:
                continue
            for metric in workload.registry.collect():
                for sample in metric.samples:
                    self.store.add(
                        {"__name__": sample.name, **sample.labels, **target}, now, float(sample.value)
                    )

    # --- HTTP ---------------------------------------------------------------------

    async def _query(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        query = params.get("query", "")
        try:
            if request.path.endswith("query_range"):
                data = self._range(query, float(params["start"]), float(params["end"]), float(params["step"]))
            else:
                at = float(params["time"]) if params.get("time") else time.time()
                data = self._instant(evaluate(query, self.store, at), at)
        except (PromQLError, KeyError, ValueError) as exc:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": str(exc)}, status=400
            )
        return web.json_response({"status": "success", "data": data})

    @staticmethod
    def _instant(value: Value, at: float) -> dict[str, Any]:
        if isinstance(value, float):
            return {"resultType": "scalar", "result": [at, _number(value)]}
        if not isinstance(value, list):
            raise PromQLError("a range vector cannot be the result of an instant query")
        return {
            "resultType": "vector",
            "result": [{"metric": _labels(k), "value": [at, _number(v)]} for k, v in value],
        }

    def _range(self, query: str, start: float, end: float, step: float) -> dict[str, Any]:
        if step <= 0 or (end - start) / step > 11_000:
            raise PromQLError("exceeded maximum resolution of 11,000 points per timeseries")
        series: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
        at = start
        while at <= end:
            value = evaluate(query, self.store, at)
            samples = [((), value)] if isinstance(value, float) else value
            if not isinstance(samples, list):
                raise PromQLError("a range vector cannot be the result of a range query")
            for labels, v in samples:
                series.setdefault(labels, []).append([at, _number(v)])
            at += step
        return {
            "resultType": "matrix",
            "result": [{"metric": _labels(k), "values": v} for k, v in series.items()],
        }

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def _buildinfo(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "success", "data": {"version": "deploydeck-sim", "branch": "sim"}}
        )
