"""`deploydeck run PLAN --agent URL --headless --json` end to end: `sim serve --agent` (the simulated
cluster with the DeployRun CRD and a real `deploydeck agent` driving DeployRuns, its API on loopback),
and the command line as a release manager types it, with her kubeconfig context.

The DeployRun is created with alice's credential through the Kubernetes API, the agent drives it,
the command follows the agent's event stream: it signs the approved gates as alice, answers the
agent's "press p" waits as the embedded headless mode would, prints the same JSON lines, and exits
with the outcome's code. Running the same plan again says it already ran.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from core.events import GateSignedOff, parse_event
from tests.serve_helpers import REPO, child_env, deploydeck, sim_serve

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.timeout(240)]


def quick_plan(plan_path: str, out: Path) -> Path:
    """The environment's plan with short windows; its manual gates kept (signed with --approve)."""
    plan = yaml.safe_load(Path(plan_path).read_text(encoding="utf-8"))
    plan["staging"]["soak"]["duration"] = "2s"
    plan["canary"]["steps"] = [{"weight": w, "observe": "3s"} for w in (5, 50, 100)]
    plan["verification"]["duration"] = "4s"
    out.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return out


def run_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        deploydeck("run", *args), capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=180
    )


def test_run_with_agent_headless_json_creates_the_deployrun_and_follows_it_to_the_end(tmp_path: Path) -> None:
    with sim_serve(tmp_path / "env", "--agent") as serve:
        url = serve.printed("agent")
        plan = quick_plan(serve.printed("plan"), tmp_path / "plan.yaml")
        who = ["--kubeconfig", serve.printed("kubeconfig"), "--context", "alice"]
        approve = ["--approve", "rollback-plan", "--approve", "dashboards-reviewed"]
        done = run_agent(str(plan), "--agent", url, *who, "--headless", "--json", *approve)
        assert done.returncode == 0, done.stderr
        events = [parse_event(json.loads(line)) for line in done.stdout.splitlines()]
        assert events[-1].type == "finished" and events[-1].outcome.value == "completed"  # type: ignore[attr-defined]
        assert len({e.deploy_id for e in events}) == 1
        signed = [e for e in events if isinstance(e, GateSignedOff)]
        assert {(e.gate_id, e.actor, e.identity) for e in signed} == {
            ("rollback-plan", "alice", "authenticated"),
            ("dashboards-reviewed", "alice", "authenticated"),
        }
        assert "DeployRun shop/checkout-1-5-0 created as alice" in done.stderr

        again = run_agent(str(plan), "--agent", url, *who, "--headless", "--json")
        assert again.returncode == 0
        assert "already ran this plan: completed" in again.stderr

        # carol (a viewer) may not create DeployRuns: said by the API server, exit 2
        refused = run_agent(
            str(plan),
            "--agent",
            url,
            "--kubeconfig",
            serve.printed("kubeconfig"),
            "--context",
            "carol",
            "--headless",
        )
        assert refused.returncode == 2 and "cannot create the DeployRun" in refused.stderr


def test_attach_on_a_terminal_lists_the_fleet_opens_a_run_and_leaves_it_to_the_agent(tmp_path: Path) -> None:
    import asyncio

    from tests.agent_helpers import create_run, get_run, kube
    from tests.pty_helpers import Terminal

    with sim_serve(tmp_path / "env", "--agent") as serve:
        plan = yaml.safe_load(Path(quick_plan(serve.printed("plan"), tmp_path / "plan.yaml")).read_text())

        async def create() -> None:
            api = await kube(serve, "alice")
            try:
                await create_run(api, plan)  # its manual gates wait for a person: it stays in flight
            finally:
                await api.close()

        asyncio.run(create())
        argv = deploydeck(
            "attach", "--agent", serve.printed("agent"), "--kubeconfig", serve.printed("kubeconfig")
        )
        term = Terminal([*argv, "--context", "bob"], cwd=REPO, env=child_env(DEPLOYDECK_DEBUG="0"))
        try:
            term.wait_for(
                lambda: "you: bob" in term.text and "checkout 1.4.2 → 1.5.0" in term.text, 60, "the fleet"
            )
            term.send("\r")  # Enter: the dashboard of the highlighted run
            term.wait_for(lambda: "Rollback plan documented" in term.text, 60, "the run's dashboard")
            term.send("q")  # back to the fleet (nothing to confirm: the agent keeps the run)
            term.pump(1.0)
            term.send("q")  # and out
            assert term.proc.wait(timeout=20) == 0
        finally:
            term.close()

        async def still_there() -> dict[str, object]:
            api = await kube(serve, "alice")
            try:
                return (await get_run(api)) or {}
            finally:
                await api.close()

        status = asyncio.run(still_there()).get("status") or {}
        assert not status.get("outcome")  # watching and leaving changed nothing
