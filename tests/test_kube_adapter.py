"""KubeCluster against the simulated API server over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from core.adapters.kubernetes import KubeCluster, check_expressible
from core.clock import SystemClock, VirtualClock
from core.ports import Cluster, ClusterError
from tests.kube_helpers import CANARY, INGRESS, NS, ROUTE, STABLE, Sim, sim, start_sim

__all__ = ["sim"]

ROOT = Path(__file__).resolve().parent.parent
STEPS = [5, 25, 50, 100]
EXPECTED = {"replicas": [10, 30, 50, 100], "nginx": STEPS, "gateway": STEPS}


async def _ready_canary(s: Sim, cluster: KubeCluster) -> None:
    """A canary on a new image with every pod Ready: what any weight above 0 now needs first."""
    from tests.kube_helpers import eventually

    await cluster.deploy("shop:2.0", "canary")
    await eventually(
        lambda: (
            s.deployment(CANARY).get("status", {}).get("updatedReplicas", 0)
            == s.deployment(CANARY).get("status", {}).get("availableReplicas", -1)
            == s.deployment(CANARY)["spec"]["replicas"]
            > 0
        ),
        what="canary rolled out",
    )


def writes(cluster: KubeCluster) -> int:
    return sum(n for verb, n in cluster.api_calls.items() if verb in {"create", "update", "patch", "delete"})


@pytest.mark.parametrize("strategy", ["replicas", "nginx", "gateway"])
async def test_each_strategy_step_by_step(sim: Sim, strategy: str) -> None:
    cluster = await sim.cluster(strategy)
    assert isinstance(cluster, Cluster)
    try:
        progress: list[str] = []
        await cluster.deploy("shop:2.0", "canary")
        await cluster.wait_ready("canary", 10, progress.append)
        assert progress and "rolled out" in progress[-1]
        assert sim.server.deployment_image(NS, CANARY) == "shop:2.0"
        assert sim.server.deployment_image(NS, STABLE) == "shop:1.0"
        for percent, expected in zip(STEPS, EXPECTED[strategy], strict=True):
            before = writes(cluster)
            change = await cluster.set_canary_weight(percent)
            assert (change.requested, change.effective) == (percent, expected)
            assert writes(cluster) - before <= 2
            if strategy != "replicas":  # replicas: the server's split follows pods as they turn ready
                assert sim.server.canary_weight(NS, STABLE, CANARY, strategy, INGRESS, ROUTE) == expected
            status = await cluster.describe()
            assert status.weight == expected and status.canary_image == "shop:2.0"
        report = await cluster.rollback()
        assert report.weight_reset and not report.stable_restored
        assert (await cluster.describe()).weight == 0
        assert sim.server.canary_weight(NS, STABLE, CANARY, strategy, INGRESS, ROUTE) == 0
    finally:
        await cluster.close()


async def test_replicas_strategy_scales_in_proportion(sim: Sim) -> None:
    cluster = await sim.cluster("replicas")
    try:
        change = await cluster.set_canary_weight(25)
        assert change.detail == "3 of 10 pods on the canary (30%)"
        assert sim.deployment(CANARY)["spec"]["replicas"] == 3
        assert sim.deployment(STABLE)["spec"]["replicas"] == 7
        # the total survives in the state annotation for a restarted instance
        other = await sim.cluster("replicas")
        try:
            assert (await other.set_canary_weight(50)).effective == 50
            assert sim.deployment(STABLE)["spec"]["replicas"] == 5
        finally:
            await other.close()
    finally:
        await cluster.close()


def test_check_expressible() -> None:
    target = Sim.target(None, "replicas")  # type: ignore[arg-type]
    assert check_expressible(target, [5, 25, 50, 100], 10) is None
    message = check_expressible(target, [5, 25, 50, 100], 4)
    assert message is not None and "5%" in message and "at least 10 replicas" in message
    assert check_expressible(target, [50], 1) is not None
    assert check_expressible(Sim.target(None, "nginx"), [1], 1) is None  # type: ignore[arg-type]


async def _stable_at_revision_2(s: Sim) -> KubeCluster:
    cluster = await s.cluster("replicas")
    await cluster.write_state({"phase": "canary", "step": 2})
    await cluster.deploy("shop:2.0", "stable")
    await cluster.wait_ready("stable", 10)
    return cluster


async def test_rollback_restores_previous_template_exactly(sim: Sim) -> None:
    rev1 = sim.deployment()["spec"]["template"]
    cluster = await _stable_at_revision_2(sim)
    try:
        assert sim.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        before = writes(cluster)
        report = await cluster.rollback()
        assert report.stable_restored and report.to_revision == 1
        assert writes(cluster) - before == 1  # weight already 0: only the undo patch
        assert sim.deployment()["spec"]["template"] == rev1
        assert await cluster.read_state() == {"phase": "canary", "step": 2}
        again = await cluster.rollback()
        assert not again.stable_restored  # nothing left to undo
    finally:
        await cluster.close()


async def test_rollback_matches_kubectl_rollout_undo(tmp_path: Path) -> None:
    ours, theirs = await start_sim(tmp_path / "a"), await start_sim(tmp_path / "b")
    try:
        kubectl = theirs.kubectl()
        for s in (ours, theirs):
            await (await _stable_at_revision_2(s)).close()
        cluster = await ours.cluster("replicas")
        await cluster.rollback()
        await cluster.close()
        await kubectl.run("-n", NS, "rollout", "undo", f"deployment/{STABLE}")

        def comparable(s: Sim) -> tuple[object, object]:
            d = s.deployment()
            annotations = {
                k: v for k, v in d["metadata"]["annotations"].items() if k != "deploydeck.io/state"
            }
            return d["spec"]["template"], annotations

        from tests.kube_helpers import eventually

        await eventually(lambda: comparable(ours) == comparable(theirs), what="same template and annotations")
        rs_revisions = lambda s: sorted(  # noqa: E731
            (
                rs["spec"]["template"]["spec"]["containers"][0]["image"],
                rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision"),
            )
            for rs in s.replicasets()
            if "canary" not in rs["metadata"]["name"]
        )
        await eventually(lambda: rs_revisions(ours) == rs_revisions(theirs), what="same revision history")
        assert rs_revisions(ours) == [("shop:1.0", "3"), ("shop:2.0", "2")]
    finally:
        await ours.server.stop()
        await theirs.server.stop()


async def test_rollout_undo_refuses_paused_and_skips_equal(sim: Sim) -> None:
    cluster = await _stable_at_revision_2(sim)
    try:
        await cluster.api.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{NS}/deployments/{STABLE}",
            body={"spec": {"paused": True}},
            content_type="application/merge-patch+json",
        )
        with pytest.raises(ClusterError, match="paused"):
            await cluster.rollback()
        assert sim.deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:2.0"
        await cluster.api.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{NS}/deployments/{STABLE}",
            body={"spec": {"paused": False}},
            content_type="application/merge-patch+json",
        )
        report = await cluster.rollout_undo(to_revision=2)
        assert not report.stable_restored and "already matches revision 2" in report.detail
    finally:
        await cluster.close()


async def test_conflicts_are_reread_and_retried(sim: Sim) -> None:
    for strategy in ("gateway", "replicas"):
        cluster = await sim.cluster(strategy)
        try:
            await cluster.describe()
            if strategy == "gateway":  # the route's weight needs a Ready canary first
                await cluster.deploy("shop:2.0", "canary")
                await cluster.wait_ready("canary", 10)
            sim.server.faults.force_conflicts = 2
            change = await cluster.set_canary_weight(25) if strategy == "gateway" else None
            if change is not None:
                assert change.effective == 25
            else:
                await cluster.deploy("shop:3.0", "canary")
                assert sim.server.deployment_image(NS, CANARY) == "shop:3.0"
            assert sim.server.faults.force_conflicts == 0
        finally:
            await cluster.close()


async def test_transient_errors_retry_with_backoff_until_deadline(sim: Sim) -> None:
    clock = VirtualClock()
    cluster = await sim.cluster("nginx", clock=clock)
    try:
        await _ready_canary(sim, cluster)
        sim.server.faults.error_rate_500 = 0.5
        sim.server.faults.error_rate_429 = 0.2
        for percent in STEPS:
            assert (await cluster.set_canary_weight(percent)).effective == percent
        assert sum(cluster.api.retries.values()) > 0
        sim.server.faults.error_rate_500 = 1.0
        started = clock.now()
        with pytest.raises(ClusterError, match=r"gave up after \d+ attempts") as err:
            await cluster.describe()
        assert str(err.value).startswith("get deployments.apps prod/web on http://127.0.0.1:")
        assert str(err.value).endswith("(HTTP 500)")
        waited = (clock.now() - started).total_seconds()
        assert 10 < waited <= cluster.api.deadline_s  # virtual seconds: no real sleeping
        sim.server.faults.error_rate_500 = 0.0
        sim.server.faults.error_rate_429 = 0.0
        sim.server.faults.drop_rate = 0.5
        assert (await cluster.describe()).weight == 100
    finally:
        sim.server.faults.drop_rate = 0.0
        await cluster.close()


async def test_lease_hand_over_after_expiry(sim: Sim) -> None:
    first_clock = VirtualClock(auto_advance=False)  # a driver that stops renewing (crashed)
    first = await sim.cluster(clock=first_clock)
    later = VirtualClock(start=first_clock.now() + timedelta(seconds=5))
    second = await sim.cluster(clock=later)
    try:
        got = await first.acquire_lease("alice@host-a", ttl_s=15)
        assert got.acquired and got.holder == "alice@host-a"
        observer = await second.acquire_lease("bob@host-b", ttl_s=15)
        assert not observer.acquired and observer.holder == "alice@host-a"
        # expiry runs from when bob SAW the record (client-go), not from alice's renewTime
        assert observer.expires_at == later.now() + timedelta(seconds=15)
        await later.advance(16)  # unchanged for 16 s of bob's own clock
        taken = await second.acquire_lease("bob@host-b", ttl_s=15)
        assert taken.acquired and taken.holder == "bob@host-b"
        await first_clock.advance(3)  # alice renews within her deadline but finds bob there
        with pytest.raises(ClusterError, match="taken over by bob@host-b"):
            await first.renew_lease()
        lease = sim.server.store.get(
            __import__("core.sim.kube.resources", fromlist=["BY_PATH"]).BY_PATH[
                ("coordination.k8s.io", "v1", "leases")
            ],
            NS,
            f"deploydeck-{STABLE}",
        )
        assert lease["spec"]["leaseTransitions"] == 1
        await second.renew_lease()
    finally:
        await first.close()
        await second.close()


async def test_rbac_forbidden_and_unauthorized_messages(tmp_path: Path) -> None:
    s = await start_sim(tmp_path, tokens={"viewer": {"get", "list", "watch"}}, token="viewer")
    try:
        cluster = await s.cluster("replicas")
        try:
            await cluster.describe()
            with pytest.raises(ClusterError) as err:
                await cluster.set_canary_weight(25)
            message = str(err.value)
            assert message.startswith(
                'RBAC: not allowed to patch deployments.apps in namespace "prod" (HTTP 403'
            )
            assert "viewer" not in message  # the token never shows
        finally:
            await cluster.close()
        stranger = s.server.write_kubeconfig(tmp_path / "other", token="nope")
        cluster = await KubeCluster.connect(s.target(), kubeconfig=str(stranger), clock=SystemClock())
        try:
            with pytest.raises(
                ClusterError, match=r"not authenticated .* \(HTTP 401\) to get deployments.apps"
            ):
                await cluster.describe()
        finally:
            await cluster.close()
    finally:
        await s.server.stop()


async def test_missing_deployment_and_bad_kubeconfig_are_clear(sim: Sim, tmp_path: Path) -> None:
    cluster = await sim.cluster("replicas", deployment="nope")
    try:
        with pytest.raises(
            ClusterError, match=r"^deployment prod/nope not found on http://127\.0\.0\.1:\d+ \(HTTP 404"
        ):
            await cluster.describe()
    finally:
        await cluster.close()
    with pytest.raises(ClusterError, match="kubeconfig"):
        await KubeCluster.connect(
            sim.target(), kubeconfig=str(sim.kubeconfig), clock=SystemClock(), context="nowhere"
        )
    with pytest.raises(ClusterError, match="kubeconfig"):
        await KubeCluster.connect(sim.target(), kubeconfig=str(tmp_path / "absent"), clock=SystemClock())


async def test_wait_ready_fails_on_deadline(sim: Sim) -> None:
    sim.server.controller.unready_images.add("shop:broken")
    cluster = await sim.cluster("replicas")
    try:
        await cluster.deploy("shop:broken", "stable")
        with pytest.raises(ClusterError, match=r"^deployment prod/web not ready after 0.5s: "):
            await cluster.wait_ready("stable", 0.5)
    finally:
        await cluster.close()


async def test_state_annotation_round_trip(sim: Sim) -> None:
    cluster = await sim.cluster("nginx")
    try:
        assert await cluster.read_state() is None
        await cluster.write_state({"phase": "canary", "step": 1, "weight": 25})
        other = await sim.cluster("nginx")
        assert await other.read_state() == {"phase": "canary", "step": 1, "weight": 25}
        await other.close()
        sim.server.store.update(
            __import__("core.sim.kube.controller", fromlist=["DEPLOYMENTS"]).DEPLOYMENTS,
            NS,
            STABLE,
            {
                **sim.deployment(),
                "metadata": {**sim.deployment()["metadata"], "annotations": {"deploydeck.io/state": "{oops"}},
            },
        )
        with pytest.raises(ClusterError, match=r"deploydeck\.io/state is not valid JSON"):
            await cluster.read_state()
    finally:
        await cluster.close()


def test_importing_the_adapter_does_not_import_kubernetes() -> None:
    code = "import sys, core.adapters.kubernetes, core.sim.kube; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_wait_ready_reports_progress_deadline_exceeded(sim: Sim) -> None:
    sim.server.controller.unready_images.add("shop:broken")
    cluster = await sim.cluster("replicas")
    try:
        await cluster.api.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{NS}/deployments/{STABLE}",
            body={"spec": {"progressDeadlineSeconds": 1}},
            content_type="application/merge-patch+json",
        )
        await cluster.deploy("shop:broken", "stable")
        with pytest.raises(
            ClusterError, match=r"^deployment prod/web failed: ProgressDeadlineExceeded: ReplicaSet"
        ):
            await cluster.wait_ready("stable", 30)
    finally:
        await cluster.close()


async def test_rollback_restores_the_stable_of_this_deploy_not_an_older_one(sim: Sim) -> None:
    """Defect 1: deploy 1.0 → 2.0 completes; deploy 2.0 → 3.0 rolls back at 5 %: stable stays on 2.0."""
    cluster = await sim.cluster("replicas")
    try:
        for image in ("shop:2.0", "shop:3.0"):
            await cluster.deploy(image, "canary")
            await cluster.wait_ready("canary", 10)
            await cluster.set_canary_weight(5)
            if image == "shop:3.0":
                break
            await cluster.deploy(image, "stable")
            await cluster.wait_ready("stable", 10)
            await cluster.set_canary_weight(0)
        report = await cluster.rollback()
        assert not report.stable_restored  # this deploy never touched stable
        assert sim.server.deployment_image(NS, STABLE) == "shop:2.0"
    finally:
        await cluster.close()


async def test_gateway_changes_only_the_rule_with_the_canary_backend(sim: Sim) -> None:
    """Defect 5: a 3-rule HTTPRoute; only the canary's rule moves and the reported weight is that rule's."""
    from core.sim.kube.seed import HTTPROUTES

    route = sim.server.store.get(HTTPROUTES, NS, ROUTE)
    canary_rule = route["spec"]["rules"][0]
    other = {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]}
    route["spec"]["rules"] = [
        {**other, "backendRefs": [{"name": "api", "port": 80, "weight": 1}]},
        canary_rule,
        {
            "backendRefs": [
                {"name": "static", "port": 80, "weight": 3},
                {"name": "cdn", "port": 80, "weight": 1},
            ]
        },
    ]
    sim.server.store.update(HTTPROUTES, NS, ROUTE, route)
    cluster = await sim.cluster("gateway")
    try:
        await _ready_canary(sim, cluster)
        change = await cluster.set_canary_weight(25)
        assert change.effective == 25
        rules = sim.server.store.get(HTTPROUTES, NS, ROUTE)["spec"]["rules"]
        assert rules[0]["backendRefs"] == [{"name": "api", "port": 80, "weight": 1}]
        assert [r["weight"] for r in rules[1]["backendRefs"]] == [75, 25]
        assert [r["weight"] for r in rules[2]["backendRefs"]] == [3, 1]
        assert (await cluster.describe()).weight == 25
    finally:
        await cluster.close()


async def test_every_kubeconfig_path_is_read(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 8: $KUBECONFIG lists several files, as kubectl merges them; a missing first file is skipped."""
    from core.adapters.kubernetes import KubeCluster

    monkeypatch.setenv("KUBECONFIG", f"{sim.tmp / 'absent-config'}:{sim.kubeconfig}")
    cluster = await KubeCluster.connect(sim.target("replicas"), kubeconfig=None, clock=SystemClock())
    try:
        assert (await cluster.describe()).stable_image == "shop:1.0"
    finally:
        await cluster.close()


async def test_retry_after_from_the_server_is_honoured_beyond_two_seconds(sim: Sim) -> None:
    """Defect 8: a 429 with Retry-After: 5 waits 5 s (within the call's deadline), not a capped 2 s."""
    delays: list[float] = []

    class RecordingClock(SystemClock):
        async def sleep(self, seconds: float) -> None:
            delays.append(seconds)
            sim.server.faults.error_rate_429 = 0.0  # one throttled answer, then the server recovers

    sim.server.faults.retry_after_s = 5
    sim.server.faults.error_rate_429 = 1.0
    cluster = await sim.cluster("replicas", clock=RecordingClock())
    try:
        assert (await cluster.describe()).stable_image == "shop:1.0"
        assert delays and delays[0] >= 5
    finally:
        await cluster.close()


def _with_sidecar_first(sim: Sim) -> None:
    from core.sim.kube.controller import DEPLOYMENTS

    for name in (STABLE, CANARY):
        d = sim.deployment(name)
        spec = d["spec"]["template"]["spec"]
        spec["containers"].insert(0, {"name": "cloud-sql-proxy", "image": "proxy:2"})
        spec["initContainers"] = [{"name": "migrate", "image": "shop:1.0"}]
        sim.server.store.update(DEPLOYMENTS, NS, name, d)


async def test_image_goes_to_the_named_container_not_a_sidecar_listed_first(sim: Sim) -> None:
    """Defect 6: a sidecar listed first never receives the new image; without a name, an error lists them."""
    _with_sidecar_first(sim)
    guessing = await sim.cluster("replicas")
    try:
        with pytest.raises(ClusterError, match="cloud-sql-proxy, app"):
            await guessing.deploy("shop:2.0", "canary")
    finally:
        await guessing.close()
    cluster = await sim.cluster("replicas", container="app")
    try:
        await cluster.deploy("shop:2.0", "canary")
        containers = sim.deployment(CANARY)["spec"]["template"]["spec"]["containers"]
        assert [(c["name"], c["image"]) for c in containers] == [
            ("cloud-sql-proxy", "proxy:2"),
            ("app", "shop:2.0"),
        ]
        assert (await cluster.describe()).canary_image == "shop:2.0"
    finally:
        await cluster.close()
    init = await sim.cluster("replicas", container="migrate")
    try:
        await init.deploy("shop:2.0", "canary")
        inits = sim.deployment(CANARY)["spec"]["template"]["spec"]["initContainers"]
        # the API server defaults init containers like containers (imagePullPolicy, ...): compare what we set
        assert [(c["name"], c["image"]) for c in inits] == [("migrate", "shop:2.0")]
    finally:
        await init.close()


async def test_live_size_wins_over_a_total_saved_by_an_earlier_rollout(sim: Sim) -> None:
    """Defect 3: an operator scales stable to 30 between releases; the next rollout keeps 30 pods, not 10."""
    from core.sim.kube.controller import DEPLOYMENTS

    first = await sim.cluster("replicas")
    try:
        await first.set_canary_weight(25)
        await first.set_canary_weight(0)
    finally:
        await first.close()
    d = sim.deployment(STABLE)
    d["spec"]["replicas"] = 30
    sim.server.store.update(DEPLOYMENTS, NS, STABLE, d)
    cluster = await sim.cluster("replicas")
    try:
        change = await cluster.set_canary_weight(10)
        assert change.detail == "3 of 30 pods on the canary (10%)"
        assert sim.deployment(STABLE)["spec"]["replicas"] == 27
    finally:
        await cluster.close()
