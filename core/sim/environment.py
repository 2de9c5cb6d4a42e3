"""`deploydeck sim serve`: a complete stand-in environment for the real adapters.

It composes, on loopback: the simulated Kubernetes API server (one token per person:
alice and bob, release managers; carol, read-only; dave, the change's author) seeded
with a staging and a production service; the simulated workload of each, serving
health endpoints and Prometheus ``/metrics``; a real Prometheus scraping both and a
real Alertmanager when their binaries are installed; and the small peers in
:mod:`core.sim.env_endpoints` (GitHub, team channel, dependencies, control).

It holds no lease: the environment is the world, never a driver. Into its directory it
writes a kubeconfig, ``sim-plan.yaml`` (``cluster.kind: kube``: every port goes through
its real adapter) and ``sim-env.json`` (where the control API is), so
``deploydeck run DIR/sim-plan.yaml`` is the production code path end to end.

Time: the plan's windows are seconds of wall time; the *scenario's* clock runs ``speed``
times faster so that "5xx from 60 s at 25 %" happens a few seconds into the step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from core.clock import ScaledClock
from core.sim.env_endpoints import Endpoints
from core.sim.kube.faults import FaultConfig
from core.sim.kube.server import SimKubeServer
from core.sim.scenarios import Scenario, get_scenario
from core.sim.workload import SimWorkload

#: the scenario's clock against the wall clock ("60 s at 25 %" is 3 s)
SPEED = 20.0
#: requests the production workload serves per wall second, split by the canary weight; enough
#: that a 2 s verification read (the analysis interval) resolves a quarter of a percentage point
WALL_RPS = 4000.0
STATE_FILE = "sim-env.json"
PLAN_FILE = "sim-plan.yaml"
KUBECONFIG_FILE = "kubeconfig.yaml"
#: the agent's own credentials (a ServiceAccount in a real cluster), apart from the people's kubeconfig
AGENT_KUBECONFIG_FILE = "agent-kubeconfig.yaml"
AGENT_USER = "system:serviceaccount:deploydeck:deploydeck-agent"

SERVICE, FROM, TO = "checkout", "1.4.2", "1.5.0"
IMAGE = "registry.example.com/shop/checkout"
PROD_NS, STAGING_NS = "shop", "shop-staging"
REPO, COMMIT, PR = "shop/checkout", "9f3c2ab4d1e0", 1184
#: who may do what on the simulated API server (None: every verb)
USERS: dict[str, set[str] | None] = {
    "alice": None,
    "bob": None,
    "carol": {"get", "list", "watch"},
    "dave": None,
}
#: the groups a TokenReview says each person is in; deploy/rbac-users.yaml's ClusterRoles are bound
#: to them in both namespaces (dave, the change's author, may act too: the engine's author rule, not
#: RBAC, keeps him from signing his own change)
GROUPS: dict[str, list[str]] = {
    "alice": ["deploydeck:release-managers"],
    "bob": ["deploydeck:release-managers"],
    "carol": ["deploydeck:viewers"],
    "dave": ["shop:developers"],
}
BINDINGS = (
    ("release-managers", "deploydeck-release-manager", "Group", "deploydeck:release-managers"),
    ("dave", "deploydeck-release-manager", "User", "dave"),
    ("viewers", "deploydeck-viewer", "Group", "deploydeck:viewers"),
)
_RBAC_USERS = Path(__file__).resolve().parents[2] / "deploy" / "rbac-users.yaml"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _AuditedKube(SimKubeServer):
    """The simulated API server, recording every write request, its answer and who sent it.

    Fencing tests ask "did driver A write after it woke?"; the server is the only
    witness that cannot be fooled by the driver's own bookkeeping.
    """

    def __init__(self, names: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = names  # token -> person
        self.writes: list[dict[str, Any]] = []

    async def _entry(self, request: Any) -> Any:
        received = time.time()
        faulty = self.faults.error_rate_500
        response = await super()._entry(request)
        if request.method in _WRITES:
            header = request.headers.get("Authorization", "")
            user = self.names.get(header.removeprefix("Bearer "), "?")
            self.writes.append(
                {
                    "user": user,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    # epoch seconds, compared with other processes' timestamps: when the request
                    # arrived (before any fault applied to it) and when it was answered
                    "received": received,
                    "error_rate_500": faulty,
                    "at": time.time(),
                }
            )
        return response


def scaled(scenario: Scenario, wall_rps: float = WALL_RPS, speed: float = SPEED) -> Scenario:
    """The scenario on a clock `speed` times faster, still serving `wall_rps` per wall second."""
    return scenario.model_copy(update={"requests_per_second": wall_rps / speed})


class SimEnvironment:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`notes` says what runs where."""

    def __init__(
        self,
        directory: Path,
        *,
        scenario: str = "healthy",
        port: int = 0,
        speed: float = SPEED,
        use_real_servers: bool = True,
        pod_start_delay_s: float = 0.3,
    ) -> None:
        self.directory = directory
        self.scenario_name = scenario
        self.scenario = get_scenario(scenario)
        self.port = port
        self.speed = speed
        self.use_real_servers = use_real_servers
        self.tokens = {name: secrets.token_hex(16) for name in USERS}
        self.agent_token = secrets.token_hex(16)
        names = {token: name for name, token in self.tokens.items()} | {self.agent_token: AGENT_USER}
        self.kube = _AuditedKube(
            names,
            pod_ready_delay_s=pod_start_delay_s,
            tokens={self.tokens[name]: verbs for name, verbs in USERS.items()} | {self.agent_token: None},
            usernames=names,
            groups=GROUPS,
            # HTTPS, as a real API server: kubectl sends bearer tokens only over TLS (a self-signed
            # serving certificate from `openssl`; without it, plain HTTP and the adapter only)
            tls=shutil.which("openssl") is not None,
        )
        self.github_token = secrets.token_hex(16)
        self.notes: list[str] = []
        self.workloads: dict[str, SimWorkload] = {}
        self.endpoints: Endpoints | None = None
        self.prometheus: Any = None
        self.sim_prometheus: Any = None
        self.alertmanager: Any = None
        self.prometheus_url: str | None = None
        self.alertmanager_url = ""
        self.kubeconfig = directory / KUBECONFIG_FILE
        self.agent_kubeconfig = directory / AGENT_KUBECONFIG_FILE
        self.plan_path = directory / PLAN_FILE
        self.state_path = directory / STATE_FILE
        self._workdirs: list[Path] = []

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await self.kube.start(port=self.port)
        old = f"{IMAGE}:{FROM}"
        self.kube.seed_service(
            namespace=STAGING_NS,
            deployment=SERVICE,
            canary_deployment=f"{SERVICE}-canary",
            image=old,
            replicas=4,
            service=SERVICE,
        )
        self.kube.seed_service(
            namespace=PROD_NS,
            deployment=SERVICE,
            canary_deployment=f"{SERVICE}-canary",
            image=old,
            replicas=20,
            service=SERVICE,
        )
        clock = ScaledClock(self.speed)
        for role, namespace, weight in (
            ("production", PROD_NS, self._production_share),
            ("staging", STAGING_NS, self._staging_share),
        ):
            # staging sees the new version on all its traffic, before any canary fault
            scenario = self.scenario if role == "production" else get_scenario("healthy")
            rps = WALL_RPS
            workload = SimWorkload(
                scaled(scenario, rps, self.speed),
                service=SERVICE,
                namespace=namespace,
                stable_version=FROM,
                canary_version=TO,
                weight=weight,
                clock=clock,
                seed=7 if role == "production" else 8,
            )
            await workload.start()
            self.workloads[role] = workload
        self.endpoints = Endpoints(
            token=self.github_token,
            repo=REPO,
            commit=COMMIT,
            pull_request=PR,
            author="dave",
            reviewer="bob",
            switch_scenario=self.switch_scenario,
            set_faults=self.set_faults,
            audit=lambda: list(self.kube.writes),
            status=self.status,
        )
        await self.endpoints.start()
        await self._start_monitoring()
        self._write_kubeconfig()
        await self._install_crd()
        self._write_plan()
        self.state_path.write_text(json.dumps(self.status(), indent=2) + "\n", encoding="utf-8")
        self.notes.insert(0, f"simulated Kubernetes API at {self.kube.url} (users alice, bob, carol, dave)")
        self.notes.append(f"GitHub, team channel, dependencies and control at {self.endpoints.base_url}")

    async def _start_monitoring(self) -> None:
        from core.sim.monitoring import AlertmanagerServer, PrometheusServer

        assert self.endpoints is not None
        targets = [w.target for w in self.workloads.values()]
        prometheus = shutil.which("prometheus") if self.use_real_servers else None
        if prometheus:
            workdir = Path(tempfile.mkdtemp(prefix="deploydeck-env-prom-"))
            self._workdirs.append(workdir)
            server = PrometheusServer(prometheus, workdir)
            server.targets = targets
            # started from this (the main) thread: its parent-death signal follows this thread
            server.start()
            self.prometheus, self.prometheus_url = server, server.url
            # rate() needs a few scrapes before the first gate asks for it
            await asyncio.to_thread(server.wait_for_scrapes, targets[0], 3)
            self.notes.append(f"real Prometheus at {server.url} scraping the workload every 1 s")
        else:
            from core.sim.sim_prometheus import SimPrometheus

            self.sim_prometheus = SimPrometheus(list(self.workloads.values()))
            self.prometheus_url = await self.sim_prometheus.start()
            # as with the real one: rate() needs a few scrapes before the first gate asks for it
            await asyncio.sleep(3 * self.sim_prometheus.interval_s)
            self.notes.append(
                "prometheus is not installed (make real-deps): serving the simulated metrics API "
                f"(Prometheus's query API, a PromQL subset over the workload's own samples) at {self.prometheus_url}"
            )
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if alertmanager and self.use_real_servers:
            workdir = Path(tempfile.mkdtemp(prefix="deploydeck-env-am-"))
            self._workdirs.append(workdir)
            am = AlertmanagerServer(alertmanager, workdir)
            am.start()
            self.alertmanager, self.alertmanager_url = am, am.url
            self.notes.append(f"real Alertmanager at {am.url}")
        else:
            self.alertmanager_url = f"{self.endpoints.base_url}/alertmanager"
            self.notes.append(
                f"Alertmanager not installed: an empty v2 alerts API at {self.alertmanager_url}"
            )

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.state_path.unlink()
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()
        if self.sim_prometheus is not None:
            await self.sim_prometheus.stop()
        for workload in self.workloads.values():
            await workload.stop()
        if self.endpoints is not None:
            await self.endpoints.stop()
        await self.kube.stop()
        for workdir in self._workdirs:
            shutil.rmtree(workdir, ignore_errors=True)

    # --- what the workload sees -----------------------------------------------------

    def _production_share(self) -> int:
        """The new version's share of production traffic, as the API server's objects say it."""
        stable = self.kube.deployment_image(PROD_NS, SERVICE)
        canary = self.kube.deployment_image(PROD_NS, f"{SERVICE}-canary")
        weight = self.kube.canary_weight(PROD_NS, SERVICE, f"{SERVICE}-canary", "replicas")
        new = f"{IMAGE}:{TO}"
        if stable == new:
            return 100 - weight if canary != new else 100
        return weight if canary == new else 0

    def _staging_share(self) -> int:
        return 100 if self.kube.deployment_image(STAGING_NS, SERVICE) == f"{IMAGE}:{TO}" else 0

    # --- control -----------------------------------------------------------------

    def switch_scenario(self, name: str) -> str:
        """From now on the production canary behaves as scenario `name` (ValueError if unknown)."""
        scenario = get_scenario(name)
        self.workloads["production"].scenario = scaled(scenario, WALL_RPS, self.speed)
        self.scenario, self.scenario_name = scenario, name
        with contextlib.suppress(OSError):
            self.state_path.write_text(json.dumps(self.status(), indent=2) + "\n", encoding="utf-8")
        return scenario.title

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Fault injection on the API server (FaultConfig fields); ValueError on a bad field."""
        from pydantic import ValidationError

        unknown = sorted(set(changes) - set(FaultConfig.model_fields))
        if unknown:  # a typo must not read as "fault injected"
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        try:
            config = FaultConfig.model_validate({**self.kube.faults.model_dump(), **changes})
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        for key, value in config.model_dump().items():
            setattr(self.kube.faults, key, value)
        return self.kube.faults.model_dump()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "scenario": self.scenario_name,
            "kube": self.kube.url,
            "prometheus": self.prometheus_url,
            "alertmanager": self.alertmanager_url,
            "control": self.endpoints.base_url if self.endpoints else "",
            "kubeconfig": str(self.kubeconfig),
            "agent_kubeconfig": str(self.agent_kubeconfig),
            "plan": str(self.plan_path),
            # the real servers started for this environment (they die with it)
            "children": [s.proc.pid for s in (self.prometheus, self.alertmanager) if s and s.proc],
        }

    # --- files -------------------------------------------------------------------

    def _write_kubeconfig(self) -> None:
        cluster = "deploydeck-sim"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": self._cluster_entry()}],
            "users": [{"name": n, "user": {"token": t}} for n, t in self.tokens.items()],
            "contexts": [
                {"name": n, "context": {"cluster": cluster, "user": n, "namespace": PROD_NS}} for n in USERS
            ],
            "current-context": "alice",
            "preferences": {},
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.kubeconfig.chmod(0o600)  # it holds four bearer tokens
        agent = {
            **config,
            "users": [{"name": "deploydeck-agent", "user": {"token": self.agent_token}}],
            "contexts": [
                {"name": "deploydeck-agent", "context": {"cluster": cluster, "user": "deploydeck-agent"}}
            ],
            "current-context": "deploydeck-agent",
        }
        self.agent_kubeconfig.write_text(yaml.safe_dump(agent, sort_keys=False), encoding="utf-8")
        self.agent_kubeconfig.chmod(0o600)

    async def _install_crd(self) -> None:
        """The DeployRun CRD (deploy/crd.yaml's content) and the people's Roles (deploy/rbac-users.yaml,
        bound as GROUPS/BINDINGS say), so `kubectl apply` of a DeployRun, an agent (`sim serve --agent`,
        or `deploydeck agent --kubeconfig DIR/agent-kubeconfig.yaml`) and its permission checks work."""
        from core.adapters.kubernetes.api import KubeApi
        from core.adapters.kubernetes.credentials import load
        from core.agent.crd import crd
        from core.clock import SystemClock

        client, credentials = await load(str(self.agent_kubeconfig), None)
        api = KubeApi(client, SystemClock(), credentials=credentials)
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        group = "rbac.authorization.k8s.io"
        try:
            await api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd())
            # a checkout has deploy/; an installed package does not: then every SAR says no
            text = _RBAC_USERS.read_text(encoding="utf-8") if _RBAC_USERS.is_file() else ""
            for doc in yaml.safe_load_all(text):
                if doc and doc.get("kind") == "ClusterRole":
                    await api.request("POST", f"{rbac}/clusterroles", body=doc)
            for namespace in (PROD_NS, STAGING_NS):
                for name, role, kind, subject in BINDINGS:
                    binding = {
                        "apiVersion": f"{group}/v1",
                        "kind": "RoleBinding",
                        "metadata": {"name": name, "namespace": namespace},
                        "subjects": [{"kind": kind, "apiGroup": group, "name": subject}],
                        "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": role},
                    }
                    await api.request("POST", f"{rbac}/namespaces/{namespace}/rolebindings", body=binding)
        finally:
            await api.close()

    def _cluster_entry(self) -> dict[str, str]:
        entry = {"server": self.kube.url}
        if self.kube.cert is not None:
            entry["certificate-authority-data"] = base64.b64encode(self.kube.cert.ca_pem).decode()
        return entry

    def _write_plan(self) -> None:
        from core.plan import load_plan

        self.plan_path.write_text(plan_text(self), encoding="utf-8")
        self.plan_path.chmod(0o600)  # the GitHub token is in it
        load_plan(self.plan_path)  # what we hand out must load: a mistake here fails `sim serve`, not `run`


def plan_text(env: SimEnvironment) -> str:
    """sim-plan.yaml: the environment's service through the real adapters, with short windows."""
    assert env.endpoints is not None
    aux = env.endpoints.base_url
    prod, staging = env.workloads["production"].base_url, env.workloads["staging"].base_url
    target = {"context": "alice", "strategy": "replicas", "rollout_timeout": "60s"}
    plan: dict[str, Any] = {
        "service": SERVICE,
        "namespace": PROD_NS,
        "version": {"from": FROM, "to": TO, "image": f"{IMAGE}:{TO}"},
        "change": {
            "id": "CHG-2041",
            "class": "normal",
            "author": "dave",
            "repo": REPO,
            "commit": COMMIT,
            "pull_request": PR,
            "tickets": ["SHOP-311"],
            "description": "Retry payment authorisation on 502 from the card gateway",
        },
        "cluster": {"kind": "kube", "kubeconfig": str(env.kubeconfig)},
        "targets": {
            "staging": {
                **target,
                "namespace": STAGING_NS,
                "deployment": SERVICE,
                "replicas": 4,
                "health": {
                    "live": f"{staging}/canary/health/live",
                    "ready": f"{staging}/canary/health/ready",
                },
            },
            "production": {
                **target,
                "namespace": PROD_NS,
                "deployment": SERVICE,
                "replicas": 20,
                "canary_deployment": f"{SERVICE}-canary",
                "service": SERVICE,
                "health": {"live": f"{prod}/stable/health/live", "ready": f"{prod}/stable/health/ready"},
            },
        },
        "alertmanager": {"url": env.alertmanager_url, "timeout": "5s"},
        "gates": {
            "timezone": "UTC",
            "freeze": {"no_fridays": False},
            "ci": {"provider": "github", "base_url": f"{aux}/github", "token": env.github_token},
            "error_budget": {"objective": 99.0},
            "dependencies": [
                {"name": "payments-api", "url": f"{aux}/deps/payments-api/health/ready"},
                {"name": "postgres", "url": f"{aux}/deps/postgres/health/ready"},
            ],
            "manual": [
                # the change's author (dave) may not vouch for its rollback plan: another person signs
                {
                    "id": "rollback-plan",
                    "title": "Rollback plan documented",
                    "policy": "POL-007",
                    "author_may_sign": False,
                },
                {"id": "dashboards-reviewed", "title": "Dashboards reviewed by on-call", "policy": "POL-008"},
            ],
            "timeout": "5s",
            "refresh": "2s",
        },
        "staging": {
            "e2e": {"command": f"curl -fsS {aux}/e2e", "timeout": "30s"},
            "new_errors_query": 'sum(increase(log_messages_total{namespace="shop-staging",level="error"}[1m]))'
            " or vector(0)",
            # 6 s of traffic resolve ±0.06 pp: the production plan's 0.1 pp would flake here
            "soak": {"duration": "6s", "max_error_delta_pp": 0.3},
        },
        "canary": {"steps": [{"weight": w, "observe": "6s"} for w in (5, 25, 50, 100)]},
        "analysis": {
            "interval": "2s",
            "lookback": "10s",
            "min_requests": 20,
            "max_blind_intervals": 5,
            "blind_pause_timeout": "30s",
            "health_urls": [f"{prod}/canary/health/ready"],
        },
        "verification": {
            "duration": "8s",
            "restore_timeout": "30s",
            # a 2 s read holds a few thousand requests: ±0.1 pp of noise against 0.25 pp would flake
            "max_error_delta_pp": 0.5,
            "slo": {"p50_ms": 100, "p95_ms": 250, "p99_ms": 400, "max_error_rate_pct": 1.0},
            "smoke": [{"name": "checkout page", "url": f"{prod}/canary/health/live"}],
            "synthetics": [
                {"name": "place order", "url": f"{aux}/synthetic/order", "expect_body": '"ok":true'}
            ],
            "on_failure": "ask",
        },
        "notifications": {
            "webhooks": [{"name": "#deploys", "kind": "slack", "url": f"{aux}/webhook/deploys"}],
            "timeout": "2s",
            "retries": 2,
        },
        "journal": {"path": str(env.directory / "deployments.jsonl")},
    }
    plan["prometheus"] = {"url": env.prometheus_url, "timeout": "5s", "retries": 1}
    header = (
        "# Written by `deploydeck sim serve`: the simulated environment through the real adapters.\n"
        f"#   deploydeck run {env.plan_path} --headless --approve rollback-plan "
        "--approve dashboards-reviewed --as alice\n"
    )
    return header + yaml.safe_dump(plan, sort_keys=False, width=120)


def read_state(directory: Path) -> dict[str, Any]:
    """The running environment's sim-env.json (FileNotFoundError when none runs there)."""
    return dict(json.loads((directory / STATE_FILE).read_text(encoding="utf-8")))
