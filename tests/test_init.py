"""`deploydeck init` (issue 15, section 1): a commented plan for an existing service, each guess
marked; and the first hour's goal, from `init` to a completed run on the simulated world in at most
five commands."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.kubernetes.api import KubeApiError
from core.plan import load_plan
from core.plan_init import discover, render_plan
from tests.test_cli import ROOT, deploydeck


class FakeApi:
    """GET answers from a dict of path → object; anything else is a 404, as for a kind not served."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path))
        if path not in self.objects:
            raise KubeApiError(f"{path} not found", 404)
        return self.objects[path]


def _deployment() -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz/ready", "port": 8080}}
    return {
        "metadata": {"name": "payments"},
        "spec": {
            "replicas": 6,
            "template": {
                "metadata": {"labels": {"app": "payments", "tier": "api"}},
                "spec": {
                    "containers": [
                        {"name": "istio-proxy", "image": "istio/proxyv2:1.22"},
                        {
                            "name": "payments",
                            "image": "registry.example.com/pay/payments:2.3.1",
                            "readinessProbe": probe,
                            "livenessProbe": {"httpGet": {"path": "/healthz/live", "port": 8080}},
                        },
                    ]
                },
            },
        },
    }


NS = "/apis/apps/v1/namespaces/pay"


def _cluster(*, route: bool, hpa: bool) -> FakeApi:
    objects: dict[str, Any] = {
        f"{NS}/deployments/payments": _deployment(),
        "/api/v1/namespaces/pay/services": {
            "items": [
                {"metadata": {"name": "other"}, "spec": {"selector": {"app": "other"}}},
                {
                    "metadata": {"name": "payments-svc"},
                    "spec": {"selector": {"app": "payments"}, "ports": [{"port": 8080}]},
                },
            ]
        },
        "/apis/networking.k8s.io/v1/namespaces/pay/ingresses": {"items": []},
    }
    if route:
        objects["/apis/gateway.networking.k8s.io/v1/namespaces/pay/httproutes"] = {
            "items": [
                {
                    "metadata": {"name": "payments-route"},
                    "spec": {"rules": [{"backendRefs": [{"name": "payments-svc", "port": 8080}]}]},
                }
            ]
        }
    if hpa:
        objects["/apis/autoscaling/v2/namespaces/pay/horizontalpodautoscalers"] = {
            "items": [
                {
                    "metadata": {"name": "payments-hpa"},
                    "spec": {
                        "scaleTargetRef": {"kind": "Deployment", "name": "payments"},
                        "minReplicas": 3,
                        "maxReplicas": 12,
                    },
                }
            ]
        }
    return FakeApi(objects)


async def test_init_reads_container_probes_service_route_and_hpa(tmp_path: Path) -> None:
    api = _cluster(route=True, hpa=True)
    found = await discover(api, "pay", "payments")
    assert all(method == "GET" for method, _ in api.calls)  # init changes nothing
    text = render_plan(
        found, service="payments", namespace="pay", deployment="payments", context="prod", image=None
    )
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(text.replace('"TODO"', '"2.4.0"').replace(":TODO ", ":2.4.0 "))
    plan = load_plan(plan_file)  # what init writes is a valid plan once the TODOs are filled
    prod = plan.targets.production
    assert (prod.container, prod.service, prod.strategy, prod.httproute) == (
        "payments",
        "payments-svc",
        "gateway",
        "payments-route",
    )
    assert prod.health is not None and prod.health.ready == "http://payments-svc.pay.svc:8080/healthz/ready"
    assert plan.version.from_ == "2.3.1"
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if "#" in line}
    assert "guess: named like the Deployment (others: istio-proxy)" in lines["container"]
    assert "guess: HTTPRoute payments-route routes to the Service" in lines["strategy"]
    assert "guess: the container's readiness/liveness probes" in lines["health"]
    assert "HPA payments-hpa scales payments" in text
    assert "TODO: the image to ship" in text


async def test_init_without_a_route_proposes_replicas_from_the_deployment() -> None:
    found = await discover(_cluster(route=False, hpa=False), "pay", "payments")
    text = render_plan(
        found, service="payments", namespace="pay", deployment="payments", context=None, image=None
    )
    data = yaml.safe_load(text)
    assert data["targets"]["production"]["strategy"] == "replicas"
    assert data["targets"]["production"]["replicas"] == 6
    assert "guess: the Deployment's spec.replicas" in text


def test_init_without_a_cluster_writes_the_template_and_it_checks(tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    wrote = deploydeck("init", "-o", str(out), tmp_path=tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    assert "no cluster read" in out.read_text()
    again = deploydeck("init", "-o", str(out), tmp_path=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    checked = deploydeck("check", str(out), "--sim", tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_of_a_missing_deployment_is_bad_input(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    result = deploydeck(
        "init", "nope", "--kubeconfig", str(kubeconfig), "-o", str(tmp_path / "p.yaml"), tmp_path=tmp_path
    )
    assert result.returncode == 2 and "deploydeck init: kubeconfig" in result.stderr
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.timeout(180)
def test_from_init_to_a_completed_run_in_at_most_five_commands(tmp_path: Path) -> None:
    """The first hour, as a script: a stand-in cluster, init reading it, check, run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEPLOYDECK_STATE_DIR": str(tmp_path / "state")}
    dd = f"{shlex.quote(sys.executable)} -m tui.cli"
    script = [
        f"{dd} sim serve --dir {tmp_path}",  # stays up: the cluster init reads
        f"{dd} init checkout --namespace shop --context alice --kubeconfig {tmp_path}/kubeconfig.yaml "
        f"--image registry.example.com/shop/checkout:1.5.0 -o {tmp_path}/plan.yaml",
        f"{dd} check {tmp_path}/plan.yaml --sim",
        f"{dd} run {tmp_path}/plan.yaml --sim --headless --json --speed max "
        "--approve rollback-plan --approve dashboards-reviewed --as alice",
    ]
    assert len(script) <= 5
    serve = subprocess.Popen(shlex.split(script[0]), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        # sim serve says what runs where, then `kubeconfig: PATH` and `plan: PATH`
        while not (line := serve.stdout.readline()).startswith("kubeconfig: "):
            assert line, "sim serve exited before printing its kubeconfig"
        results = [
            subprocess.run(shlex.split(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
            for cmd in script[1:]
        ]
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=20)
    init, check, run = results
    assert init.returncode == 0, init.stderr
    assert "guesses" in init.stdout
    plan = (tmp_path / "plan.yaml").read_text()
    assert 'from: "1.4.2"' in plan and "guess: the running image's tag" in plan
    assert check.returncode == 0, check.stdout + check.stderr
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    last = json.loads(run.stdout.splitlines()[-1])
    assert (last["type"], last["outcome"]) == ("finished", "completed")


def test_check_says_what_would_satisfy_each_unmet_gate(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    text = (ROOT / "examples" / "minimal.yaml").read_text()
    plan.write_text(text.replace("objective: 99.0", "objective: 99.99"))
    result = deploydeck("check", str(plan), "--sim", tmp_path=tmp_path)
    assert result.returncode == 4
    hints = result.stdout.split("To satisfy:\n", 1)[1].splitlines()
    assert (
        "  rollback-plan: run with --approve rollback-plan --as NAME (or press s in the dashboard)" in hints
    )
    assert any(h.startswith("  error-budget: gates.error_budget.objective") for h in hints)
    assert not any("verify-" in h for h in hints)  # checked later, not unmet now
