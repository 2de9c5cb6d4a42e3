"""`deploydeck sim serve` and `deploydeck sim scenario`: the simulated environment from the terminal.

`sim serve` exit codes: 0 stopped by Ctrl-C or SIGTERM; 2 bad input (unknown scenario,
port out of range or taken); 1 internal error. `sim scenario`: 0 switched; 2 unknown
scenario or no environment running in --dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

EXIT_BAD_INPUT = 2


def sim_serve(args: argparse.Namespace) -> int:
    from core.sim.scenarios import SCENARIOS

    if args.scenario not in SCENARIOS:
        print(
            f"deploydeck sim serve: unknown scenario '{args.scenario}'; choose one of: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if not 0 <= args.port <= 65535:
        print(f"deploydeck sim serve: --port {args.port} is not a TCP port (0-65535)", file=sys.stderr)
        return EXIT_BAD_INPUT
    directory = args.dir or Path(tempfile.mkdtemp(prefix="deploydeck-sim-"))
    if directory.exists() and not directory.is_dir():
        print(f"deploydeck sim serve: --dir {directory} is not a directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    delay = getattr(args, "pod_start_delay", 0.3)
    if not 0 <= delay <= 600:
        print(f"deploydeck sim serve: --pod-start-delay {delay} is not 0-600 seconds", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_serve(directory.resolve(), args.scenario, args.port, delay))
    finally:
        if args.dir is None:  # a folder of our own: its kubeconfig and plan hold tokens, leave nothing
            shutil.rmtree(directory, ignore_errors=True)


async def _serve(directory: Path, scenario: str, port: int, pod_start_delay_s: float = 0.3) -> int:
    from core.sim.environment import SimEnvironment

    env = SimEnvironment(directory, scenario=scenario, port=port, pod_start_delay_s=pod_start_delay_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM and Ctrl-C both stop the environment cleanly (its Prometheus and Alertmanager too)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await env.start()
        except OSError as exc:
            print(f"deploydeck sim serve: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for note in env.notes:
            print(note)
        print(f"scenario: {scenario}")
        print(f"kubeconfig: {env.kubeconfig}")
        print(f"plan: {env.plan_path}")
        print(
            f"try: deploydeck run {env.plan_path} --headless --approve rollback-plan "
            "--approve dashboards-reviewed --as alice"
        )
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        await env.stop()
    return 0


def sim_scenario(args: argparse.Namespace) -> int:
    import httpx

    from core.sim.environment import read_state
    from core.sim.scenarios import SCENARIOS

    if args.name not in SCENARIOS:
        print(
            f"deploydeck sim scenario: unknown scenario '{args.name}'; choose one of: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        state = read_state(args.dir)
    except (OSError, ValueError):
        print(f"deploydeck sim scenario: no `sim serve` running with --dir {args.dir}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not _alive(int(state.get("pid", 0))):
        print(f"deploydeck sim scenario: the `sim serve` of {args.dir} is gone", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        answer = httpx.post(f"{state['control']}/control/scenario", json={"name": args.name}, timeout=5.0)
    except httpx.HTTPError as exc:
        print(f"deploydeck sim scenario: environment unreachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    body = answer.json()
    if answer.status_code != 200:
        print(f"deploydeck sim scenario: {body.get('error', answer.text)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(body) if getattr(args, "json", False) else f"scenario: {args.name} ({body['title']})")
    return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    with contextlib.suppress(PermissionError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
    return True
