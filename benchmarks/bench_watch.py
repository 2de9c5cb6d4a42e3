"""RSS over a 24-hour `deploydeck watch` at 1 Hz, run at high speed (issue 15: RSS flat).

Run: python benchmarks/bench_watch.py [--runs 3] [--hours 24]. Prints goal beside measured.

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


def one_run(hours: float) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(hours)],
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
