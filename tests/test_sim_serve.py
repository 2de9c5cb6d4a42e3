"""`deploydeck sim serve` is a complete environment for the real adapters (issue 11, item 6).

Every test starts the real command as a child process and talks to it only through what
it prints and writes (kubeconfig, sim-plan.yaml, sim-env.json), as a person would. The
end-to-end tests then run `deploydeck run DIR/sim-plan.yaml --headless --json` (the
production code path: real Kubernetes, Prometheus, Alertmanager, GitHub, probe and
webhook adapters) and read the result from its JSON lines and the environment's audit.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from core.sim.monitoring import free_port
from tests.serve_helpers import REPO, alive, child_env, deploydeck, run_plan, sim_serve, wait_gone

pytestmark = pytest.mark.real

# --- what it starts and writes ----------------------------------------------------------


def test_serve_writes_a_kubeconfig_and_a_real_adapter_plan_honours_port_and_holds_no_lease(
    tmp_path: Path,
) -> None:
    port = free_port()
    with sim_serve(tmp_path, "--port", str(port)) as env:
        kubeconfig, plan_path = env.printed("kubeconfig"), env.printed("plan")
        assert (
            Path(kubeconfig) == tmp_path / "kubeconfig.yaml" and Path(plan_path) == tmp_path / "sim-plan.yaml"
        )
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == f"https://127.0.0.1:{port}"  # --port honoured, TLS as a real server
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        assert {c["name"] for c in config["contexts"]} == {"alice", "bob", "carol", "dave"}
        assert Path(kubeconfig).stat().st_mode & 0o077 == 0  # bearer tokens inside

        plan = yaml.safe_load(Path(plan_path).read_text())
        assert plan["cluster"] == {"kind": "kube", "kubeconfig": kubeconfig}  # the real Kubernetes adapter
        state = env.state
        assert plan["prometheus"]["url"] == state["prometheus"]  # a real Prometheus, not the in-process one
        assert plan["alertmanager"]["url"] == state["alertmanager"]
        assert (
            httpx.get(f"{state['prometheus']}/api/v1/status/buildinfo", timeout=5).json()["status"]
            == "success"
        )
        assert httpx.get(f"{state['alertmanager']}/api/v2/status", timeout=5).status_code == 200
        assert plan["gates"]["ci"]["base_url"].startswith(state["control"])  # the GitHub-compatible endpoint

        # holds no lease: nothing in the namespace the driver's lease lives in
        token = next(u["user"]["token"] for u in config["users"] if u["name"] == "carol")
        trust = ssl.create_default_context(cafile=str(ca))  # (httpx deprecates verify=<path>)
        leases = httpx.get(
            f"https://127.0.0.1:{port}/apis/coordination.k8s.io/v1/namespaces/shop/leases",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
            verify=trust,
        ).json()
        assert leases["items"] == []
        # carol is a viewer: the API server refuses her writes
        denied = httpx.patch(
            f"https://127.0.0.1:{port}/apis/apps/v1/namespaces/shop/deployments/checkout",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"},
            content=b'{"spec":{"replicas":1}}',
            timeout=5,
            verify=trust,
        )
        assert denied.status_code == 403
        # who the credentials belong to is the kubeconfig's user, as `kubectl auth whoami` shows it
        review = httpx.post(
            f"https://127.0.0.1:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            headers={"Authorization": f"Bearer {token}"},
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            timeout=5,
            verify=trust,
        )
        assert review.json()["status"]["userInfo"]["username"] == "carol", review.text


def test_children_die_with_the_environment_even_on_sigkill(tmp_path: Path) -> None:
    with sim_serve(tmp_path) as env:
        children = env.state["children"]
        assert len(children) == 2 and all(alive(p) for p in children)  # Prometheus and Alertmanager
        env.proc.kill()  # no chance to clean up: the kernel's parent-death signal must do it
        env.proc.wait()
        assert wait_gone(children) == []


def test_sim_scenario_switches_the_running_environment_and_refuses_unknown_names(tmp_path: Path) -> None:
    with sim_serve(tmp_path) as env:
        assert env.state["scenario"] == "healthy"
        done = subprocess.run(
            deploydeck("sim", "scenario", "slow-canary", "--dir", str(tmp_path)),
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=REPO,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "slow-canary" in done.stdout
        assert env.control("status")["scenario"] == "slow-canary"
        bad = subprocess.run(
            deploydeck("sim", "scenario", "no-such", "--dir", str(tmp_path)),
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=REPO,
            timeout=30,
        )
        assert bad.returncode == 2 and "unknown scenario 'no-such'" in bad.stderr
    gone = subprocess.run(
        deploydeck("sim", "scenario", "healthy", "--dir", str(tmp_path)),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=30,
    )
    assert gone.returncode == 2 and "no `sim serve` running" in gone.stderr


# --- the production path end to end -------------------------------------------------------


@pytest.mark.slow
def test_run_against_sim_serve_completes_through_the_real_adapters_in_under_90s(tmp_path: Path) -> None:
    with sim_serve(tmp_path) as env:
        # the environment's own setup (the DeployRun CRD and RBAC, applied as the agent's
        # installer would) is not the run's: only what comes after is
        seeded = len(env.control("audit"))
        code, events, wall = run_plan(env.printed("plan"))
        finished = events[-1]
        assert finished["type"] == "finished" and finished["outcome"] == "completed", finished
        assert code == 0
        assert wall < 90.0, f"healthy rollout took {wall:.1f}s of wall time"
        gates = {e["gate"]["gate_id"]: e["gate"] for e in events if e["type"] == "gate_evaluated"}
        # each gate answered by its real adapter against the environment's servers
        assert (
            gates["ci-green"]["status"] == "pass" and "5/5 required checks" in gates["ci-green"]["evidence"]
        )
        assert gates["code-reviewed"]["status"] == "pass" and "(bob)" in gates["code-reviewed"]["evidence"]
        assert "Alertmanager" in gates["no-sev-incident"]["evidence"]
        assert (
            gates["error-budget"]["status"] == "pass" and "error ratio" in gates["error-budget"]["evidence"]
        )
        applied = [
            e["effective"] for e in events if e["type"] == "traffic_changed" and e.get("applied", True)
        ]
        assert [w for w in applied if w] == [5, 25, 50, 100]
        samples = [e for e in events if e["type"] == "analysis" and e["phase"] == "canary"]
        healthy = [s for s in samples if s["verdict"] == "healthy"]
        assert not [s for s in samples if s["verdict"] == "fired"]
        assert len(healthy) >= 8, samples  # three reads a step, a first one may still lack data
        assert all(s["canary_requests"] >= 20 for s in healthy)  # real PromQL over real scrapes
        # the cluster and the team channel saw it too
        writes = env.control("audit")[seeded:]
        accepted = [w for w in writes if w["status"] < 400]
        assert accepted and {w["user"] for w in accepted} == {"alice"}, accepted
        messages = env.control("messages")
        assert any(str(m["body"].get("text", "")).startswith("Deployed") for m in messages), messages


@pytest.mark.slow
def test_run_against_sim_serve_with_bad_canary_rolls_back_on_the_error_rule(tmp_path: Path) -> None:
    with sim_serve(tmp_path) as env:
        switched = subprocess.run(
            deploydeck("sim", "scenario", "bad-canary", "--dir", str(tmp_path)),
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=REPO,
            timeout=30,
        )
        assert switched.returncode == 0, switched.stderr
        code, events, _ = run_plan(env.printed("plan"))
        finished = events[-1]
        assert finished["type"] == "finished" and finished["outcome"] == "rolled_back", finished
        assert code == 3
        trigger = next(e for e in events if e["type"] == "rollback_triggered")
        assert trigger["automatic"] and trigger["rule"] == "error_rate", trigger
        assert trigger["weight_at_trigger"] >= 25  # the scenario's fault starts at 25 %
        steps = {e["action"]: e for e in events if e["type"] == "rollback_step"}
        assert steps["weight_reset"]["ok"] and steps["verify"]["ok"]


@pytest.mark.slow
def test_without_prometheus_it_says_so_and_serves_the_simulated_metrics_api(tmp_path: Path) -> None:
    with sim_serve(tmp_path / "env", real_servers=False) as env:
        assert any("prometheus is not installed" in line for line in env.lines), env.lines
        assert env.state["children"] == []  # no real servers were started
        plan = yaml.safe_load(Path(env.printed("plan")).read_text())
        assert plan["prometheus"]["url"] == env.state["prometheus"]
        built = httpx.get(f"{env.state['prometheus']}/api/v1/status/buildinfo", timeout=5).json()
        assert built["data"]["version"] == "deploydeck-sim"
        code, events, wall = run_plan(env.printed("plan"))
        assert code == 0 and events[-1]["outcome"] == "completed", events[-1]
        gates = {e["gate"]["gate_id"]: e["gate"] for e in events if e["type"] == "gate_evaluated"}
        assert (
            gates["error-budget"]["status"] == "pass" and "error ratio" in gates["error-budget"]["evidence"]
        )
        healthy = [e for e in events if e["type"] == "analysis" and e["verdict"] == "healthy"]
        assert len(healthy) >= 8 and wall < 90.0


def test_a_port_in_use_or_out_of_range_is_bad_input(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            deploydeck("sim", "serve", "--port", str(port), "--dir", str(tmp_path / "env")),
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=REPO,
            timeout=60,
        )
    assert done.returncode == 2 and "address already in use" in done.stderr, done.stderr
    assert not (
        tmp_path / "env" / "sim-plan.yaml"
    ).exists()  # nothing handed out for a world that is not there
    wrong = subprocess.run(
        deploydeck("sim", "serve", "--port", "70000"),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    assert wrong.returncode == 2 and "not a TCP port" in wrong.stderr
