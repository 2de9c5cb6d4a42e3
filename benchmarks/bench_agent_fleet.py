"""One agent drives 100 concurrent DeployRuns on the simulated world (issue 12): its CPU, its memory,
and how late the slowest analysis interval came.

Run: python benchmarks/bench_agent_fleet.py  (or `make bench`; BENCH_FLEET_RUNS to change 100).
The world: in this process one simulated API server with 100 services (production and staging
Deployments, the DeployRun CRD, deploy/rbac-users.yaml's roles) and the GitHub/Alertmanager
stand-ins; the 200 simulated workloads (traffic, health endpoints, /metrics) and the simulated
Prometheus query API over them sharded over BENCH_FLEET_WORLD_PROCS worker processes (4 by default;
core/sim/shard.py), each service's plan pointing at its shard's metrics API. In one process the world
woke up seconds late and the benchmark measured it, not the agent. `deploydeck agent` is a child
process; only it is measured (``/proc/<pid>``): CPU seconds over wall seconds (goal ≤ 1 core), peak
RSS (goal ≤ 500 MB), and per canary step the gap between consecutive analysis samples minus the
plan's interval (the lateness; the slowest one is printed, goal < one interval). Every run's
pre-deploy sign-offs and proceed go through the agent's API as alice, as an attached client would
send them. The world's own CPU and event-loop lag are printed beside, to tell the two apart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.adapters.kubernetes.credentials import load
from core.agent.crd import GROUP, PLURAL, crd, deployrun
from core.clock import SystemClock
from core.sim.environment import SPEED
from core.sim.shard import WorkloadShards, WorkloadSpec
from tests.agent_api_helpers import AGENT_USER, TOKENS, start_cluster
from tests.serve_helpers import REPO, child_env

RUNS = int(os.environ.get("BENCH_FLEET_RUNS", "100"))
#: the worker processes the workloads and their metrics API are sharded over
WORLD_PROCS = int(os.environ.get("BENCH_FLEET_WORLD_PROCS", "4"))
NS, STAGING = "fleet", "fleet-staging"
FROM, TO, IMAGE = "1.0.0", "1.1.0", "registry.example.com/fleet/app"
INTERVAL_S = 2.0
#: replicas per service (production, staging): the simulated API server's controller passes over
#: every Pod on each change, in the world's one process; 20 and 4 (2,400 Pods) made each pass ~0.6 s
#: and its loop seconds late. The agent's work per run does not depend on them (it reads Deployment
#: status), and 10 still gives the 10 % step one canary Pod.
PROD_REPLICAS, STAGING_REPLICAS = 10, 2
RPS = 150.0  # per service and wall second: enough for the analysis, cheap for 200 workloads
#: the workloads' generator step in scenario seconds: half a wall second (the sim env's 0.1 s, times
#: 200 workloads, would spend this process's core on ticks and starve the world's API server)
TICK_S = SPEED * 0.5


REPO_NAME, COMMIT, PR = "fleet/app", "9f3c2ab4d1e0", 7


def plan(service: str, prometheus: str, aux: str, github_token: str, prod: str, stg: str) -> dict[str, Any]:
    """The service's plan; ``prod``/``stg``: its production and staging workloads' base URLs."""
    return {
        "service": service,
        "namespace": NS,
        "version": {"from": FROM, "to": TO, "image": f"{IMAGE}:{TO}"},
        "change": {
            "id": f"CHG-{service}",
            "class": "standard",
            "author": "dave",
            "repo": REPO_NAME,
            "commit": COMMIT,
            "pull_request": PR,
        },
        "cluster": {"kind": "kube"},
        "targets": {
            "staging": {
                "namespace": STAGING,
                "deployment": service,
                "replicas": STAGING_REPLICAS,
                "rollout_timeout": "60s",
                "health": {"live": f"{stg}/canary/health/live", "ready": f"{stg}/canary/health/ready"},
            },
            "production": {
                "namespace": NS,
                "deployment": service,
                "replicas": PROD_REPLICAS,
                "canary_deployment": f"{service}-canary",
                "service": service,
                "rollout_timeout": "60s",
                "health": {"live": f"{prod}/stable/health/live", "ready": f"{prod}/stable/health/ready"},
            },
        },
        "gates": {
            "timezone": "UTC",
            "freeze": {"no_fridays": False},
            "error_budget": {"objective": 99.0},
            "ci": {"provider": "github", "base_url": f"{aux}/github", "token": github_token},
        },
        "alertmanager": {"url": f"{aux}/alertmanager", "timeout": "5s"},
        "staging": {
            "e2e": {"command": f"curl -fsS {aux}/e2e", "timeout": "30s"},
            "new_errors_query": f'sum(increase(log_messages_total{{namespace="{STAGING}",level="error"}}[1m]))'
            " or vector(0)",
            "soak": {"duration": 0},  # the canary is what is measured here
        },
        "canary": {"steps": [{"weight": w, "observe": "12s"} for w in (10, 50, 100)]},
        "analysis": {
            "interval": f"{INTERVAL_S:g}s",
            "lookback": "10s",
            # At 150 requests a second a 10 s lookback holds 150 canary requests at the 10 % step
            # (750 at 50 %). An SRE judges no error rate on fewer than 100 (one 5xx among 20 reads
            # +5 pp; the p99 rule needs 100 anyway), and, with the lookback 5 intervals long,
            # wants a breach to hold for 3 consecutive intervals (6 s, 14 s of traffic) before
            # rolling back: one interval over the line at a few hundred requests is sampling noise
            # on a healthy release (at 2 s intervals, ~18 chances a run), while a real regression
            # stays over it. The plan's defaults (50 requests, 1 interval) suit a 30 s interval
            # over 5 minutes of traffic, not this.
            "min_requests": 100,
            "max_blind_intervals": 5,
            "triggers": {"error_consecutive": 3, "p99_consecutive": 3},
            "health_urls": [f"{prod}/canary/health/ready"],
        },
        "verification": {"duration": "6s", "max_error_delta_pp": 1.0, "on_failure": "rollback"},
        "prometheus": {"url": prometheus, "timeout": "5s", "retries": 1},
    }


class Fleet:
    """The world of RUNS services, in this process."""

    async def start(self, root: Path) -> None:
        self.server = await start_cluster((NS, STAGING))
        specs: list[WorkloadSpec] = []
        for i in range(RUNS):
            service = f"svc-{i:03d}"
            for namespace, replicas in ((NS, PROD_REPLICAS), (STAGING, STAGING_REPLICAS)):
                self.server.seed_service(
                    namespace=namespace,
                    deployment=service,
                    canary_deployment=f"{service}-canary",
                    image=f"{IMAGE}:{FROM}",
                    replicas=replicas,
                    service=service,
                    settle=i == RUNS - 1 and namespace == STAGING,  # once, after the last one
                )
                # staging serves health checks but its traffic is never judged (the soak is 0 s): a
                # trickle, so that generating requests no one reads does not take the world's CPU
                rps = RPS if namespace == NS else RPS / 15
                specs.append(WorkloadSpec(namespace, service, "healthy", rps, i, FROM, TO, TICK_S, SPEED))
        self.shards = WorkloadShards(specs, WORLD_PROCS, self._share)
        await self.shards.start()
        self.urls = self.shards.urls
        from core.sim.env_endpoints import Endpoints

        self.github_token = "fleet-github-token"
        # GitHub (CI green, the PR reviewed) and an Alertmanager with no alerts, for every service
        self.endpoints = Endpoints(
            token=self.github_token,
            repo=REPO_NAME,
            commit=COMMIT,
            pull_request=PR,
            author="dave",
            reviewer="bob",
            switch_scenario=lambda name: name,
            set_faults=lambda changes: changes,
            audit=list,
            status=dict,
        )
        await self.endpoints.start()
        self.kubeconfig = root / "agent-kubeconfig.yaml"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fleet", "cluster": {"server": self.server.url}}],
                    "users": [{"name": "agent", "user": {"token": TOKENS[AGENT_USER]}}],
                    "contexts": [{"name": "agent", "context": {"cluster": "fleet", "user": "agent"}}],
                    "current-context": "agent",
                }
            )
        )
        client, credentials = await load(str(self.kubeconfig), None)
        self.api = KubeApi(client, SystemClock(), credentials=credentials)
        await self.api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd())

    def _share(self, namespace: str, service: str) -> int:
        """The new version's share of the service's traffic, as the API server's objects say it."""
        server, new = self.server, f"{IMAGE}:{TO}"
        if namespace == STAGING:
            return 100 if server.deployment_image(namespace, service) == new else 0
        stable = server.deployment_image(namespace, service)
        canary = server.deployment_image(namespace, f"{service}-canary")
        weight = server.canary_weight(namespace, service, f"{service}-canary", "replicas")
        if stable == new:
            return 100 - weight if canary != new else 100
        return weight if canary == new else 0

    async def stop(self) -> None:
        await self.api.close()
        await self.endpoints.stop()
        await self.shards.stop()
        await self.server.stop()


def tail(root: Path, lines: int = 40) -> str:
    return "\n".join((root / "agent.log").read_text(errors="replace").splitlines()[-lines:])


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


#: the DeployRuns in the simulated API server's store (its Resource key: group and plural)
DEPLOYRUNS = SimpleNamespace(group=GROUP, plural=PLURAL)


def runs_in_store(fleet: Fleet) -> list[dict[str, Any]]:
    """The DeployRuns as the world's API server holds them, read in this process: watching 100 runs
    over HTTP (200 GETs a second) loaded the world's API server more than the agent did."""
    return list(fleet.server.store.scan(DEPLOYRUNS, NS))  # type: ignore[arg-type]


async def release_gates(client: httpx.AsyncClient, fleet: Fleet, name: str) -> None:
    """alice signs both sign-offs and proceeds, through the agent's API, once the run waits."""
    url = ""
    while not url:
        obj = fleet.server.store.peek(DEPLOYRUNS, NS, name) or {}  # type: ignore[arg-type]
        status = obj.get("status") or {}
        url = (status.get("agent") or {}).get("url", "") if status.get("phase") == "preflight" else ""
        if not url:
            await asyncio.sleep(0.5)
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    base = f"{url}/api/v1/namespaces/{NS}/runs/{name}/commands"
    steps = [
        ("signoff", {"gate": "rollback-plan"}),
        ("signoff", {"gate": "dashboards-reviewed"}),
        ("proceed", {}),
    ]
    for verb, body in steps:
        answer: httpx.Response | None = None
        for _ in range(300):
            try:
                answer = await client.post(f"{base}/{verb}", json=body, headers=headers)
            except httpx.TransportError:  # the agent slow to answer (a timeout): ask again
                await asyncio.sleep(0.5)
                continue
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.5)
        else:
            said = f"{answer.status_code} {answer.text}" if answer is not None else "no answer"
            raise AssertionError(f"{name} {verb}: {said}")


#: words in a stop's reason that say the world did not answer in time: not the agent's judgement
WORLD_WORDS = ("timed out", "no data", "unreachable", "empty result", "cannot read")


def side(reason: str) -> str:
    """Which side a stop's reason points at: the world (did not answer) or the agent's judgement."""
    return "world" if any(w in reason for w in WORLD_WORDS) else "judgement"


def lateness(journal: Path) -> tuple[float, int, dict[str, int]]:
    """(the slowest interval's lateness in s, intervals measured, outcomes by name and side)."""
    events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    worst, count, outcomes = 0.0, 0, {}
    by_deploy = itertools.groupby(
        sorted(events, key=lambda e: (e["deploy_id"], e["seq"])), key=lambda e: e["deploy_id"]
    )
    for _, lines in by_deploy:
        samples, checks = [], ""
        for event in lines:
            if event["type"] == "analysis":
                samples.append(event)
            elif event["type"] == "health_checked":
                checks = event.get("detail") or ""  # why the health rule counts a failure
            elif event["type"] == "rollback_triggered":
                why = checks if event["rule"] == "health" else event.get("reason", "")
                rule = f"rule {event['rule']} fired ({side(why)})"
                outcomes[rule] = outcomes.get(rule, 0) + 1
            elif event["type"] == "lease_lost":
                # the renewal is the agent's write to the world's API server: late on either side
                lost = "lease lost (renewal late: see the world's loop lag)"
                outcomes[lost] = outcomes.get(lost, 0) + 1
            elif event["type"] == "finished":
                outcomes[event["outcome"]] = outcomes.get(event["outcome"], 0) + 1
        for a, b in itertools.pairwise(samples):
            if a["weight"] == b["weight"] and a.get("phase") == b.get("phase"):
                gap = (parse(b["ts"]) - parse(a["ts"])) - INTERVAL_S
                worst, count = max(worst, gap), count + 1
    return worst, count, outcomes


def parse(ts: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class LoopLag:
    """How late this process's (the world's) event loop wakes: the world's API server, workloads,
    health endpoints and Prometheus all answer from it, so a late loop is the world's lateness."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s, self.worst, self.samples = period_s, 0.0, []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period_s)
            lag = time.monotonic() - before - self.period_s
            self.samples.append(lag)
            self.worst = max(self.worst, lag)

    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[int(len(ordered) * 0.99)] if ordered else 0.0


async def main() -> None:
    budget = float(os.environ.get("BENCH_FLEET_DEADLINE", "300"))
    profile = None
    if os.environ.get("BENCH_FLEET_PROFILE"):  # where this process (the world) spends its time
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fleet = Fleet()
        begun = time.monotonic()
        await fleet.start(root)
        world_start_s = time.monotonic() - begun
        print(f"  world of {RUNS} services started in {world_start_s:.0f} s", file=sys.stderr, flush=True)
        lag = LoopLag()
        journal = root / "fleet.jsonl"
        log = (root / "agent.log").open("w")
        # BENCH_FLEET_PROFILE: the agent under cProfile too (written when SIGTERM stops it cleanly)
        profiled = ["-m", "cProfile", "-o", str(root / "agent.prof")] if profile is not None else []
        agent = await asyncio.create_subprocess_exec(
            sys.executable, *profiled, "-m", "tui.cli", "agent", "--kubeconfig", str(fleet.kubeconfig), "--port", "0",
            "--api-port", "0", "--identity", "fleet-agent", "-n", NS, "--journal", str(journal),
            stdout=subprocess.DEVNULL, stderr=log, env=child_env(), cwd=REPO,
        )  # fmt: skip
        missed: list[str] = []
        pending: set[str] = set()
        try:
            world_pids = [os.getpid(), *fleet.shards.pids]
            started, cpu0 = time.monotonic(), proc_cpu_s(agent.pid)
            world0 = sum(proc_cpu_s(pid) for pid in world_pids)
            deadline = started + budget
            names = []
            for i in range(RUNS):
                service = f"svc-{i:03d}"
                run = deployrun(
                    plan(
                        service,
                        fleet.shards.prometheus[(NS, service)],
                        fleet.endpoints.base_url,
                        fleet.github_token,
                        fleet.urls[(NS, service)],
                        fleet.urls[(STAGING, service)],
                    ),
                    name=f"{service}-{TO.replace('.', '-')}",
                    namespace=NS,
                )
                await fleet.api.request(
                    "POST", f"/apis/deploydeck.dev/v1alpha1/namespaces/{NS}/deployruns", body=run
                )
                names.append(run["metadata"]["name"])
            pending = set(names)
            print(
                f"  {RUNS} DeployRuns created; signing off through the agent's API",
                file=sys.stderr,
                flush=True,
            )
            async with httpx.AsyncClient(timeout=30) as client:
                gates = asyncio.gather(*(release_gates(client, fleet, n) for n in names))
                try:
                    await asyncio.wait_for(gates, max(1.0, deadline - time.monotonic()))
                    print("  all released; waiting for the outcomes", file=sys.stderr, flush=True)
                except (TimeoutError, AssertionError, KubeApiError) as exc:
                    missed.append(f"not every run was released in time ({exc or 'deadline'})")
            listed: dict[str, Any] = {"items": []}
            while pending and time.monotonic() < deadline:
                listed = {"items": runs_in_store(fleet)}
                done = {
                    o["metadata"]["name"] for o in listed["items"] if (o.get("status") or {}).get("outcome")
                }
                pending -= done
                await asyncio.sleep(1.0)
            if pending:
                phases = sorted({(o.get("status") or {}).get("phase", "?") for o in listed["items"]})
                missed.append(
                    f"{len(pending)} of {RUNS} runs unfinished at the {budget:.0f} s deadline (phases {phases})"
                )
            wall, cpu = time.monotonic() - started, proc_cpu_s(agent.pid) - cpu0
            world_cpu = sum(proc_cpu_s(pid) for pid in world_pids) - world0
            peak = proc_peak_rss_mb(agent.pid)
        finally:
            lag.task.cancel()
            agent.terminate()
            try:
                await asyncio.wait_for(agent.wait(), 60)
            except TimeoutError:
                agent.kill()
                await agent.wait()
            log.close()
            if keep := os.environ.get("BENCH_FLEET_KEEP"):
                import shutil

                for kept in (journal, root / "agent.log", root / "agent.prof"):
                    if kept.exists():
                        shutil.copy(kept, Path(keep) / kept.name)
            await fleet.stop()
        worst, count, outcomes = lateness(journal) if journal.exists() else (0.0, 0, {})
        if profile is not None:
            import pstats

            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        shard_lags = sorted(fleet.shards.lags)
        shard_worst = shard_lags[-1] if shard_lags else 0.0
        shard_p99 = shard_lags[int(len(shard_lags) * 0.99)] if shard_lags else 0.0
        ended = sum(
            v for k, v in outcomes.items() if k in {"completed", "rolled_back", "aborted", "blocked", "error"}
        )
        rules = {k: v for k, v in outcomes.items() if k.startswith("rule ")}
        print(
            f"one agent, {RUNS} concurrent DeployRuns on the simulated world (healthy scenario: every run should complete)"
        )
        print(
            f"  world: {1 + len(fleet.shards.pids)} processes (API server + {len(fleet.shards.pids)} workload shards), "
            f"started in {world_start_s:.0f} s, {world_cpu / wall:.2f} cores; the API server's event loop woke up to "
            f"{lag.worst:.2f} s late (p99 {lag.p99():.2f} s), the shards' up to {shard_worst:.2f} s "
            f"(p99 {shard_p99:.2f} s)"
        )
        print(
            f"  runs ended: {ended} of {RUNS} in {wall:.0f} s (goal: all, within the {budget:.0f} s deadline)"
        )
        print(f"  completed: {outcomes.get('completed', 0)} (goal: {RUNS}: a healthy release completes)")
        print(f"  rolled back: {outcomes.get('rolled_back', 0)} (goal 0), by rule: {rules or 'none'}")
        other = {
            k: v for k, v in outcomes.items() if k not in {"completed", "rolled_back"} and k not in rules
        }
        if other:
            print(f"  other: {other}")
        print(
            f"  agent CPU: {cpu / wall:.2f} cores on average ({cpu:.0f} s over {wall:.0f} s; goal ≤ 1 core)"
        )
        print(f"  agent peak RSS: {peak:.0f} MB (goal ≤ 500 MB)")
        print(
            f"  analysis intervals: {count} measured; slowest came {worst:.2f} s late "
            f"(goal < the plan's {INTERVAL_S:g} s interval; median lateness is not the goal, the worst is)"
        )
        if rules or other:
            print(
                "  stops of healthy runs: '(world)' = the simulated world did not answer in time (timeouts, "
                "no data), '(judgement)' = the agent judged the metrics it read (sampling noise on a healthy "
                "release), lease lost = a renewal not acknowledged in time (a late world loop, or a late agent)"
            )
        for what in missed:
            print(f"  NOT REACHED: {what}")


if __name__ == "__main__":
    asyncio.run(main())
