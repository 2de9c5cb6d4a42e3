"""`deploydeck agent`: the in-cluster agent: drives DeployRuns, serves health, metrics and the API.

Every replica watches the DeployRuns; each run is driven by the replica holding its Lease, the
others stand by and resume it if that replica dies (core.agent.drive). Exit codes: 2 bad input
(no kubeconfig, bad arguments, an unusable database or TLS files), 0 when stopped (SIGTERM, Ctrl-C).
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
        help="in the cluster: drive DeployRuns; serve /healthz /readyz /metrics and the API",
        description="Drive DeployRuns (deploy/crd.yaml): one replica per run (a Lease), the others stand "
        "by and resume it. In a Pod it uses the in-cluster config; outside, --kubeconfig/--context.",
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
    agent.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="the team's log in PostgreSQL (postgresql://…; default $DEPLOYDECK_DATABASE_URL, else --journal)",
    )
    agent.add_argument("--journal", type=Path, default=None, help="the log file when no database is given")
    agent.add_argument("--api-port", type=int, default=None, help="serve the API for attached clients here")
    agent.add_argument(
        "--api-host", default="127.0.0.1", help="API listen address (plain HTTP: loopback only)"
    )
    agent.add_argument("--tls-cert", type=Path, default=None, help="the API's certificate (PEM)")
    agent.add_argument("--tls-key", type=Path, default=None, help="the API's private key (PEM)")
    agent.add_argument(
        "--api-url",
        default=None,
        help="the URL other replicas reach this one's API at (default: from $POD_IP)",
    )
    agent.add_argument(
        "--identity",
        default=None,
        help="who drives, in the log and the Lease (default deploydeck-agent/<pod>)",
    )
    agent.set_defaults(func=cmd_agent)


def cmd_agent(args: argparse.Namespace) -> int:
    from core.adapters.journal_pg import DatabaseError
    from core.ports import ClusterError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per probe and gate read drowns the runs
    for flag, value in (("--port", args.port), ("--api-port", args.api_port)):
        if value is not None and not 0 <= value <= 65535:
            print(f"deploydeck agent: {flag} {value} is not a port", file=sys.stderr)
            return EXIT_BAD_INPUT
    problem = _tls_problem(args)
    if problem:
        print(f"deploydeck agent: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_run(args))
    except DatabaseError as exc:
        print(f"deploydeck agent: --database: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
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
    journal = await _journal(args)
    drive = {
        "kubeconfig": str(args.kubeconfig) if args.kubeconfig else None,
        "context": args.context,
        "journal": journal,
        "journal_path": args.journal,
    }
    if args.identity:
        drive["identity"] = args.identity
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await run_agent(
                api,
                namespaces,
                args.host,
                args.port,
                drive=drive,
                api_host=args.api_host,
                api_port=args.api_port,
                tls=tls,
                api_url=args.api_url,
            )
    finally:
        if journal is not None:
            await journal.close()
    return 0


async def _journal(args: argparse.Namespace) -> object:
    """The PostgreSQL log (--database or $DEPLOYDECK_DATABASE_URL when no --journal), connected
    now so a wrong URL fails at start (exit 2), not at a run's first line; None: the file."""
    import os

    from core.adapters.journal_pg import DATABASE_ENV, PgJournal

    dsn = args.database or (None if args.journal else os.environ.get(DATABASE_ENV))
    if not dsn:
        return None
    journal = PgJournal(dsn)
    await journal.lines()  # connects, creates the table if needed, and reads: a usable log
    logging.getLogger("deploydeck.agent").info("agent: log in %s", journal.label)
    return journal


def _tls_problem(args: argparse.Namespace) -> str:
    """The API is plain HTTP only on loopback; TLS needs both files, readable."""
    if (args.tls_cert is None) != (args.tls_key is None):
        return "--tls-cert and --tls-key go together"
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            return f"{flag} {path}: no such file"
    if args.api_port is not None and args.tls_cert is None and args.api_host not in LOOPBACK:
        return f"--api-host {args.api_host}: plain HTTP is served on loopback only; give --tls-cert and --tls-key"
    return ""


LOOPBACK = {"127.0.0.1", "::1", "localhost"}
