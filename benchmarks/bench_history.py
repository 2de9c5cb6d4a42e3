"""History benchmarks: `log`, `log dora` and `log show ID` on a 10,000-deploy journal (issue 15).

Run: python benchmarks/bench_history.py [--deploys N] [--full] [--runs R]. Prints goal beside measured.

The journal is made from two real demo deploys (bad-canary and healthy, run headless), copied with
new ids and start times spread over the last 28 days. By default each copy keeps its summary-bearing
lines and 20 analysis samples (~40 lines); --full keeps every line (~144 lines, ~115 KB a deploy:
10,000 deploys is a 1.1 GB journal). Each command is a fresh process, as a person runs it; wall time
and peak RSS are the medians of R runs, with the index already built (the first `log` builds it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S, GOAL_MB = 0.3, 100.0
KEEP = {
    "deploy_started",
    "gate_signed_off",
    "traffic_changed",
    "rollback_triggered",
    "phase_changed",
    "finished",
}


def _demo_deploys(tmp: Path) -> list[list[dict]]:
    journal = tmp / "templates.jsonl"
    for scenario in ("bad-canary", "healthy"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tui.cli",
                "demo",
                "--headless",
                "--scenario",
                scenario,
                "--journal",
                str(journal),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DEPLOYDECK_STATE_DIR": str(tmp)},
            capture_output=True,
            check=False,
        )
    by_id: dict[str, list[dict]] = {}
    for line in journal.read_text().splitlines():
        record = json.loads(line)
        by_id.setdefault(record["deploy_id"], []).append(record)
    return list(by_id.values())


def make_journal(path: Path, deploys: int, *, full: bool, tmp: Path) -> None:
    templates = _demo_deploys(tmp)
    now = datetime.now(UTC)
    step = timedelta(days=27) / deploys
    with path.open("w", encoding="utf-8") as out:
        for i in range(deploys):
            template = templates[i % len(templates)]
            t0 = datetime.fromisoformat(template[0]["ts"].replace("Z", "+00:00"))
            start = now - timedelta(days=27) + i * step
            samples = 0
            for record in template:
                if not full and record["type"] not in KEEP:
                    samples += 1
                    if samples > 20:
                        continue
                ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
                copy = dict(
                    record, deploy_id=f"{i:012x}", ts=(start + (ts - t0)).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
                out.write(json.dumps(copy, separators=(",", ":")) + "\n")


def measure(args: list[str], journal: Path, runs: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of `deploydeck log ARGS --journal JOURNAL` over `runs` fresh
    processes, and its peak RSS (MB) measured in one more. CPU time (user + system) is what the
    command costs; wall time on a loaded machine adds the wait for a core."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "tui.cli", "log", *args, "--journal", str(journal)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"log {' '.join(args)} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(times), statistics.median(cpu), _peak_rss_mb(args, journal)


def _peak_rss_mb(args: list[str], journal: Path) -> float:
    code = (
        "import contextlib, io, resource, sys\n"
        "from tui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "log", *args, "--journal", str(journal)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=10_000)
    parser.add_argument("--full", action="store_true", help="every line of each deploy (1.1 GB at 10,000)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deploydeck-bench-history-") as tmp_dir:
        tmp = Path(tmp_dir)
        journal = tmp / "deployments.jsonl"
        make_journal(journal, args.deploys, full=args.full, tmp=tmp)
        size_mb = journal.stat().st_size / 1e6
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tui.cli", "log", "--journal", str(journal)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        build_s = time.perf_counter() - started
        index_mb = (journal.with_name(journal.name + ".index")).stat().st_size / 1e6
        last = f"{args.deploys - 1:012x}"
        print(
            f"history: {args.deploys} deploys, journal {size_mb:.0f} MB ({'full' if args.full else 'compact'} "
            f"deploys), index {index_mb:.1f} MB built in {build_s:.1f} s (once; then appended to)"
        )
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} cores; medians of {args.runs} runs")
        print(f"{'command':<14} {'goal':>16}  {'wall':>8} {'cpu':>8} {'peak RSS':>9}  ok")
        for label, cmd in (("log", []), ("log dora", ["dora"]), ("log show ID", ["show", last])):
            wall, cpu, rss = measure(cmd, journal, args.runs)
            ok = wall <= GOAL_S and rss <= GOAL_MB
            goal = f"≤{GOAL_S} s ≤{GOAL_MB:.0f} MB"
            verdict = "✔" if ok else ("✘ (wall; cpu ✔)" if cpu <= GOAL_S and rss <= GOAL_MB else "✘")
            print(f"{label:<14} {goal:>16}  {wall:>6.3f} s {cpu:>6.3f} s {rss:>6.0f} MB  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
