"""`deploydeck attach` and `deploydeck run PLAN --agent URL`: the TUI (or the headless printer) on
runs the in-cluster agent drives.

The caller's identity is their kubeconfig context's credential (``--context``, exec plugins
included); the agent authenticates it and authorizes every command with the caller's RBAC.
Exit codes: 2 bad input (no agent URL, agent unreachable, credential refused, invalid plan);
otherwise as `run`: the outcome of the run followed (0 completed, 3 rolled back, 4 blocked,
5 aborted), or 0 when the person detached before it finished; 130/143 when a headless follower
is stopped by a signal (the agent keeps driving the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
ENV_AGENT = "DEPLOYDECK_AGENT"
#: how long the first call may take before "unreachable" (later calls have the client's 15 s)
CONNECT_DEADLINE_S = 3.0
#: how long reading the kubeconfig's credential may take (an exec plugin included)
CREDENTIAL_DEADLINE_S = 60.0
_DETACH_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}


def agent_args(p: argparse.ArgumentParser, *, default_help: str) -> None:
    # a bare --agent takes $DEPLOYDECK_AGENT (without --agent, `run` stays embedded whatever is set)
    p.add_argument("--agent", nargs="?", const="", default=None, metavar="URL", help=default_help)
    p.add_argument(
        "--agent-ca",
        type=Path,
        default=None,
        metavar="PATH",
        help="CA bundle for an https agent (default: the kubeconfig cluster's CA, then the system's)",
    )
    p.add_argument(
        "--agent-tls-server-name",
        default=None,
        metavar="NAME",
        help="the name the agent's certificate carries, when URL says otherwise (kubectl port-forward: "
        "deploydeck-agent.deploydeck-system.svc)",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        metavar="PATH",
        help="whose credential (default: $KUBECONFIG, ~/.kube/config)",
    )
    p.add_argument(
        "--context", default=None, metavar="CTX", help="kubeconfig context: who you are to the agent"
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    attach = subparsers.add_parser(
        "attach",
        help="the fleet of DeployRuns an in-cluster agent drives; Enter opens one's dashboard",
        description="Lists every DeployRun you may see (service, versions, phase, weight, time in phase, "
        "lease holder, who else is attached); / filters, Enter opens the dashboard fed by the agent. "
        "Your kubeconfig context is who you are: what your RBAC does not allow is not offered.",
    )
    agent_args(attach, default_help=f"the agent's API URL (default: ${ENV_AGENT})")
    attach.add_argument(
        "run", nargs="?", default=None, metavar="NAMESPACE/NAME", help="open this run's dashboard directly"
    )
    attach.add_argument("--read-only", action="store_true", help="watch only, whatever your RBAC allows")
    attach.set_defaults(func=cmd_attach)


def _say(message: str) -> None:
    print(f"deploydeck: {message}", file=sys.stderr)


def agent_url(args: argparse.Namespace) -> str | None:
    url = args.agent or os.environ.get(ENV_AGENT, "").strip()
    if not url:
        _say(
            f"no agent URL: give --agent URL or set ${ENV_AGENT} (the address `deploydeck agent --api-port` "
            "serves; in a cluster, e.g. `kubectl -n deploydeck-system port-forward svc/deploydeck-agent 8443` "
            "then --agent https://127.0.0.1:8443 --agent-tls-server-name deploydeck-agent.deploydeck-system.svc)"
        )
        return None
    return url


async def connect(args: argparse.Namespace, url: str) -> tuple[Any, Any, Any]:
    """(AgentClient, KubeconfigToken, Identity); raises AgentError/ClusterError/ValueError."""
    from core.agent.client import AgentClient, KubeconfigToken, check_agent_url
    from core.ports import ClusterError

    check_agent_url(url)
    try:
        # an exec plugin may ask its identity provider (a browser login, a cloud CLI): give it a minute
        async with asyncio.timeout(CREDENTIAL_DEADLINE_S):
            token = await KubeconfigToken.load(
                str(args.kubeconfig) if args.kubeconfig else None, args.context
            )
    except TimeoutError:
        raise ClusterError(
            f"the kubeconfig's credential (exec plugin) did not answer within {CREDENTIAL_DEADLINE_S:g} s"
        ) from None
    except ClusterError as exc:
        # the kubeconfig is who you are to the agent: say so, the loader's words are about clusters
        raise ClusterError(
            f"{exc} (the agent knows you by this credential: --kubeconfig, --context)"
        ) from None
    ca = args.agent_ca or token.ca_file
    client = AgentClient(url, token, ca_file=ca, tls_server_name=args.agent_tls_server_name)
    try:
        me = await client.whoami(deadline_s=CONNECT_DEADLINE_S)
    except BaseException:
        await client.close()
        await token.close()
        raise
    return client, token, me


def cmd_attach(args: argparse.Namespace) -> int:
    url = agent_url(args)
    if url is None:
        return EXIT_BAD_INPUT
    run: tuple[str, str] | None = None
    if args.run is not None:
        namespace, _, name = args.run.partition("/")
        if not namespace or not name:
            _say(f"attach {args.run}: expected NAMESPACE/NAME")
            return EXIT_BAD_INPUT
        run = (namespace, name)
    return asyncio.run(_attach(args, url, run))


async def _attach(args: argparse.Namespace, url: str, run: tuple[str, str] | None) -> int:
    from core.agent.client import AgentError
    from core.ports import ClusterError

    try:
        client, token, me = await connect(args, url)
    except (AgentError, ClusterError, ValueError) as exc:
        _say(str(exc))
        return EXIT_BAD_INPUT
    try:
        return await dashboard(client, me, fleet=True, run=run, read_only=args.read_only)
    finally:
        await client.close()
        await token.close()


async def dashboard(
    client: Any, me: Any, *, fleet: bool, run: tuple[str, str] | None, read_only: bool
) -> int:
    from core.domain import EXIT_CODES
    from tui.lifecycle import end_terminal_threads, stop_on_signals
    from tui.remote import AttachApp

    app = AttachApp(client, me, fleet=fleet, run=run, read_only=read_only)
    with stop_on_signals(app):
        try:
            await app.run_async()
        finally:
            end_terminal_threads(app)
    if app.signal_exit is not None:  # detached by SIGHUP/SIGTERM: the agent keeps driving the run
        return app.signal_exit
    return 0 if app.outcome is None else EXIT_CODES[app.outcome]


# --- headless, attached ---------------------------------------------------------------------------


async def follow_headless(
    client: Any,
    namespace: str,
    name: str,
    printer: Any,
    *,
    approvals: list[str] = (),
    auto_proceed: bool = False,
    err: Any = None,
) -> int:
    """Print the run's events as the embedded headless mode does, until it finishes; the exit code.

    ``approvals``: manual gates to sign (as the authenticated caller) when they ask for it.
    ``auto_proceed``: the agent runs every DeployRun interactively (a person proceeds past the gates
    and each canary step); a headless launcher has nobody at the keyboard, so it proceeds, as the
    caller, each time the engine says it waits for one ("press p") and allows it: what the embedded
    headless mode does by itself. The gates and the analysis still decide; only the wait is answered.
    A signal detaches (130/143/129): the agent keeps driving the run."""
    from core.agent.client import AgentError, StreamEvent, StreamState
    from core.domain import EXIT_CODES, GateStatus
    from core.events import Finished, GateEvaluated, LogLine, PhaseChanged, WindowStarted

    err = err or sys.stderr
    outcome = None
    signed: set[str] = set()
    main = asyncio.current_task()
    stopped: list[str] = []
    loop = asyncio.get_running_loop()

    def stop(name_: str) -> None:
        if not stopped and main is not None:
            stopped.append(name_)
            main.cancel()

    installed = []
    for sig_name in _DETACH_CODES:
        number = getattr(signal, sig_name, None)
        if number is None:
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(number, stop, sig_name)
            installed.append(number)
    waiting = False  # the engine said it waits for a proceed; answered at the state after it
    to_sign: set[str] = set()  # approved gates asking for a sign-off now (history included)

    async def send(verb: str, body: dict[str, Any] | None, what: str) -> None:
        try:
            answer = await client.command(namespace, name, verb, body)
        except AgentError as exc:
            err.write(f"deploydeck: {what} refused: {exc}\n")
        else:
            if not answer.ok:
                err.write(f"deploydeck: {what} refused: {answer.reason}\n")

    try:
        async for item in client.events(namespace, name):
            if isinstance(item, StreamState):
                # act on the current state only: the history before it replays waits long answered
                for gate in sorted(to_sign - signed):
                    signed.add(gate)
                    await send("signoff", {"gate": gate, "note": ""}, f"sign-off of {gate}")
                proceed = item.state.allowed.get("proceed")
                if auto_proceed and waiting and not to_sign and proceed is not None and proceed.ok:
                    waiting = False
                    await send("proceed", None, "proceed")
                continue
            if not isinstance(item, StreamEvent):
                continue
            event = item.event
            printer(event)
            if isinstance(event, LogLine) and event.source == "engine" and "press p" in event.message:
                waiting = True
            elif isinstance(event, PhaseChanged | WindowStarted | Finished) or (
                isinstance(event, LogLine) and event.message.endswith(" proceeds")
            ):
                waiting = False  # that wait was answered or the flow moved on
            if isinstance(event, GateEvaluated) and event.gate.gate_id in approvals:
                if event.gate.status == GateStatus.NEEDS_SIGN_OFF:
                    to_sign.add(event.gate.gate_id)
                else:
                    to_sign.discard(event.gate.gate_id)
            if isinstance(event, Finished):
                outcome = event.outcome
                break
    except asyncio.CancelledError:
        if not stopped:
            raise
        err.write(
            f"{stopped[0]}: detached from {namespace}/{name}; the agent keeps driving it "
            f"(deploydeck attach {namespace}/{name} --agent {client.url} to watch again)\n"
        )
        return _DETACH_CODES[stopped[0]]
    except AgentError as exc:
        err.write(f"deploydeck: {exc}\n")
        return 1
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
    if outcome is None:
        err.write(f"deploydeck: the event stream of {namespace}/{name} ended before the run finished\n")
        return 1
    return EXIT_CODES[outcome]


# --- `run PLAN --agent URL` -----------------------------------------------------------------------


def _load_for_agent(path: Path) -> tuple[Any, dict[str, Any]] | None:
    """(plan, the YAML as written) or None after saying what is wrong. ``${VAR}``s unset here are
    fine: the agent fills them from its own environment (a secret never goes into the DeployRun)."""
    import yaml

    from core.plan import PlanError, load_plan

    try:
        plan = load_plan(path)
    except PlanError as exc:
        unset = [p for p in exc.problems if p.endswith("is not set")]
        if not unset or len(unset) != len(exc.problems):
            _say(f"invalid plan\n{exc}")
            return None
        plan = None
        print(f"note: {len(unset)} ${{VAR}} not set here; the agent fills them from its environment")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        _say(f"{path}: {exc}")
        return None
    if not isinstance(raw, dict):
        _say(f"{path}: a plan is a mapping")
        return None
    return plan, raw


def run_with_agent(args: argparse.Namespace) -> int:
    """Create the plan's DeployRun with the caller's kubeconfig credential, then follow it."""
    if args.json and not args.headless:
        _say("--json needs --headless")
        return EXIT_BAD_INPUT
    if args.actor:
        _say("--as does not apply with --agent: the agent knows you by your kubeconfig context (--context)")
        return EXIT_BAD_INPUT
    url = agent_url(args)
    if url is None:
        return EXIT_BAD_INPUT
    loaded = _load_for_agent(args.plan)
    if loaded is None:
        return EXIT_BAD_INPUT
    return asyncio.run(_run_with_agent(args, url, *loaded))


async def create_deployrun(
    token: Any, raw: dict[str, Any], *, namespace: str | None = None
) -> tuple[str, str, bool]:
    """POST the DeployRun to the cluster as the caller (kubectl create). (namespace, name, created):
    an existing run of the same plan is attached to, not replaced."""
    from core.adapters.kubernetes.api import KubeApi, KubeApiError
    from core.agent.crd import deployrun
    from core.agent.watch import runs_path
    from core.clock import SystemClock

    obj = deployrun(raw, namespace=namespace)
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    api = KubeApi(token.api_client, SystemClock(), credentials=token.credentials)
    try:
        await api.request("POST", runs_path(ns), body=obj)
    except KubeApiError as exc:
        if exc.status != 409:
            raise
        existing = await api.request("GET", f"{runs_path(ns)}/{name}")
        if existing.get("spec") != obj["spec"]:
            raise KubeApiError(
                f"DeployRun {ns}/{name} exists with another plan: delete it (kubectl delete deployrun -n {ns} "
                f"{name}; the agent rolls it back first) or change version.to",
                409,
                "AlreadyExists",
            ) from None
        return ns, name, False
    return ns, name, True


async def _run_with_agent(args: argparse.Namespace, url: str, plan: Any, raw: dict[str, Any]) -> int:
    from core.agent.client import AgentError
    from core.ports import ClusterError

    try:
        client, token, me = await connect(args, url)
    except (AgentError, ClusterError, ValueError) as exc:
        _say(str(exc))
        return EXIT_BAD_INPUT
    try:
        try:
            ns, name, created = await create_deployrun(token, raw)
        except ClusterError as exc:
            _say(f"cannot create the DeployRun: {exc}")
            return EXIT_BAD_INPUT
        if not created:
            done = (await client.run(ns, name)).row.outcome
            if done:
                from core.domain import EXIT_CODES, Outcome

                print(
                    f"DeployRun {ns}/{name} already ran this plan: {done}. To run it again, delete it "
                    f"(kubectl delete deployrun -n {ns} {name}) or change version.to",
                    file=sys.stderr,
                )
                return EXIT_CODES[Outcome(done)]
        how = "created" if created else "exists with this plan: attaching"
        print(
            f"DeployRun {ns}/{name} {how} as {me.username}; the agent at {client.url} drives it",
            file=sys.stderr,
        )
        if args.headless:
            from tui.headless import JsonPrinter, ProgressPrinter

            printer = JsonPrinter() if args.json else ProgressPrinter()
            return await follow_headless(
                client, ns, name, printer, approvals=list(args.approve), auto_proceed=True
            )
        return await dashboard(client, me, fleet=False, run=(ns, name), read_only=args.read_only)
    finally:
        await client.close()
        await token.close()
