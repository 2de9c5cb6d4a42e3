"""`deploydeck status [PLAN]`: unfinished deploys, their holder, and whether the lease is live.

Exit codes: 0 nothing unfinished; 4 an unfinished deploy exists (live or zombie); 2 bad input;
1 the cluster could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_UNFINISHED = 0, 1, 2, 4


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = subparsers.add_parser(
        "status",
        help="unfinished deploys, who holds them, and whether the lease is live or expired (zombie)",
        description="With PLAN: the deploy the plan's cluster records (its persisted progress and "
        "its Lease). Without: the unfinished deploys in the journal. A zombie is an unfinished "
        "deploy nobody holds a live lease on: `deploydeck run PLAN` resumes it. "
        "Exit 0 nothing unfinished, 4 something is, 1 the cluster could not be read.",
    )
    status.add_argument("plan", type=Path, metavar="PLAN", nargs="?")
    status.add_argument("--journal", type=Path, default=None, help="journal file (default: state dir)")
    status.add_argument("--json", action="store_true", help="one JSON object per deploy")
    status.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    from core.adapters.journal import default_journal_path
    from core.rollout.inspect import journal_reports

    if args.plan is None:
        reports = journal_reports(args.journal or default_journal_path())
        _print(reports, args.json, "in the journal (give PLAN to see the lease)")
        return EXIT_UNFINISHED if reports else EXIT_OK
    from tui.cli import load_plan_or_say

    plan = load_plan_or_say(args.plan)
    if plan is None:
        return EXIT_BAD_INPUT
    if plan.is_sim:
        print(
            f"{args.plan}: a simulated plan keeps its cluster in the running process; "
            "nothing persists for status to read"
        )
        return EXIT_OK
    return asyncio.run(_cluster_status(plan, args))


async def _cluster_status(plan: Any, args: argparse.Namespace) -> int:
    from core.clock import SystemClock
    from core.ports import PortError
    from core.rollout.inspect import cluster_report

    try:
        report = await cluster_report(plan, SystemClock())
    except PortError as exc:
        print(f"deploydeck status: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    if report is None:
        _print([], args.json, f"for {plan.service} in {plan.targets.production.namespace}")
        return EXIT_OK
    if report.finished:
        _print([], args.json, f"for {plan.service} (last deploy {report.deploy_id}: {report.outcome})")
        return EXIT_OK
    _print([report], args.json, "")
    return EXIT_UNFINISHED


def _print(reports: list[Any], as_json: bool, where: str) -> None:
    if as_json:
        for report in reports:
            print(json.dumps(report.model_dump(mode="json"), separators=(",", ":")))
        return
    if not reports:
        print(f"no unfinished deploy {where}".rstrip())
        return
    for r in reports:
        step = f" step {r.step_index}" if r.step_index is not None else ""
        window = f", window '{r.window}'" if r.window else ""
        print(
            f"{r.deploy_id}  {r.service} {r.version}  {r.phase}{step} at {r.weight} %{window}  "
            f"last {r.updated_at:%Y-%m-%d %H:%M:%S} UTC by {r.driver or '?'}"
        )
        if r.lease != "unknown":
            who = r.holder or "nobody"
            state = "ZOMBIE: nobody is driving it" if r.zombie else "driven"
            print(f"    lease {r.lease} (holder {who}); {state}" + (f"; {r.note}" if r.note else ""))
            if r.zombie:
                print(f"    resume: deploydeck run {r.plan_path or 'PLAN'}")
        elif r.note:
            print(f"    {r.note}")
    if where:
        print(f"({len(reports)} unfinished {where})")
