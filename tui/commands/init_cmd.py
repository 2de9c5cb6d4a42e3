"""`deploydeck init [DEPLOYMENT]`: a commented plan for an existing service, each guess marked.

Exit codes: 0 written; 2 bad input (OUTPUT exists without --force, the cluster or context cannot be read).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    init = sub.add_parser(
        "init",
        help="write a commented plan for an existing service",
        description="Read DEPLOYMENT (with its Services, Ingresses, HTTPRoutes, HPA and probes) from the "
        "cluster and write a plan marking each guess; without DEPLOYMENT, write the template.",
    )
    init.add_argument("deployment", nargs="?", default=None, metavar="DEPLOYMENT")
    init.add_argument("--namespace", "-n", default="default")
    init.add_argument("--context", default=None, help="kube context (default: the current one)")
    init.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then ~/.kube/config")
    init.add_argument("--image", default=None, help="the image to ship (its tag becomes version.to)")
    init.add_argument("--service", default=None, help="the service's name in the plan (default: DEPLOYMENT)")
    init.add_argument("-o", "--output", type=Path, default=Path("deploydeck.yaml"))
    init.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    init.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from core.plan_init import render_plan

    if args.output.exists() and not args.force:
        print(f"deploydeck init: {args.output} exists; --force overwrites it", file=sys.stderr)
        return EXIT_BAD_INPUT
    deployment = args.deployment or "my-service"
    found = None
    if args.deployment is not None:
        from core.ports import ClusterError

        try:
            found = asyncio.run(_discover(args))
        except ClusterError as exc:
            print(f"deploydeck init: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    text = render_plan(
        found,
        service=args.service or deployment,
        namespace=args.namespace,
        deployment=deployment,
        context=args.context,
        image=args.image,
    )
    args.output.write_text(text, encoding="utf-8")
    guesses = text.count("# guess:")
    todos = text.count("# TODO:")
    print(f"wrote {args.output}: {guesses} guesses, {todos} TODOs to fill in")
    print(f"next: deploydeck check {args.output} --sim")
    return 0


async def _discover(args: argparse.Namespace) -> Any:
    from core.adapters.kubernetes.api import KubeApi
    from core.adapters.kubernetes.credentials import load
    from core.clock import SystemClock
    from core.plan_init import discover

    client, credentials = await load(args.kubeconfig, args.context)
    api = KubeApi(client, SystemClock(), credentials=credentials)
    try:
        return await discover(api, args.namespace, args.deployment)
    finally:
        await api.close()
