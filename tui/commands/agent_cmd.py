"""`deploydeck agent`: the in-cluster agent as far as it exists (health, metrics, watching DeployRuns).

It does not drive DeployRuns yet (that needs the resume machinery); it says so when it starts and
for every run it sees. Exit codes: 2 bad input (no kubeconfig, bad arguments), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    agent = subparsers.add_parser(
        "agent",
        help="in the cluster: serve /healthz /readyz /metrics and watch DeployRuns (does not drive them yet)",
        description="Watch DeployRuns (deploy/crd.yaml) and report what would be driven. In a Pod it uses "
        "the in-cluster config; outside, --kubeconfig/--context. Driving runs needs the resume work.",
    )
    agent.add_argument(
        "--kubeconfig", type=Path, default=None, help="default: $KUBECONFIG, ~/.kube/config, in-cluster"
    )
    agent.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    scope = agent.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    agent.add_argument(
        "--host", default="127.0.0.1", help="listen address (default loopback; in a Pod: 0.0.0.0)"
    )
    agent.add_argument("--port", type=int, default=8080, help="health and metrics port (0: any free one)")
    agent.set_defaults(func=cmd_agent)


def cmd_agent(args: argparse.Namespace) -> int:
    from core.ports import ClusterError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if not 0 <= args.port <= 65535:
        print(f"deploydeck agent: --port {args.port} is not a port", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_run(args))
    except ClusterError as exc:
        print(f"deploydeck agent: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(
            f"deploydeck agent: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


async def _run(args: argparse.Namespace) -> int:
    from core.adapters.kubernetes.api import KubeApi
    from core.adapters.kubernetes.credentials import load
    from core.agent.runner import run_agent
    from core.clock import SystemClock

    # the loader is kept (credentials): exec-plugin and OIDC tokens are renewed, a 401 retried once
    client, credentials = await load(str(args.kubeconfig) if args.kubeconfig else None, args.context)
    api = KubeApi(client, SystemClock(), credentials=credentials)
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a Pod is stopped with SIGTERM: leave cleanly
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, main.cancel)  # type: ignore[union-attr]
    namespaces = None if args.all_namespaces else args.namespace
    with contextlib.suppress(asyncio.CancelledError):
        await run_agent(api, namespaces, args.host, args.port)
    return 0
