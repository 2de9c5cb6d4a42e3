"""`deploydeck`: the command line. Starts the dashboard or the headless runner.

Exit codes (DESIGN.md): 0 completed, 2 bad input, 3 rolled back, 4 blocked at a gate (or another
driver holds the lease, or an unfinished deploy cannot be resumed automatically), 5 aborted by a
person, 1 internal error; 143/129/130 stopped by SIGTERM/SIGHUP/SIGINT, left where it was (resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
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
    from tui.commands import agent_cmd, attach_cmd, init_cmd, log_cmd, status_cmd, watch_cmd

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
    run.add_argument(
        "--rollback-unfinished",
        action="store_true",
        help="roll back the plan's unfinished deploy (e.g. one its cluster no longer matches) instead of resuming it",
    )
    _sim_args(run, running=True)
    _common_run_args(run)
    attach_cmd.agent_args(
        run,
        default_help="create the plan's DeployRun in the cluster and follow the agent that drives it "
        "(a bare --agent: $DEPLOYDECK_AGENT)",
    )
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
    serve.add_argument(
        "--pod-start-delay",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="until a new pod is Ready, in the environment's time (a real one: ~3)",
    )
    serve.add_argument(
        "--agent",
        action="store_true",
        help="also start a deploydeck agent driving DeployRuns against the environment (its API on loopback)",
    )
    serve.add_argument(
        "--agent-api-port",
        type=int,
        default=0,
        metavar="PORT",
        help="the agent's API port (default: any free one)",
    )
    serve.set_defaults(func=cmd_sim_serve)
    scenario = sim_sub.add_parser("scenario", help="switch the running `sim serve` environment's scenario")
    scenario.add_argument("name", metavar="NAME")
    scenario.add_argument(
        "--dir", type=Path, required=True, help="the --dir the environment was started with"
    )
    scenario.set_defaults(func=cmd_sim_scenario)

    init_cmd.register(sub)
    log_cmd.register(sub)
    watch_cmd.register(sub)
    status_cmd.register(sub)
    attach_cmd.register(sub)
    agent_cmd.register(sub)
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
    if args.prometheus:
        from core.sim.prometheus_demo import prometheus_demo_speed

        # Prometheus scrapes on the wall clock: the demo runs no faster than it can follow (issue 14)
        try:
            args.speed = prometheus_demo_speed(plan, args.speed)
        except ValueError as exc:
            print(f"deploydeck demo: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
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
    if args.agent is not None:
        from tui.commands.attach_cmd import run_with_agent

        return run_with_agent(args)
    agent_only = [
        flag
        for flag, value in (
            ("--kubeconfig", args.kubeconfig),
            ("--context", args.context),
            ("--agent-ca", args.agent_ca),
            ("--agent-tls-server-name", args.agent_tls_server_name),
        )
        if value is not None
    ]
    if agent_only:
        print(
            f"deploydeck: {', '.join(agent_only)} go with --agent URL; without it the plan names its cluster "
            "(cluster.kubeconfig, targets.*.context)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    plan = _plan_for(args)
    if plan is None:
        return EXIT_BAD_INPUT
    return _launch(
        args,
        plan,
        plan_path=str(args.plan),
        approvals=args.approve,
        backend="kube",
        scenario=_sim_scenario(args, plan),
    )


def _sim_scenario(args: argparse.Namespace, plan: Any) -> str | None:
    """The scenario a simulated run records: it is also the mark that keeps it out of real history."""
    if not plan.is_sim:
        return args.scenario
    return args.scenario or plan.scenario or "healthy"


def _journal_for(args: argparse.Namespace, plan: Any) -> Path | None:
    """--journal, else (simulated world) the simulated runs' own log, else the plan's or the default."""
    if args.journal is not None or not plan.is_sim:
        return args.journal
    from core.history_index import simulated_journal_path

    return simulated_journal_path()


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
            journal_path=_journal_for(args, the_plan),
            use_prometheus=use_prometheus,
            plan_path=plan_path,
            interactive=not args.headless,
            approvals=approvals,
            decision_default=args.decision,
            rollback_unfinished=bool(getattr(args, "rollback_unfinished", False)),
            sim_backend=backend,  # type: ignore[arg-type]
        )

    if not args.headless:
        from tui.app import run_dashboard

        # the dashboard paints first and opens the world behind its first frame
        return await run_dashboard(
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
    try:
        session = await make_session(scenario)
        if args.command == "demo" and approvals:
            session.rollout.approval_note = "signed by the headless demo: nobody is at the keyboard"
    except (PortError, PlanError) as exc:
        from core.session import DriverConflict, ResumeRefused

        print(f"deploydeck: {exc}", file=sys.stderr)
        if isinstance(exc, ResumeRefused) and args.json:
            import json

            refusal = {"type": "resume_refused", "phase": "pending", "reason": str(exc)}
            print(json.dumps({**refusal, "differences": exc.differences}))
        if isinstance(exc, DriverConflict | ResumeRefused):
            return EXIT_CODES[Outcome.BLOCKED]
        return EXIT_BAD_INPUT if isinstance(exc, PlanError) else EXIT_INTERNAL
    try:
        from tui.headless import JsonPrinter, ProgressPrinter, run_headless

        printer = JsonPrinter() if args.json else ProgressPrinter()
        if not args.json:
            for note in session.notes:
                print(f"note: {note}")
        # SIGTERM/SIGHUP/SIGINT stop the rollout where it stands (exit 143/129/130, resumable)
        return await run_headless(session, printer)
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
        from tui.check_hints import what_would_satisfy

        for line in what_would_satisfy(results):
            print(line)
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


class HangUp(KeyboardInterrupt):
    """The terminal closed (SIGHUP)."""


def _end_on_hangup() -> None:
    """A closed terminal ends deploydeck the way Ctrl-C does, through every `finally`.

    By default SIGHUP kills the process on the spot: no session.close(), so the Prometheus it
    started (which takes SIGHUP as "reload its configuration") and the temporary folders outlived
    it. Raised as a KeyboardInterrupt, asyncio cancels the main task and the sessions close.
    """

    def hang_up(signum: int, frame: object) -> None:
        raise HangUp

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, hang_up)


def main(argv: list[str] | None = None) -> int:
    from core.redact import install_on_std_streams

    # every line printed from here on (checklists, errors, notes) passes the one redaction point
    install_on_std_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    _end_on_hangup()
    try:
        return int(args.func(args))
    except HangUp:
        return 129  # 128 + SIGHUP, as a shell reports it
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
