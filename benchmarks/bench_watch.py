"""RSS over a 24-hour `deploydeck watch` at 1 Hz, run at high speed (issue 15: RSS flat).

Run: python benchmarks/bench_watch.py [--runs 3] [--hours 24] [--dashboard-hours 24]. Prints goal
beside measured. A second part runs the dashboard (120×40, headless) through the same simulated day.

Each run is a fresh interpreter: examples/minimal.yaml on the simulated world (as `watch --sim
--speed max`), analysis interval 1 s, so a day is 86,400 intervals of metrics read, judgement and
alert check. A sampler on the same virtual clock reads VmRSS at every simulated hour. Growth per
hour is (RSS at the last hour − RSS after the first hour) / (hours − 1): the first hour holds the
imports and caches that fill once. The median of the runs is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, sys, tempfile, time
from datetime import UTC, datetime
from pathlib import Path

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

async def main(hours):
    from core.clock import VirtualClock
    from core.domain import WorkloadSample
    from core.plan import load_plan
    from core.session import open_session
    from core.sim_plan import simulated
    from core.watch import Watch

    plan = simulated(load_plan(Path("examples/minimal.yaml")))
    plan = plan.model_copy(update={"analysis": plan.analysis.model_copy(update={"interval": 1.0})})
    clock = VirtualClock(datetime(2026, 11, 24, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        session = await open_session(plan, actor="bench", clock=clock, interactive=False,
                                     journal_path=Path(tmp) / "j.jsonl", sim_backend="memory")
        await session.world.production.deploy(session.plan.version.image, "stable")
        reference = WorkloadSample(requests=30000, error_rate=0.004, p99=0.18)
        samples = []
        lines = []
        watch = Watch(session.plan, session.world, duration_s=hours * 3600.0, reference=reference,
                      rollback=False, say=lines.append)

        async def sampler():
            while True:
                await clock.sleep(3600)
                samples.append(rss_mb())

        task = asyncio.ensure_future(sampler())
        t0 = time.perf_counter()
        report = await watch.run()
        wall = time.perf_counter() - t0
        task.cancel()
        await session.close()
    print("RESULT " + json.dumps({"samples": samples, "wall": wall, "intervals": report.intervals,
                                  "outcome": report.outcome, "said": len(lines)}))

asyncio.run(main(float(sys.argv[1])))
"""


DASHBOARD_CHILD = r"""
import asyncio, json, sys, tempfile, time
from datetime import timedelta
from pathlib import Path

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

async def main(hours):
    from core.domain import Phase
    from core.events import AnalysisSample, LogLine, RuleReading
    from core.session import demo_plan, open_session
    from tui.app import DeployDeckApp
    from tui.screenshots import FreezingClock, at_gates, freeze_when

    with tempfile.TemporaryDirectory() as tmp:
        clock = FreezingClock()
        session = await open_session(demo_plan("healthy"), actor="bench", clock=clock,
                                     journal_path=Path(tmp) / "j.jsonl")
        app = DeployDeckApp(session, actor="bench", start=False, cursor_blink=False)
        samples = []
        async with app.run_test(size=(120, 40)) as pilot:
            freeze_when(app, at_gates)
            app.start_rollout()
            while not at_gates(app.model):
                await pilot.pause(0.05)
            t0 = app.model.last_ts
            t_wall = time.perf_counter()
            for second in range(int(hours * 3600)):
                ts = t0 + timedelta(seconds=second + 1)
                readings = [RuleReading(rule="error_rate", value=0.02, limit=0.5, unit="pp"),
                            RuleReading(rule="p99_latency", value=1.0, limit=1.5, unit="x")]
                app._on_event(AnalysisSample(ts=ts, phase=Phase.CANARY, step=1, weight=25,
                    canary_error_rate=0.4, baseline_error_rate=0.38, canary_p99_ms=181.0,
                    baseline_p99_ms=180.0, canary_requests=300.0, baseline_requests=900.0,
                    health_ok=True, verdict="healthy", readings=readings))
                if second % 10 == 0:
                    app._on_event(LogLine(ts=ts, phase=Phase.CANARY, message=f"probe {second}"))
                if second % 60 == 59:
                    # the app paints as it does live (dirty panels; charts at most once a wall
                    # second); not refresh_now(), which also recomposes the footer every call
                    await pilot.pause()
                if second % 1800 == 1799:  # every half hour (growth is per hour below)
                    samples.append(rss_mb())
            wall = time.perf_counter() - t_wall
        clock.thaw()
        await session.close()
    print("RESULT " + json.dumps({"samples": samples, "wall": wall, "intervals": int(hours * 3600),
                                  "outcome": "dashboard", "said": 0}))

asyncio.run(main(float(sys.argv[1])))
"""


def one_run(hours: float, child: str = CHILD) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", child, str(hours)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"watch run failed: {out.stderr[-2000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--dashboard-hours", type=float, default=24.0, help="the dashboard part (0: skip it)")
    args = parser.parse_args()
    growths: list[float] = []
    rows: list[str] = []
    for i in range(args.runs):
        result = one_run(args.hours)
        samples = [float(x) for x in result["samples"]]  # type: ignore[union-attr]
        if len(samples) < 2:
            raise RuntimeError(f"too few hourly samples: {samples}")
        growth = (samples[-1] - samples[0]) / (len(samples) - 1)
        growths.append(growth)
        rows.append(
            f"  run {i + 1}: {result['intervals']} intervals in {float(result['wall']):.1f} s wall "  # type: ignore[arg-type]
            f"({result['outcome']}); RSS hour 1 {samples[0]:.1f} MB → hour {len(samples)} "
            f"{samples[-1]:.1f} MB, max {max(samples):.1f} MB; {growth * 1000:+.0f} KB/hour"
        )
    print(f"watch at 1 Hz for {args.hours:g} simulated hours, {args.runs} runs (examples/minimal.yaml --sim)")
    for row in rows:
        print(row)
    median = statistics.median(growths)
    print(
        f"{'RSS growth per simulated hour (median of runs)':<52} {median * 1000:+8.0f} KB/hour"
        f"   goal: flat (|growth| < 100 KB/hour, i.e. < 2.4 MB a day)"
    )
    if args.dashboard_hours > 0:
        # the dashboard watching the same day: its model, charts and log panels at 120×40, fed one
        # analysis sample a simulated second (a log line every 10 s), painted once a simulated minute
        result = one_run(args.dashboard_hours, DASHBOARD_CHILD)
        samples = [float(x) for x in result["samples"]]  # type: ignore[union-attr]
        # samples every half hour: growth per hour over the last half of the day, once the panels'
        # bounded buffers (2,000 chart points, 5,000 log lines) have filled
        half = len(samples) // 2
        growth = (samples[-1] - samples[half]) / max(0.5, (len(samples) - 1 - half) / 2)
        print(
            f"dashboard at 120×40, 1 Hz samples for {args.dashboard_hours:g} simulated hours "
            f"({float(result['wall']):.0f} s wall): RSS every half hour (MB): "  # type: ignore[arg-type]
            + " ".join(f"{x:.0f}" for x in samples)
        )
        print(
            f"{'dashboard RSS growth per hour, second half of the day':<52} {growth * 1000:+8.0f} KB/hour"
            f"   goal: flat (|growth| < 100 KB/hour)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
