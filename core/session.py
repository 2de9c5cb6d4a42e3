"""One deploy session: the plan, the world it talks to, the journal, and the Rollout.

`open_session` picks the world from the plan: the embedded simulation for
``cluster.kind: sim`` (in memory, or behind the simulated Kubernetes API server
through the real adapter), real adapters otherwise. The TUI and the headless
runner both start here, so `demo` and `run` are one code path.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.clock import Clock, SystemClock
from core.engine import Rollout
from core.plan import Plan, PlanError, parse_plan

# DriverConflict and ResumeRefused are imported from here by the CLI, the TUI and the agent
from core.resume import DriverConflict, ResumeRefused, journaled_end, resumable, to_roll_back  # noqa: F401
from core.world import World

if TYPE_CHECKING:
    from core.adapters.kubernetes.lease import LeaseKeeper
    from core.cluster_view import ClusterInspector

#: simulated seconds until a new pod of the simulated cluster is Ready (a real one takes a few); on the
#: session's clock, so under a VirtualClock it costs no wall time
POD_START_DELAY_S = 3.0

#: lease duration (override: $DEPLOYDECK_LEASE_TTL); renewed every sixth of it while the session lives
LEASE_TTL_S = 30.0


SimBackend = Literal["memory", "kube"]


def demo_plan(scenario: str = "healthy") -> Plan:
    """The built-in demo plan (cluster.kind: sim) with the scenario filled in."""
    from core.sim.scenarios import get_scenario

    get_scenario(scenario)
    text = resources.files("core.sim").joinpath("demo.yaml").read_text(encoding="utf-8")
    plan = parse_plan(text, "core/sim/demo.yaml", env={})
    return plan.model_copy(update={"scenario": scenario})


def default_actor() -> str:
    """Who is driving: $DEPLOYDECK_ACTOR, then $USER, then the login name."""
    import getpass

    name = os.environ.get("DEPLOYDECK_ACTOR") or os.environ.get("USER") or os.environ.get("USERNAME")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Session:
    plan: Plan
    rollout: Rollout
    world: World
    clock: Clock
    scenario: str | None
    journal_path: Path
    kubeconfig: str | None = None
    notes: list[str] = field(default_factory=list)  # what the session set up, for the person to read
    lease: LeaseKeeper | None = None

    def inspector(self) -> ClusterInspector:
        """Read-only views of production (ReplicaSets, pods, events, logs) for the dashboard."""
        from core.cluster_view import ClusterInspector

        return ClusterInspector(self.world.production, self.clock)

    async def close(self) -> None:
        if self.lease is not None:
            await self.lease.release()  # writes only while the lease is certainly still ours
        await self.world.close()


async def open_session(
    plan: Plan,
    *,
    actor: str,
    clock: Clock | None = None,
    scenario: str | None = None,
    journal_path: Path | None = None,
    use_prometheus: bool = False,
    plan_path: str = "",
    interactive: bool = True,
    approvals: list[str] | None = None,
    decision_default: Literal["rollback", "fix_forward"] = "rollback",
    sim_backend: SimBackend = "memory",
    kubeconfig_dir: Path | None = None,
    pod_start_delay_s: float = POD_START_DELAY_S,
    world: World | None = None,
    rollback_unfinished: bool = False,
    prometheus_scrape_s: float = 1.0,
    journal: Any = None,
) -> Session:
    """Open the world (or reuse ``world``: tests restarting a driver on the same cluster), take the
    lease, and continue the plan's unfinished deploy if the cluster holds one (see `_resumable`).

    ``journal``: a Journal to write to instead of the file (the agent's PostgreSQL log,
    core.adapters.journal_pg.PgJournal); a resumed deploy's earlier lines are read from it."""
    from core.adapters.journal import FileJournal, default_journal_path
    from core.adapters.journal_anchor import quote_journal_head

    clock = clock or SystemClock()
    scenario = scenario or plan.scenario
    journal_file = Path(journal_path or plan.journal.path or default_journal_path())
    notes: list[str] = []
    kubeconfig: str | None = None
    if world is not None:
        clock = world.clock
    elif plan.is_sim:
        from core.sim.scenarios import get_scenario

        world, kubeconfig, sim_notes = await _sim_world(
            plan,
            get_scenario(scenario or "healthy"),
            clock,
            sim_backend,
            use_prometheus,
            kubeconfig_dir,
            pod_start_delay_s,
            prometheus_scrape_s,
        )
        notes.extend(sim_notes)
    else:
        world = await _real_world(plan, clock)
    lease: LeaseKeeper | None = None
    try:  # a refusal or a failed read closes the world: its clients must not outlive the session
        await _check_cluster(world, plan, plan_path)
        await _check_traffic_split(world, plan, plan_path)
        lease = await _take_lease(world, plan, actor, clock)
        resume = await resumable(
            world, plan, interactive=interactive, rollback=rollback_unfinished, plan_path=plan_path
        )
        if rollback_unfinished:
            resume = to_roll_back(resume, plan, actor)
    except BaseException:
        if lease is not None:
            await lease.release()
        await world.close()
        raise
    prior: list[object] = []
    if resume is not None:
        from core.adapters.journal import read_journal

        read = await journal.read() if journal is not None else read_journal(journal_file)
        prior = [e for e in read.events if e.deploy_id == resume.deploy_id]
        ended = journaled_end(prior)
        if ended is not None:
            # the driver died after journaling the outcome, before writing it to the cluster
            await world.production.write_state({**resume.to_state(), "outcome": ended.outcome.value})
            resume, prior = None, []
    if resume is not None:
        notes.append(
            f"resuming unfinished deploy {resume.deploy_id} of {plan.service} {plan.version.to} "
            f"(left by {resume.driver or 'unknown'} in {resume.phase}, canary at {resume.weight} %)"
        )
    journal = journal if journal is not None else FileJournal(journal_file)
    # every notification quotes the journal's head, so the channel can prove the log's end
    quote_journal_head(world.notifier, journal)
    rollout = Rollout(
        plan,
        world,
        actor=actor,
        journal=journal,
        interactive=interactive,
        approvals=approvals or [],
        decision_default=decision_default,
        plan_path=plan_path,
        scenario=scenario if plan.is_sim else None,
        incident_dir=journal_file.parent / "incidents",
        notes=notes,
        deploy_id=resume.deploy_id if resume is not None else None,
        resume=resume,
        prior_events=prior,  # type: ignore[arg-type]
    )
    _wire_lease(lease, rollout)
    return Session(
        plan=plan,
        rollout=rollout,
        world=world,
        clock=clock,
        scenario=scenario if plan.is_sim else None,
        journal_path=journal_file,
        kubeconfig=kubeconfig,
        notes=notes,
        lease=lease,
    )


async def _check_cluster(world: World, plan: Plan, plan_path: str) -> None:
    """Refuse (exit 2) what production forbids (wrong version, paused, HPA): kubernetes/preflight.py."""
    check = getattr(world.production, "refusals", None)
    if check is None:
        return
    problems = await check(plan.version)
    if problems:
        raise PlanError([f"{plan_path or '<plan>'}: targets.production: {p}" for p in problems])


async def _check_traffic_split(world: World, plan: Plan, plan_path: str) -> None:
    """Refuse a `replicas` plan whose pod count cannot express its canary steps (before any change)."""
    target = plan.targets.production
    if target.strategy != "replicas" or not hasattr(world.production, "acquire_lease"):
        return
    from core.adapters.kubernetes import check_expressible

    replicas = target.replicas or (await world.production.describe()).stable_desired
    problem = check_expressible(target, [s.weight for s in plan.canary.steps], replicas)
    if problem is not None:
        raise PlanError([f"{plan_path or '<plan>'}: targets.production.replicas: {problem}"])


def lease_ttl_s() -> float:
    """The lease duration: $DEPLOYDECK_LEASE_TTL (seconds) or LEASE_TTL_S."""
    raw = os.environ.get("DEPLOYDECK_LEASE_TTL", "")
    try:
        return max(1.0, float(raw)) if raw else LEASE_TTL_S
    except ValueError:
        return LEASE_TTL_S


async def _take_lease(world: World, plan: Plan, actor: str, clock: Clock) -> LeaseKeeper | None:
    """One driver per rollout: hold a coordination.k8s.io Lease while the session lives.

    The keeper renews it (its one renewal loop) and fences every write of both
    clusters; the Rollout is told the moment it is lost (see `_wire_lease`).
    """
    production = world.production
    api = getattr(production, "api", None)
    if not hasattr(production, "acquire_lease") or api is None:
        return None
    from core.adapters.kubernetes.lease import LeaseKeeper, holder_identity

    target = plan.targets.production
    keeper = LeaseKeeper(api, clock, target.namespace, f"deploydeck-{target.deployment}")
    ttl = lease_ttl_s()
    # watch a held lease for one whole duration: expiry is judged by what WE observe
    info = await keeper.acquire(holder_identity(actor), ttl, wait_s=ttl + ttl / 6)
    if not info.acquired:
        until = f" (expires {info.expires_at:%H:%M:%S} UTC at the earliest)" if info.expires_at else ""
        raise DriverConflict(
            f"{plan.service} in {target.namespace} is being driven by {info.holder}{until}; "
            "one driver at a time — wait for it to finish or for the lease to expire"
        )
    keeper.fence(*(a for a in (api, getattr(world.staging, "api", None)) if a is not None))
    return keeper


def _wire_lease(keeper: LeaseKeeper | None, rollout: Rollout) -> None:
    """Lease lost or not renewed in time: the engine stops acting at once."""
    if keeper is not None:
        keeper.on_lost(rollout.lease_lost)
        rollout.hand_back_lease = keeper.release  # the rollback hands it back before notifying


async def _sim_world(
    plan: Plan,
    scenario: object,
    clock: Clock,
    backend: SimBackend,
    use_prometheus: bool,
    kubeconfig_dir: Path | None,
    pod_start_delay_s: float = POD_START_DELAY_S,
    prometheus_scrape_s: float = 1.0,
) -> tuple[World, str | None, list[str]]:
    from core.sim.scenarios import Scenario
    from core.sim.world import (
        ObservedCluster,
        SimAlerts,
        SimCluster,
        SimCodeHost,
        SimMetrics,
        SimNotifier,
        SimProbe,
        SimRunner,
        WorkloadModel,
    )

    assert isinstance(scenario, Scenario)
    prod_t, stg_t = plan.targets.production, plan.targets.staging
    old_image = plan.version.image.rsplit(":", 1)[0] + f":{plan.version.from_}"
    notes: list[str] = []
    closers: list[object] = []
    kubeconfig: str | None = None
    if backend == "kube":
        from core.adapters.kubernetes import KubeCluster
        from core.sim.kube import SimKubeServer

        # the world's clock: under a VirtualClock (tests, --speed max) a realistic pod start costs
        # no wall time, and the adapter's virtual-time deadlines measure the same time the pods take
        server = SimKubeServer(pod_ready_delay_s=pod_start_delay_s, clock=clock)
        await server.start()
        for target in (stg_t, prod_t):
            server.seed_service(
                namespace=target.namespace,
                deployment=target.deployment,
                canary_deployment=target.canary_name,
                image=old_image,
                replicas=target.replicas or 10,
                service=target.service or target.deployment,
                ingress=target.ingress,
                httproute=target.httproute,
            )
        directory = kubeconfig_dir or Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "deploydeck"
        directory.mkdir(parents=True, exist_ok=True)
        # one file per process: a second demo must not overwrite a running `sim serve`'s kubeconfig
        name = "sim-kubeconfig.yaml" if kubeconfig_dir else f"sim-kubeconfig-{os.getpid()}.yaml"
        kubeconfig = str(server.write_kubeconfig(directory / name))
        if kubeconfig_dir is None:
            closers.append(_RemoveOnClose(Path(kubeconfig)))
        staging = await KubeCluster.connect(stg_t, kubeconfig=kubeconfig, clock=clock)
        production = await KubeCluster.connect(prod_t, kubeconfig=kubeconfig, clock=clock)
        traffic = _KubeTraffic(server, prod_t, plan.version.image)
        closers.append(server)
        notes.append(
            f"simulated Kubernetes API at {server.url}; kubectl --kubeconfig {kubeconfig} get deploy -A"
        )
    else:
        staging = SimCluster(
            stable_image=old_image, replicas=stg_t.replicas or 4, clock=clock, deployment=stg_t.deployment
        )
        production = SimCluster(
            stable_image=old_image, replicas=prod_t.replicas or 10, clock=clock, deployment=prod_t.deployment
        )
        traffic = production
    model = WorkloadModel(scenario, traffic, clock)
    _wire_pod_logs(model, plan, production, closers)
    production = ObservedCluster(production, model.traffic_requested)
    metrics = SimMetrics(model, min_requests=plan.analysis.min_requests, seed=plan.seed)
    if use_prometheus:
        from core.sim.prometheus_demo import start_prometheus_metrics

        real, note, closer = await start_prometheus_metrics(
            plan, scenario, traffic, clock, scrape_interval_s=prometheus_scrape_s
        )
        notes.append(note)
        if real is not None:
            metrics = real
            closers.append(closer)
    world = World(
        clock=clock,
        staging=staging,
        production=production,
        metrics=metrics,
        staging_metrics=SimMetrics(
            model, min_requests=plan.analysis.min_requests, seed=plan.seed + 1, staging=True
        ),
        alerts=SimAlerts(),
        probe=SimProbe(model),
        notifier=SimNotifier(),
        runner=SimRunner(clock),
        codehost=SimCodeHost(),
        closers=closers,
    )
    return world, kubeconfig, notes


def _wire_pod_logs(model: object, plan: Plan, production: object, closers: list[object]) -> None:
    """Request lines in the production pods' logs follow the scenario (core.sim.pod_logs)."""
    from core.sim.pod_logs import RequestLog
    from core.sim.world import SimCluster

    requests = RequestLog(model, plan.seed, plan.version.image)  # type: ignore[arg-type]
    if isinstance(production, SimCluster):
        production.view.requests = requests
        return
    from core.sim.kube import SimKubeServer

    server = next((c for c in closers if isinstance(c, SimKubeServer)), None)
    if server is None:
        return
    namespace = plan.targets.production.namespace

    def lines(pod: dict[str, Any], container: str) -> list[str]:
        if pod["metadata"].get("namespace") != namespace:
            return []  # staging's pods serve no simulated traffic of their own
        image = next(
            (
                c.get("image")
                for c in pod.get("spec", {}).get("containers") or []
                if c.get("name") == container
            ),
            None,
        )
        started = (pod.get("status") or {}).get("startTime")
        since = datetime.fromisoformat(started.replace("Z", "+00:00")) if started else None
        return requests.lines(pod["metadata"]["name"], image, since)

    server.controller.pods.log_source = lines


class _RemoveOnClose:
    """A file this session wrote for itself, removed when the session closes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


class _KubeTraffic:
    """The new version's share of traffic, as the simulated API server's objects say it."""

    def __init__(self, server: object, target: object, new_image: str) -> None:
        self.server = server
        self.target = target
        self.new_image = new_image

    def new_version_share(self) -> int:
        server, t = self.server, self.target
        stable = server.deployment_image(t.namespace, t.deployment)  # type: ignore[attr-defined]
        canary = server.deployment_image(t.namespace, t.canary_name)  # type: ignore[attr-defined]
        weight = server.canary_weight(  # type: ignore[attr-defined]
            t.namespace,
            t.deployment,
            t.canary_name,
            t.strategy,
            ingress=t.ingress,
            httproute=t.httproute,  # type: ignore[attr-defined]
        )
        if stable == self.new_image:
            return 100 - weight if canary != self.new_image else 100
        return weight if canary == self.new_image else 0


async def _real_world(plan: Plan, clock: Clock) -> World:
    from core.adapters.kubernetes import KubeCluster

    kube, ports, targets = plan.cluster.kubeconfig, real_ports(plan, clock), plan.targets
    ports.staging = await KubeCluster.connect(targets.staging, kubeconfig=kube, clock=clock)
    try:
        ports.production = await KubeCluster.connect(targets.production, kubeconfig=kube, clock=clock)
    except BaseException:
        await ports.close()  # staging's client is shared: an unreleased handle would keep it open
        raise
    return ports


def real_ports(plan: Plan, clock: Clock) -> World:
    """Every real adapter but the clusters: what `deploydeck check` needs, connecting to nothing yet."""
    from core.adapters.command import SubprocessRunner
    from core.adapters.http_probe import HttpProbe
    from core.adapters.webhook import WebhookNotifier

    metrics = staging_metrics = None
    if plan.prometheus is not None:
        from core.adapters.prometheus import PrometheusMetrics

        def prom(namespace: str, baseline: str) -> PrometheusMetrics:
            assert plan.prometheus is not None
            return PrometheusMetrics(
                plan.prometheus,
                service=plan.service,
                namespace=namespace,
                canary_version=plan.version.to,
                baseline_version=baseline,
                queries=plan.analysis.queries,
                min_requests=plan.analysis.min_requests,
                clock=clock,
            )

        metrics = prom(plan.targets.production.namespace, plan.version.from_)
        staging_metrics = prom(plan.targets.staging.namespace, plan.version.from_)
    alerts = None
    if plan.alertmanager is not None:
        from core.adapters.alertmanager import AlertmanagerAlerts

        alerts = AlertmanagerAlerts(plan.alertmanager)
    codehost = None
    if plan.gates.ci.provider == "github" and plan.gates.ci.token:
        from core.adapters.github import GitHubCodeHost

        codehost = GitHubCodeHost(plan.gates.ci.base_url, plan.gates.ci.token)
    return World(
        clock=clock,
        staging=None,  # type: ignore[arg-type]
        production=None,  # type: ignore[arg-type]
        metrics=metrics,
        staging_metrics=staging_metrics,
        alerts=alerts,
        probe=HttpProbe(),
        notifier=WebhookNotifier(
            plan.notifications.webhooks,
            clock=clock,
            timeout_s=plan.notifications.timeout,
            retries=plan.notifications.retries,
        ),
        runner=SubprocessRunner(env=plan.command_env, secrets=plan.secret_values),
        codehost=codehost,
        closers=[codehost] if codehost is not None else [],
    )
