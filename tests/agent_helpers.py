"""`deploydeck agent` replicas as child processes against `sim serve`, and DeployRuns to drive.

The plan of a DeployRun here is the environment's own sim-plan.yaml with its windows shortened, so a
whole rollout takes ~20 s; its two sign-offs are given by alice through the driving agent's API
(TokenReview and SubjectAccessReview on the simulated API server), as an attached client does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.adapters.kubernetes.credentials import load
from core.agent.crd import deployrun
from core.agent.drive import run_path
from core.clock import SystemClock
from tests.serve_helpers import REPO, Serve, child_env, deploydeck


def short_plan(
    serve: Serve, *, observe: str = "3s", steps: tuple[int, ...] = (5, 25, 50, 100)
) -> dict[str, Any]:
    """sim-plan.yaml, quick: short soak, steps and verification."""
    plan = yaml.safe_load(Path(serve.printed("plan")).read_text(encoding="utf-8"))
    plan["staging"]["soak"]["duration"] = "2s"
    plan["canary"]["steps"] = [{"weight": w, "observe": observe} for w in steps]
    plan["verification"]["duration"] = "3s"
    return plan


async def kube(serve: Serve, context: str = "alice") -> KubeApi:
    """A person's client (alice: a release manager) on the environment's API server."""
    client, credentials = await load(serve.printed("kubeconfig"), context)
    return KubeApi(client, SystemClock(), credentials=credentials)


async def create_run(api: KubeApi, plan: dict[str, Any], name: str = "checkout-1-5-0") -> dict[str, Any]:
    run = deployrun(plan, name=name, namespace="shop")
    return await api.request("POST", "/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns", body=run)


async def get_run(api: KubeApi, name: str = "checkout-1-5-0") -> dict[str, Any] | None:
    try:
        return await api.request("GET", run_path("shop", name))
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


async def wait_run(
    api: KubeApi,
    check: Callable[[dict[str, Any] | None], bool],
    what: str,
    timeout_s: float = 90.0,
    name: str = "checkout-1-5-0",
    seen: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any] | None:
    """Poll the DeployRun (every 0.1 s) until ``check`` holds; every object seen goes to ``seen``."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await get_run(api, name)
        if seen is not None:
            seen.append(last)
        if check(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last seen: {(last or {}).get('status')}")


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


SIGN_OFFS = ("rollback-plan", "dashboards-reviewed")


def token(serve: Serve, user: str) -> str:
    config = yaml.safe_load(Path(serve.printed("kubeconfig")).read_text(encoding="utf-8"))
    return next(u["user"]["token"] for u in config["users"] if u["name"] == user)


async def sign_off(serve: Serve, api: KubeApi, user: str = "alice", name: str = "checkout-1-5-0") -> None:
    """Sign the plan's pre-deploy sign-offs as ``user`` through the driving replica's API (its URL
    from the DeployRun's status.agent.url), once the engine waits for them, then proceed."""
    import httpx

    driven = await wait_run(
        api,
        lambda o: bool((status(o).get("agent") or {}).get("url")) and status(o).get("phase") == "preflight",
        "a replica driving the run",
        name=name,
    )
    url = status(driven)["agent"]["url"]
    headers = {"Authorization": f"Bearer {token(serve, user)}"}
    async with httpx.AsyncClient(timeout=10) as client:
        commands = [("signoff", {"gate": gate, "note": "checked"}) for gate in SIGN_OFFS]
        for verb, body in [*commands, ("proceed", {})]:  # then p: the pre-deploy gates are all green
            path = f"{url}/api/v1/namespaces/shop/runs/{name}/commands/{verb}"
            deadline = time.monotonic() + 30
            while True:  # the gate must have been evaluated (needs_sign_off) before it can be signed
                answer = await client.post(path, json=body, headers=headers)
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert answer.status_code == 200, f"{verb} {body}: {answer.status_code} {answer.text}"


class AgentProc:
    """`deploydeck agent` as a child process, with its own identity, the environment's agent
    credentials, the PostgreSQL log (or a file) and a short lease."""

    def __init__(
        self,
        serve: Serve,
        name: str,
        logs: Path,
        *,
        database: str | None,
        ttl_s: float,
        journal: Path | None = None,
        own_host: bool = False,
    ) -> None:
        """``own_host``: run it in a UTS namespace of its own, hostname ``name`` (``unshare -u``), as
        a replica on another node: a standby cannot then see that a dead holder's process is gone,
        and waits out the Lease's TTL as it would in a cluster."""
        self.name = name
        self.log_path = logs / f"{name}.log"
        args = ["agent", "--kubeconfig", str(serve.directory / "agent-kubeconfig.yaml"), "--port", "0"]
        args += ["--identity", name, "-n", "shop", "--api-port", "0"]
        if database:
            args += ["--database", database]
        elif journal is not None:
            args += ["--journal", str(journal)]
        self._log = self.log_path.open("w")
        argv = deploydeck(*args)
        if own_host:
            # unshare and sh exec in place: the pid is the agent's
            argv = ["unshare", "-u", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *argv]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file: nobody reads it while it runs, a pipe would fill
            env=child_env(DEPLOYDECK_LEASE_TTL=str(ttl_s)),
            cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> dict[str, float]:
        """Its /metrics, one entry per series (``name{labels}`` → value)."""
        import re

        import httpx

        found = re.search(r"health and metrics on (http://127\.0\.0\.1:\d+)", self.text())
        assert found, self.text()
        text = httpx.get(f"{found.group(1)}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


def run_cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=timeout_s,
    )


def logs(agents: list[AgentProc]) -> str:
    """Every replica's log, for a failure message."""
    return "".join(f"\n--- {a.name} (pid {a.pid}):\n{a.text()}" for a in agents)
