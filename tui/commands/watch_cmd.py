"""`deploydeck watch PLAN`: the 24-hour hand-off after a completed deploy (plain text)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT, EXIT_ROLLED_BACK, EXIT_NOTIFIED = 0, 2, 3, 6


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    watch = subparsers.add_parser(
        "watch",
        help="after a completed deploy: keep triggers and alerts armed, notify (default 24 h)",
        description="Judge the live service against the baseline measured during the deploy's canary. "
        "Exit 0 quiet, 3 rolled back (--rollback), 6 a trigger or new alert was notified.",
    )
    watch.add_argument("plan", type=Path, metavar="PLAN")
    watch.add_argument(
        "--for", dest="duration", default=None, help="how long (default: the plan's completion.watch)"
    )
    watch.add_argument(
        "--rollback", action="store_true", help="roll back when a trigger fires (default: notify)"
    )
    watch.add_argument("--journal", type=Path, default=None)
    watch.add_argument(
        "--sim",
        action="store_true",
        help="against the simulated world (a dry run of the hand-off after `run PLAN --sim`)",
    )
    watch.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="simulated world only: simulated seconds per second, or 'max' (virtual time)",
    )
    watch.set_defaults(func=run_watch)


def _speed(text: str) -> float:
    from tui.cli import _speed as speed

    return speed(text)


def run_watch(args: argparse.Namespace) -> int:
    from core.durations import parse_duration
    from tui.cli import load_plan_or_say

    plan = load_plan_or_say(args.plan)
    if plan is None:
        return EXIT_BAD_INPUT
    if args.sim:
        from core.sim_plan import simulated

        plan = simulated(plan)
    if args.speed is not None and not plan.is_sim:
        print("deploydeck watch: --speed works only on the simulated world (--sim)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        duration = parse_duration(args.duration) if args.duration else plan.completion.watch
    except ValueError as exc:
        print(f"deploydeck watch: --for: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_watch(args, plan, duration))


async def _watch(args: argparse.Namespace, plan: object, duration: float) -> int:
    from core.adapters.journal import default_journal_path, read_journal
    from core.clock import ScaledClock, SystemClock, VirtualClock
    from core.history import group_by_deploy
    from core.history_index import simulated_journal_path
    from core.session import open_session
    from core.watch import Watch, last_completed, reference_baseline

    journal = args.journal or (simulated_journal_path() if plan.is_sim else default_journal_path())  # type: ignore[attr-defined]
    deploy = last_completed(group_by_deploy(read_journal(journal).events), plan.service)  # type: ignore[attr-defined]
    if deploy is None:
        print(
            f"deploydeck watch: no completed deploy of {plan.service} in {journal}; nothing to compare against",  # type: ignore[attr-defined]
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    reference = reference_baseline(deploy)
    if reference is None:
        print(
            "deploydeck watch: the last deploy has no healthy canary samples to use as a baseline",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    clock: object = ScaledClock(args.speed) if args.speed else SystemClock()
    if args.speed == 0.0:  # max: virtual time, as fast as the machine goes
        clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    session = await open_session(
        plan,
        actor="watch",
        clock=clock,
        interactive=False,
        journal_path=journal,  # type: ignore[arg-type]
        sim_backend="memory",
    )
    try:
        if session.plan.is_sim:
            # the simulated world starts on the old version: put it where the completed deploy left it
            await session.world.production.deploy(session.plan.version.image, "stable")

        def say(text: str) -> None:
            print(f"{datetime.now().strftime('%H:%M:%S')}  {text}", flush=True)

        report = await Watch(
            session.plan,
            session.world,
            duration_s=duration,
            reference=reference,
            rollback=args.rollback,
            say=say,
        ).run()
    finally:
        await session.close()
    return {"quiet": EXIT_OK, "rolled_back": EXIT_ROLLED_BACK}.get(report.outcome, EXIT_NOTIFIED)
