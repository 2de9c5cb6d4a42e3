"""Canary detection on a real Prometheus: latency, false rollbacks, queries per interval.

Run: ``python benchmarks/bench_metrics.py`` (needs /usr/bin/prometheus).

Every run is a simulated workload on the real clock, scraped every 1 s by one
real Prometheus; the analysis loop reads through PrometheusMetrics every 1 s and
judges with core.analysis.judge (the engine's rule set: error delta > 0.5 pp,
p99 ratio > 1.5, minimum requests). Runs of a group go concurrently, each with
its own service label, so the whole benchmark takes about two minutes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.adapters.prometheus import PrometheusMetrics
from core.analysis import TriggerState, judge
from core.clock import SystemClock
from core.plan import AnalysisSpec, PrometheusSpec, QueriesSpec
from core.sim.scenarios import Fault, Scenario
from core.sim.workload import SimWorkload

INTERVAL_S = 1.0
WINDOW_S = 10.0  # PromQL range: enough requests at 25 % to resolve 0.5 pp
RPS = 1000.0
FAULT_AFTER_S = 14.0  # a full healthy window first
HEALTHY_INTERVALS = 20
ERROR_DELTA_PP = 0.5
INJECTED_ERROR = 0.032
BASELINE_ERROR = 0.004


@dataclass
class Run:
    name: str
    workload: SimWorkload
    metrics: PrometheusMetrics
    fired_at: datetime | None = None
    fired_rule: str = ""
    verdicts: list[str] = field(default_factory=list)


def _scenario(kind: str) -> Scenario:
    if kind == "fault":
        faults = (Fault(from_weight=25, after_s=FAULT_AFTER_S, error_rate=INJECTED_ERROR),)
        return Scenario(
            name="bench-fault",
            title="5xx at 25 %",
            expected="rolled_back",
            faults=faults,
            requests_per_second=RPS,
        )
    rps = 0.0 if kind == "no-traffic" else RPS
    return Scenario(name=f"bench-{kind}", title=kind, expected="completed", requests_per_second=rps)


def _run(name: str, kind: str, url: str, seed: int) -> Run:
    clock = SystemClock()
    workload = SimWorkload(
        _scenario(kind),
        service=name,
        namespace="bench",
        stable_version="1.0.0",
        canary_version="1.1.0",
        weight=lambda: 25,
        clock=clock,
        seed=seed,
    )
    metrics = PrometheusMetrics(
        PrometheusSpec(url=url, timeout=2, retries=0),
        service=name,
        namespace="bench",
        canary_version="1.1.0",
        baseline_version="1.0.0",
        queries=QueriesSpec(),
        min_requests=50,
        clock=clock,
    )
    return Run(name, workload, metrics)


async def _analyse(run: Run, intervals: int, stop_on_fire: bool) -> None:
    spec = AnalysisSpec(interval=INTERVAL_S, min_requests=50)
    state = TriggerState()
    for _ in range(intervals):
        read = await run.metrics.canary_metrics(WINDOW_S)
        judgement = judge(read, None, spec, state)
        run.verdicts.append(judgement.verdict)
        if judgement.verdict == "fired" and run.fired_at is None:
            run.fired_at = datetime.now(UTC)
            run.fired_rule = judgement.fired[0].rule
            if stop_on_fire:
                return
        await asyncio.sleep(INTERVAL_S)


async def _group(server: object, kinds: dict[str, int], intervals: int, stop_on_fire: bool) -> list[Run]:
    """Start count runs of each kind together (one Prometheus reload), analyse them concurrently."""
    url = server.url  # type: ignore[attr-defined]
    runs = [
        _run(f"{kind}-{i}", kind, url, seed=100 + i) for kind, count in kinds.items() for i in range(count)
    ]
    for run in runs:
        await run.workload.start()
    targets = [r.workload.target for r in runs]
    await asyncio.to_thread(server.set_targets, targets)  # type: ignore[attr-defined]
    for target in targets:
        await asyncio.to_thread(server.wait_for_up, target, 30.0)  # type: ignore[attr-defined]
    # judge only once a whole window has been scraped, as the engine's first interval would
    await asyncio.to_thread(server.wait_for_scrapes, targets[0], int(WINDOW_S) + 1, 60.0)  # type: ignore[attr-defined]
    try:
        await asyncio.gather(*(_analyse(r, intervals, stop_on_fire) for r in runs))
    finally:
        for run in runs:
            await run.workload.stop()
            await run.metrics.close()
    return runs


def _model(
    interval_s: float, window_s: float, failures_needed: int, scrape_s: float = 0.0
) -> tuple[float, float, float]:
    """(best, median, worst) seconds from fault start to rollback for an interval-polling analysis.

    The window's error ratio crosses baseline + 0.5 pp once the fault fills
    0.5 / (injected - baseline) of it; the next analysis tick then counts the
    first failure (uniform phase), and ``failures_needed - 1`` more ticks follow.
    """
    crossing = window_s * (ERROR_DELTA_PP / 100) / (INJECTED_ERROR - BASELINE_ERROR)
    fixed = crossing + (failures_needed - 1) * interval_s
    return fixed, fixed + (interval_s + scrape_s) / 2, fixed + interval_s + scrape_s


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


async def main() -> int:
    from tests.real_servers import PROMETHEUS_BIN, running_prometheus

    if not os.access(PROMETHEUS_BIN, os.X_OK):
        print(f"{PROMETHEUS_BIN} is not installed; apt-get install -y prometheus", file=sys.stderr)
        return 1
    with running_prometheus() as server:
        started = time.monotonic()
        detect = await _group(server, {"fault": 5}, intervals=60, stop_on_fire=True)
        steady = await _group(
            server, {"healthy": 20, "no-traffic": 20}, HEALTHY_INTERVALS, stop_on_fire=False
        )
        healthy = [r for r in steady if r.name.startswith("healthy")]
        quiet = [r for r in steady if r.name.startswith("no-traffic")]
        # queries per interval: one adapter, 10 intervals, counted at the HTTP level
        probe = _run("qpi", "healthy", server.url, seed=1)
        for _ in range(10):
            await probe.metrics.canary_metrics(WINDOW_S)
        per_interval = probe.metrics.round_trips / 10
        await probe.metrics.close()
        elapsed = time.monotonic() - started

    latencies: list[float] = []
    for run in detect:
        if run.fired_at and run.workload.first_fault_at:
            latencies.append((run.fired_at - run.workload.first_fault_at).total_seconds())
    missed = len(detect) - len(latencies)
    false_healthy = sum(1 for r in healthy if r.fired_at is not None)
    false_quiet = sum(1 for r in quiet if r.fired_at is not None)
    quiet_no_data = sum(v == "no_data" for r in quiet for v in r.verdicts)
    quiet_total = sum(len(r.verdicts) for r in quiet)

    print("Detection latency: fault start -> rollback decision (real Prometheus, scrape 1 s, interval 1 s)")
    print(f"{'setup':<64} {'best':>9} {'median':>9} {'worst':>9}")
    if latencies:
        print(
            f"{'deploydeck measured, ' + str(len(latencies)) + ' runs (window 10 s)':<64} "
            f"{_fmt(min(latencies)):>9} {_fmt(statistics.median(latencies)):>9} {_fmt(max(latencies)):>9}"
        )
    rows = [
        ("deploydeck model (interval 1 s, window 10 s, scrape 1 s)", _model(1, WINDOW_S, 1, 1)),
        ("Flagger defaults (interval 60 s, 1m window, threshold 1)", _model(60, 60, 1)),
        ("Flagger defaults (interval 60 s, 1m window, threshold 5)", _model(60, 60, 5)),
        ("Argo Rollouts example (interval 5m, 5m window, failureLimit 3)", _model(300, 300, 4)),
    ]
    for label, (best, median, worst) in rows:
        print(f"{label:<64} {_fmt(best):>9} {_fmt(median):>9} {_fmt(worst):>9}")
    if missed:
        print(f"  missed detections: {missed} of {len(detect)}")
    print("  (Argo: the analysis fails once failed measurements exceed failureLimit, i.e. on the 4th)")
    print()
    print("False rollbacks")
    print(f"{'runs':<64} {'rollbacks':>9} {'intervals':>9}")
    print(
        f"{'healthy canary, 25 %, ' + str(int(RPS)) + ' rps, 20 runs':<64} {false_healthy:>9} {sum(len(r.verdicts) for r in healthy):>9}"
    )
    print(f"{'no traffic (0 rps), 20 runs':<64} {false_quiet:>9} {quiet_total:>9}")
    print(f"  no-traffic intervals judged 'no data' (never healthy): {quiet_no_data} of {quiet_total}")
    print()
    print("Queries per analysis interval (requests, error ratio, p50, p95, p99 for canary + baseline)")
    print(f"{'deploydeck, batched':<64} {per_interval:>9.1f}")
    print(f"{'one query per metric per version':<64} {10:>9}")
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    return 0 if not missed and not false_healthy and not false_quiet else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
