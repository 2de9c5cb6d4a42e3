"""`deploydeck`: the command line. Starts the dashboard or the headless runner.

Exit codes (DESIGN.md): 0 completed, 2 bad input, 3 rolled back, 4 blocked at a gate,
5 aborted by a person, 1 internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--headless", action="store_true", help="no dashboard: print progress (or JSON with --json)"
    )
    p.add_argument("--json", action="store_true", help="with --headless: one JSON event per line")
    p.add_argument("--as", dest="actor", metavar="NAME", help="who is driving (default: $USER)")
    p.add_argument(
        "--journal", type=Path, metavar="PATH", help="deployment log file (default: per-user state dir)"
    )
    p.add_argument(
        "--decision",
        choices=["rollback", "fix_forward"],
        default="rollback",
        help="headless: what to do when verification fails (default: rollback, POL-010)",
    )
    p.add_argument(
        "--read-only", action="store_true", help="dashboard: watch only; no proceed, sign-off or abort"
    )
    p.add_argument("--allow-rollback", action="store_true", help="with --read-only: keep the rollback key")


def build_parser() -> argparse.ArgumentParser:
    from tui.commands import log_cmd, watch_cmd

    parser = argparse.ArgumentParser(
        prog="deploydeck",
        description="Walk one Kubernetes deploy through gates, staging, a progressive canary, "
        "verification and rollback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the built-in plan on the simulated world",
        description="Open the dashboard "
        "(or the headless runner) on the embedded simulated cluster; no Kubernetes or Prometheus needed.",
    )
    demo.add_argument(
        "--scenario",
        default="healthy",
        help="healthy, bad-canary, slow-canary, flaky-health, metrics-outage, late-regression",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        help="simulated seconds per real second (dashboard "
        "default 30: a healthy rollout takes about two minutes; headless default: as fast as possible)",
    )
    demo.add_argument(
        "--prometheus",
        action="store_true",
        help="scrape the simulated workload with a real "
        "Prometheus (if installed) and judge through real PromQL",
    )
    demo.add_argument(
        "--backend",
        choices=["kube", "memory"],
        default=None,
        help="kube: the simulated Kubernetes "
        "API server through the real adapter (dashboard default); memory: in-process (headless default)",
    )
    _common_run_args(demo)
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a deploy plan", description="Run PLAN through the whole workflow.")
    run.add_argument("plan", type=Path, metavar="PLAN")
    run.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="GATE_ID",
        help="sign off a manual gate up front as --as (repeatable)",
    )
    _sim_args(run, running=True)
    _common_run_args(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a plan and print its gate checklist (changes nothing)")
    check.add_argument("plan", type=Path, metavar="PLAN")
    _sim_args(check, running=False)
    check.set_defaults(func=cmd_check)

    sim = sub.add_parser("sim", help="the simulated cluster")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    serve = sim_sub.add_parser(
        "serve",
        help="a complete simulated environment for the real adapters, until Ctrl-C",
        description="Simulated Kubernetes API server and workload, a real Prometheus and Alertmanager "
        "when installed, GitHub-compatible and team-channel endpoints. Holds no lease. Writes a "
        "kubeconfig and sim-plan.yaml into --dir for `deploydeck run DIR/sim-plan.yaml`.",
    )
    serve.add_argument("--scenario", default="healthy")
    serve.add_argument("--port", type=int, default=0, help="the Kubernetes API server's port (default: any)")
    serve.add_argument(
        "--dir", type=Path, default=None, help="where to write the kubeconfig and sim-plan.yaml"
    )
    serve.set_defaults(func=cmd_sim_serve)
    scenario = sim_sub.add_parser("scenario", help="switch the running `sim serve` environment's scenario")
    scenario.add_argument("name", metavar="NAME")
    scenario.add_argument(
        "--dir", type=Path, required=True, help="the --dir the environment was started with"
    )
    scenario.set_defaults(func=cmd_sim_scenario)

    log_cmd.register(sub)
    watch_cmd.register(sub)
    return parser


def _speed(text: str) -> float:
    """--speed: simulated seconds per real second; `max` runs in virtual time (headless)."""
    if text == "max":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number (or 'max')") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive (or 'max')")
    return value


def _sim_args(p: argparse.ArgumentParser, *, running: bool) -> None:
    p.add_argument(
        "--sim",
        action="store_true",
        help="against the simulated world instead of the plan's cluster, Prometheus and endpoints "
        "(a dry run of a real plan); plans with cluster.kind: sim always are",
    )
    if not running:
        return
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X",
        help="simulated world only: simulated seconds per real second; 'max' (headless) as fast as possible",
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="simulated world only: healthy (default), bad-canary, slow-canary, flaky-health, "
        "metrics-outage, late-regression, subtle-latency",
    )


def _actor(args: argparse.Namespace) -> str:
    from core.session import default_actor

    return args.actor or default_actor()


def cmd_demo(args: argparse.Namespace) -> int:
    from core.session import demo_plan
    from core.sim.scenarios import SCENARIOS

    if args.scenario not in SCENARIOS:
        print(
            f"deploydeck demo: unknown scenario '{args.scenario}'; choose one of: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.speed is not None and not (math.isfinite(args.speed) and args.speed > 0):
        print("deploydeck demo: --speed must be a positive number", file=sys.stderr)
        return EXIT_BAD_INPUT
    plan = demo_plan(args.scenario)
    approvals = [] if not args.headless else [m.id for m in plan.gates.manual]
    backend = args.backend or ("memory" if args.headless else "kube")
    return _launch(
        args, plan, plan_path="(built-in demo)", approvals=approvals, backend=backend, scenario=args.scenario
    )


def load_plan_or_say(path: Path) -> Any:
    """The plan, or None after printing file:line: field problems to stderr (exit 2 follows)."""
    from core.plan import PlanError, load_plan

    try:
        return load_plan(path)
    except PlanError as exc:
        print(f"deploydeck: invalid plan\n{exc}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    plan = _plan_for(args)
    if plan is None:
        return EXIT_BAD_INPUT
    return _launch(
        args, plan, plan_path=str(args.plan), approvals=args.approve, backend="kube", scenario=args.scenario
    )


def _plan_for(args: argparse.Namespace) -> Any:
    """The plan `run`/`check` will use, or None after saying on stderr what to fix (exit 2)."""
    from tui.preflight import plan_for

    return plan_for(args)


def _launch(
    args: argparse.Namespace,
    plan: Any,
    *,
    plan_path: str,
    approvals: list[str],
    backend: str,
    scenario: str | None,
) -> int:
    if args.json and not args.headless:
        print("deploydeck: --json needs --headless", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.journal is not None and args.journal.is_dir():
        print(f"deploydeck: --journal {args.journal} is a directory; name a file", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_launch_async(args, plan, plan_path, approvals, backend, scenario))


def _clock(args: argparse.Namespace) -> Any:
    from core.clock import ScaledClock, SystemClock, VirtualClock

    speed = getattr(args, "speed", None)
    if speed == 0.0:  # --speed max: virtual time, as fast as the machine goes
        from datetime import UTC, datetime

        return VirtualClock(datetime.now(UTC).replace(microsecond=0))
    if getattr(args, "command", "") == "run" and speed is not None:
        return ScaledClock(speed)
    if getattr(args, "command", "") == "demo":
        if speed is None:
            if args.headless:
                from datetime import UTC, datetime

                return VirtualClock(datetime.now(UTC).replace(microsecond=0))
            return ScaledClock(30.0)
        return ScaledClock(speed)
    return SystemClock()


async def _launch_async(
    args: argparse.Namespace,
    plan: Any,
    plan_path: str,
    approvals: list[str],
    backend: str,
    scenario: str | None,
) -> int:
    from core.domain import EXIT_CODES, Outcome
    from core.plan import PlanError
    from core.ports import PortError
    from core.session import open_session

    actor = _actor(args)
    use_prometheus = bool(getattr(args, "prometheus", False))

    async def make_session(scn: str | None) -> Any:
        from core.session import demo_plan

        the_plan = demo_plan(scn) if scn and scn != scenario else plan
        return await open_session(
            the_plan,
            actor=actor,
            clock=_clock(args),
            scenario=scn,
            journal_path=args.journal,
            use_prometheus=use_prometheus,
            plan_path=plan_path,
            interactive=not args.headless,
            approvals=approvals,
            decision_default=args.decision,
            sim_backend=backend,  # type: ignore[arg-type]
        )

    if not args.headless:
        from tui.app import run_dashboard

        # the dashboard paints first and opens the world behind its first frame
        outcome = await run_dashboard(
            None,
            actor=actor,
            read_only=args.read_only,
            allow_rollback=args.allow_rollback,
            reopen=make_session if plan.is_sim else None,
            opener=lambda: make_session(scenario),
            starting="starting the simulated cluster"
            if plan.is_sim
            else f"connecting to {plan.service}'s cluster",
        )
        return 0 if outcome is None else EXIT_CODES[outcome]
    try:
        session = await make_session(scenario)
    except (PortError, PlanError) as exc:
        from core.session import DriverConflict

        print(f"deploydeck: {exc}", file=sys.stderr)
        if isinstance(exc, DriverConflict):
            return EXIT_CODES[Outcome.BLOCKED]
        return EXIT_BAD_INPUT if isinstance(exc, PlanError) else EXIT_INTERNAL
    try:
        from tui.headless import JsonPrinter, ProgressPrinter

        printer = JsonPrinter() if args.json else ProgressPrinter()
        if not args.json:
            for note in session.notes:
                print(f"note: {note}")
        session.rollout.subscribe(printer)
        outcome = await session.rollout.run()
        return EXIT_CODES[outcome]
    finally:
        await session.close()


def cmd_check(args: argparse.Namespace) -> int:
    plan = _plan_for(args)
    if plan is None:
        return EXIT_BAD_INPUT
    return asyncio.run(_check(plan, args.plan))


async def _check(plan: Any, path: Path) -> int:
    from core.clock import SystemClock
    from core.domain import GateGroup
    from core.gates.base import GateContext
    from core.gates.runner import evaluate_gates, format_checklist
    from core.session import open_session, real_ports

    clock = SystemClock()
    session = None
    if plan.is_sim:
        session = await open_session(plan, actor="check", clock=clock, interactive=False, plan_path=str(path))
        world = session.world
    else:
        world = real_ports(plan, clock)  # `check` never connects to a cluster
    try:
        ctx = GateContext(
            plan=plan,
            clock=world.clock,
            probe=world.probe,
            runner=world.runner,
            alerts=world.alerts,
            metrics=world.metrics,
            codehost=world.codehost,
            deploy_started_at=world.clock.now(),
            staging=world.staging,
            base_dir=path.parent,
            dry_run=True,
        )
        results = []
        for group in (GateGroup.PRE_DEPLOY, GateGroup.MIGRATIONS, GateGroup.STAGING, GateGroup.POST_DEPLOY):
            results.extend(await evaluate_gates(ctx, group))
        change = plan.change
        print(
            f"{plan.service} {plan.version.from_} → {plan.version.to}  change {change.id} "
            f"({change.class_}{', security-sensitive' if change.security_sensitive else ''})"
        )
        print(format_checklist(results))
        blocking = [r for r in results if r.status.value in {"fail", "error"}]
        return 4 if blocking else 0
    finally:
        if session is not None:
            await session.close()
        else:
            await world.close()


def cmd_sim_serve(args: argparse.Namespace) -> int:
    from tui.commands.sim_cmd import sim_serve

    return sim_serve(args)


def cmd_sim_scenario(args: argparse.Namespace) -> int:
    from tui.commands.sim_cmd import sim_scenario

    return sim_scenario(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `deploydeck log | head`: the reader left; not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("DEPLOYDECK_DEBUG"):
            raise
        print(
            f"deploydeck: internal error: {type(exc).__name__}: {exc} (set DEPLOYDECK_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
