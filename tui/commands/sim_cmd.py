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
    agent_port = getattr(args, "agent_api_port", 0) or 0
    if not 0 <= agent_port <= 65535:
        print(f"deploydeck sim serve: --agent-api-port {agent_port} is not a TCP port", file=sys.stderr)
        return EXIT_BAD_INPUT
    agent = agent_port if getattr(args, "agent", False) else None
    try:
        return asyncio.run(_serve(directory.resolve(), args.scenario, args.port, delay, agent))
    finally:
        if args.dir is None:  # a folder of our own: its kubeconfig and plan hold tokens, leave nothing
            shutil.rmtree(directory, ignore_errors=True)


async def _serve(
    directory: Path, scenario: str, port: int, pod_start_delay_s: float = 0.3, agent_port: int | None = None
) -> int:
    """``agent_port``: also run a deploydeck agent against the environment (its API on that port)."""
    from core.sim.environment import SimEnvironment

    env = SimEnvironment(directory, scenario=scenario, port=port, pod_start_delay_s=pod_start_delay_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM and Ctrl-C both stop the environment cleanly (its Prometheus and Alertmanager too)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    agent_task: asyncio.Task[None] | None = None
    try:
        try:
            await env.start()
        except OSError as exc:
            print(f"deploydeck sim serve: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if agent_port is not None:
            agent_task = await _start_agent(env, agent_port)
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
        if agent_task is not None:
            await _stop_agent(agent_task)
        await env.stop()
    return 0


async def _start_agent(env: object, api_port: int) -> asyncio.Task[None]:
    """An agent driving every DeployRun of the environment, with its own ServiceAccount-like
    credentials (agent-kubeconfig.yaml), its log next to the plan's; its API on loopback."""
    import importlib.util

    from core.adapters.kubernetes.api import KubeApi
    from core.adapters.kubernetes.credentials import load
    from core.agent.runner import Agent, run_agent
    from core.clock import SystemClock

    kubeconfig = str(env.agent_kubeconfig)  # type: ignore[attr-defined]
    client, credentials = await load(kubeconfig, None)
    api = KubeApi(client, SystemClock(), credentials=credentials)
    ready: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
    has_api = importlib.util.find_spec("core.agent.api") is not None
    task = asyncio.create_task(
        run_agent(
            api,
            None,
            "127.0.0.1",
            0,
            drive={
                "kubeconfig": kubeconfig,
                "context": None,
                "journal_path": env.directory / "deployments.jsonl",  # type: ignore[attr-defined]
            },
            api_port=api_port if has_api else None,
            ready=ready,
        ),
        name="agent",
    )
    done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # it failed to start: say why
    agent = ready.result()
    notes = env.notes  # type: ignore[attr-defined]
    notes.append(f"agent {agent.registry.identity}: health and metrics at {agent.http_url}")  # type: ignore[attr-defined]
    if agent.api_url:
        notes.append(f"agent API at {agent.api_url}")
        print(f"agent: {agent.api_url}")
    notes.append(
        f"DeployRuns: kubectl --kubeconfig {env.kubeconfig} get deployruns -A"  # type: ignore[attr-defined]
    )
    return task


async def _stop_agent(task: asyncio.Task[None]) -> None:
    # cancel until done (Python 3.11's wait_for can swallow one cancellation; see Agent.stop)
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


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
