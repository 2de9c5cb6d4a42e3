"""Production shapes through the real adapter against the simulated API server (issue 10 items 3, 8
and the shapes matrix): HPA, paused Deployment, revisionHistoryLimit 0, canary-weight-total, the
running version against version.from, staging reverted after a failed soak."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from core.adapters.kubernetes import KubeCluster
from core.clock import SystemClock, VirtualClock
from core.plan import PlanError, parse_plan
from core.ports import ClusterError
from core.session import open_session
from core.sim.kube.controller import DEPLOYMENTS
from tests.kube_helpers import CANARY, HPA_KEY, INGRESS, NS, ROUTE, STABLE, Sim, add_hpa, sim, start_sim
from tests.ready_capacity import ReadyCapacity
from tests.test_ready_capacity import drive, settled
from tests.test_session import kube_plan

__all__ = ["sim"]


def _patch_deployment(s: Sim, name: str, **spec: Any) -> None:
    d = s.deployment(name)
    d["spec"].update(spec)
    s.server.store.update(DEPLOYMENTS, NS, name, d)


async def _open(s: Sim, tmp_path: Path, text: str | None = None) -> Any:
    plan = parse_plan(text or kube_plan(s.kubeconfig), "plan.yaml", env={})
    return await open_session(
        plan, actor="alice", clock=SystemClock(), journal_path=tmp_path / "j.jsonl", plan_path="plan.yaml"
    )


# --- item 3: an HPA on stable under the replicas strategy ---------------------------------------


async def test_hpa_on_stable_is_refused_with_the_reason(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hpa(sim, monkeypatch)
    with pytest.raises(PlanError) as err:
        await _open(sim, tmp_path)
    message = str(err.value)
    assert message.startswith("plan.yaml: targets.production: HorizontalPodAutoscaler prod/web-hpa scales")
    assert "hpa: suspend" in message
    assert sim.deployment(STABLE)["spec"]["replicas"] == 10  # nothing was changed


async def test_hpa_refused_by_the_adapter_too_when_it_appears_mid_way(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hpa(sim, monkeypatch)
    cluster = await sim.cluster("replicas")
    try:
        with pytest.raises(ClusterError, match="HorizontalPodAutoscaler prod/web-hpa"):
            await cluster.set_canary_weight(25)
        assert sim.deployment(CANARY)["spec"]["replicas"] == 0
    finally:
        await cluster.close()


async def test_hpa_suspend_disables_scaling_for_the_rollout_and_restores_it(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = {"scaleDown": {"stabilizationWindowSeconds": 120}}
    res = add_hpa(sim, monkeypatch, behavior=own)
    hpa = lambda: sim.server.store.get(res, NS, f"{STABLE}-hpa")  # noqa: E731
    cluster = await sim.cluster("replicas", hpa="suspend")
    try:
        await cluster.set_canary_weight(25)
        behavior = hpa()["spec"]["behavior"]
        assert behavior["scaleUp"]["selectPolicy"] == behavior["scaleDown"]["selectPolicy"] == "Disabled"
        state = sim.deployment(STABLE)["metadata"]["annotations"]["deploydeck.io/state"]
        assert '"hpa"' in state and "stabilizationWindowSeconds" in state  # saved before acting
        await cluster.set_canary_weight(0)
        assert hpa()["spec"]["behavior"] == own
        assert '"hpa"' not in sim.deployment(STABLE)["metadata"]["annotations"]["deploydeck.io/state"]
    finally:
        await cluster.close()
    assert HPA_KEY  # the resource is registered for this test only (monkeypatch undoes it)


# --- item 8 -------------------------------------------------------------------------------------


async def test_paused_deployment_is_refused_before_anything_changes(sim: Sim, tmp_path: Path) -> None:
    _patch_deployment(sim, STABLE, paused=True)
    with pytest.raises(PlanError, match=r"targets.production: stable deployment prod/web is paused"):
        await _open(sim, tmp_path)


async def test_paused_deployment_is_a_clear_error_not_a_timeout(sim: Sim) -> None:
    _patch_deployment(sim, CANARY, paused=True)
    clock = VirtualClock()
    cluster = await sim.cluster("nginx", clock=clock)
    try:
        started = clock.now()
        with pytest.raises(ClusterError, match=r"prod/web-canary is paused .*kubectl rollout resume"):
            await cluster.deploy("shop:2.0", "canary")
        with pytest.raises(ClusterError, match="is paused"):
            await cluster.wait_ready("canary", 600)
        assert (clock.now() - started).total_seconds() < 1  # at once, not after the rollout timeout
    finally:
        await cluster.close()


async def test_rollback_without_history_reapplies_the_saved_stable_image(sim: Sim) -> None:
    """revisionHistoryLimit 0: the old ReplicaSet is deleted after promotion; undo has nothing to go
    back to, so the rollback sets the image stable ran before this deploy."""
    from tests.kube_helpers import eventually

    _patch_deployment(sim, STABLE, revisionHistoryLimit=0)
    cluster = await sim.cluster("replicas")
    try:
        await cluster.deploy("shop:2.0", "stable")
        await cluster.wait_ready("stable", 10)
        await eventually(
            lambda: len([rs for rs in sim.replicasets() if "canary" not in rs["metadata"]["name"]]) == 1
        )
        report = await cluster.rollback()
        assert report.stable_restored and "re-applied the saved stable image shop:1.0" in report.detail
        assert sim.server.deployment_image(NS, STABLE) == "shop:1.0"
        again = await cluster.rollback()
        assert not again.stable_restored  # done once, not repeated
    finally:
        await cluster.close()


async def test_canary_weight_total_is_honoured(sim: Sim) -> None:
    from core.sim.kube.seed import INGRESSES

    ing = sim.server.store.get(INGRESSES, NS, INGRESS)
    ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight-total"] = "1000"
    sim.server.store.update(INGRESSES, NS, INGRESS, ing)
    cluster = await sim.cluster("nginx")
    try:
        await cluster.deploy("shop:2.0", "canary")
        await cluster.wait_ready("canary", 10)
        change = await cluster.set_canary_weight(25)
        annotations = sim.server.store.get(INGRESSES, NS, INGRESS)["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "250"
        assert change.effective == 25 and "250/1000" in change.detail
        assert (await cluster.describe()).weight == 25
    finally:
        await cluster.close()


@pytest.mark.parametrize(
    ("versions", "reason"),
    [
        ('{from: "0.9", to: "1.1", image: "shop:1.1"}', "runs shop:1.0, not version.from 0.9"),
        ('{from: "0.9", to: "1.0", image: "shop:1.0"}', "already runs shop:1.0 (version.to 1.0)"),
    ],
)
async def test_the_running_version_must_be_version_from(
    sim: Sim, tmp_path: Path, versions: str, reason: str
) -> None:
    text = kube_plan(sim.kubeconfig).replace('{from: "1.0", to: "1.1", image: "shop:1.1"}', versions)
    with pytest.raises(PlanError, match=r"targets\.production: deployment prod/web ") as err:
        await _open(sim, tmp_path, text)
    assert reason in str(err.value)
    session = await _open(sim, tmp_path)  # the right from: accepted
    await session.close()


async def test_staging_is_reverted_when_the_soak_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new version fails staging's soak: the run is blocked and staging runs the old version again."""
    from core.domain import Outcome
    from core.sim import scenarios
    from core.sim.scenarios import Fault, Scenario
    from tests.engine_helpers import sim_session

    broken = Scenario(
        name="broken-staging",
        title="errors from the first request",
        expected="rolled_back",
        faults=(Fault(from_weight=0, error_rate=0.2),),
    )
    monkeypatch.setitem(scenarios.SCENARIOS, "broken-staging", broken)
    session = await sim_session(tmp_path, "broken-staging", backend="kube")
    try:
        outcome = await session.rollout.run()
        server = next(c for c in session.world.closers if hasattr(c, "deployment_image"))
        staging = session.plan.targets.staging
        old = session.plan.version.image.rsplit(":", 1)[0] + f":{session.plan.version.from_}"
        assert outcome == Outcome.BLOCKED
        assert server.deployment_image(staging.namespace, staging.deployment) == old
        messages = [getattr(e, "message", "") for e in session.rollout.events]
        assert any("reverting staging" in m for m in messages)
        assert any(m.startswith("staging reverted") for m in messages)
    finally:
        await session.close()


async def test_ready_capacity_with_hpa_suspended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock()
    s = await start_sim(tmp_path, pod_ready_delay_s=3, clock=clock)
    try:
        add_hpa(s, monkeypatch)
        cluster = await s.cluster("replicas", clock=clock, hpa="suspend")
        try:
            with ReadyCapacity(s, "replicas", 10) as watch:
                await cluster.deploy("shop:2.0", "canary")
                for w in (5, 25, 50, 100):
                    await cluster.set_canary_weight(w)
                await cluster.rollback()
            watch.assert_held()
        finally:
            await cluster.close()
    finally:
        await s.server.stop()


# --- the production-shapes matrix ----------------------------------------------------------------

SHAPES = [
    "two-deploys-then-rollback",
    "hpa",
    "paused",
    "history-limit-0",
    "sidecar-first",
    "init-containers",
    "three-rule-route",
    "slow-pods",
    "api-faults",
    "expiring-credentials",
]
STRATEGIES = ["replicas", "nginx", "gateway"]
ROLLBACK_POINTS: list[int | str | None] = [None, 0, 1, 2, 3, "promotion", "verify"]
COMBOS = [(st, sh) for st in STRATEGIES for sh in SHAPES if sh != "three-rule-route" or st == "gateway"]
#: a seeded subset runs in the default suite; the whole matrix under -m slow
FAST = set(random.Random(18).sample(COMBOS, 7))


def _app_image(s: Sim, name: str) -> str | None:
    spec = s.deployment(name)["spec"]["template"]["spec"]
    return next(c["image"] for c in spec["containers"] if c["name"] == "app")


def _three_rule_route(s: Sim) -> list[Any]:
    from core.sim.kube.seed import HTTPROUTES

    route = s.server.store.get(HTTPROUTES, NS, ROUTE)
    canary_rule = route["spec"]["rules"][0]
    others = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "backendRefs": [{"name": "api", "port": 80}],
        },
        {
            "backendRefs": [
                {"name": "static", "port": 80, "weight": 3},
                {"name": "cdn", "port": 80, "weight": 1},
            ]
        },
    ]
    route["spec"]["rules"] = [others[0], canary_rule, others[1]]
    s.server.store.update(HTTPROUTES, NS, ROUTE, route)
    return others


def _inject_conflicts(s: Sim, rate: float, rng: random.Random) -> Any:
    """409 on a share of writes (the simulator's force_conflicts answers the next update/patch)."""

    def listener(change: Any) -> None:
        if rng.random() < rate:
            s.server.faults.force_conflicts = 1

    s.server.store.listeners.append(listener)
    return listener


@pytest.mark.parametrize(
    ("strategy", "shape"),
    [pytest.param(st, sh, marks=() if (st, sh) in FAST else pytest.mark.slow) for st, sh in COMBOS],
)
async def test_production_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, shape: str
) -> None:
    from core.plan import VersionSpec
    from tests.test_kube_adapter import _with_sidecar_first
    from tests.test_kube_credentials import exec_kubeconfig, rotate

    rng = random.Random(f"{strategy}/{shape}")
    rollback_at = rng.choice(ROLLBACK_POINTS)
    clock = VirtualClock()
    creds = shape == "expiring-credentials"
    s = await start_sim(
        tmp_path,
        pod_ready_delay_s=30 if shape == "slow-pods" else 3,
        clock=clock,
        tokens={"tok-1": None} if creds else None,
    )
    extra: dict[str, Any] = {}
    kubeconfig = s.kubeconfig
    untouched_rules: list[Any] = []
    try:
        if shape == "hpa":
            add_hpa(s, monkeypatch)
            extra["hpa"] = "suspend"
        elif shape == "paused":
            _patch_deployment(s, STABLE, paused=True)
        elif shape == "history-limit-0":
            _patch_deployment(s, STABLE, revisionHistoryLimit=0)
            rollback_at = "verify"  # after promotion: the old ReplicaSet is gone
        elif shape in {"sidecar-first", "init-containers"}:
            _with_sidecar_first(s)  # a sidecar listed first and an init container on the same image
            extra["container"] = "app"
        elif shape == "three-rule-route":
            untouched_rules = _three_rule_route(s)
        elif shape == "api-faults":
            s.server.faults.error_rate_500 = 0.1
            s.server.faults.error_rate_429 = 0.1
            _inject_conflicts(s, 0.2, rng)
        elif creds:
            kubeconfig, _ = exec_kubeconfig(s, tmp_path)
        cluster = await KubeCluster.connect(
            s.target(strategy, **extra), kubeconfig=str(kubeconfig), clock=clock
        )
        try:
            if shape == "paused":
                problems = await cluster.refusals(
                    VersionSpec.model_validate({"from": "1.0", "to": "2.0", "image": "shop:2.0"})
                )
                assert any("stable deployment prod/web is paused" in p for p in problems)
                with pytest.raises(ClusterError, match="is paused"):
                    await cluster.deploy("shop:2.0", "stable")
                assert _app_image(s, STABLE) == "shop:1.0"
                return
            if creds:
                changes = iter(range(10**9))

                def expire(_change: Any) -> None:
                    if next(changes) == 40:  # some way into the rollout
                        rotate(s, "tok-2")

                s.server.store.listeners.append(expire)
            with ReadyCapacity(s, strategy, 10) as watch:
                if shape == "two-deploys-then-rollback":
                    assert await drive(cluster) is None
                    await settled(cluster)
                    report = await drive(cluster, rollback_at=1, image="shop:3.0")
                    final = "shop:2.0"
                else:
                    report = await drive(cluster, rollback_at=rollback_at)
                    final = "shop:2.0" if rollback_at is None else "shop:1.0"
                await settled(cluster)
            watch.assert_held()
            s.server.faults.error_rate_500 = s.server.faults.error_rate_429 = 0.0
            assert _app_image(s, STABLE) == final
            assert (await cluster.describe()).weight == 0
            assert watch.ready("stable") == 10
            if report is not None:
                assert report.weight_reset
            if shape in {"sidecar-first", "init-containers"}:
                spec = s.deployment(STABLE)["spec"]["template"]["spec"]
                pairs = lambda key: [(c["name"], c["image"]) for c in spec[key]]  # noqa: E731
                assert pairs("containers") == [("cloud-sql-proxy", "proxy:2"), ("app", final)]
                assert pairs("initContainers") == [("migrate", "shop:1.0")]
            if shape == "three-rule-route":
                from core.sim.kube.seed import HTTPROUTES

                rules = s.server.store.get(HTTPROUTES, NS, ROUTE)["spec"]["rules"]
                assert [rules[0], rules[2]] == untouched_rules
            if creds:
                assert cluster.api.credentials.refreshes == 1
            if shape == "api-faults":
                assert sum(cluster.api.retries.values()) > 0
        finally:
            await cluster.close()
    finally:
        await s.server.stop()


def _example_role() -> dict[str, Any]:
    import yaml

    text = (Path(__file__).resolve().parent.parent / "examples" / "rbac.yaml").read_text()
    return next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Role")


async def test_examples_rbac_grants_every_call_the_adapter_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every (group, resource, verb) a whole rollout, promotion and rollback sends, for each strategy,
    with an HPA suspended and the lease held, is granted by examples/rbac.yaml's Role."""
    from core.adapters.kubernetes.api import describe_path

    role = _example_role()
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    clock = VirtualClock()
    s = await start_sim(tmp_path, pod_ready_delay_s=3, clock=clock)
    try:
        add_hpa(s, monkeypatch)
        for strategy in STRATEGIES:
            cluster = await s.cluster(strategy, clock=clock, hpa="suspend")
            try:
                await cluster.acquire_lease("alice@host", 30)
                await drive(cluster, rollback_at="verify", image=f"shop:{strategy}")
                await settled(cluster)
                await cluster.release_lease()
            finally:
                await cluster.close()
        used = set()
        for method, path in s.server.requests:
            verb, resource, _, _ = describe_path(method, path, None)
            plural, _, group = resource.partition(".")
            used.add((group, plural, verb))
        assert ("autoscaling", "horizontalpodautoscalers", "patch") in used
        assert used - granted == set()
    finally:
        await s.server.stop()
