"""Sessions against a cluster: a real plan through the real adapter, one driver at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.clock import SystemClock
from core.plan import parse_plan
from core.session import DriverConflict, open_session
from tests.kube_helpers import CANARY, NS, STABLE, Sim, sim  # noqa: F401


def kube_plan(kubeconfig: Path) -> str:
    return f"""
service: web
namespace: {NS}
version: {{from: "1.0", to: "1.1", image: "shop:1.1"}}
change: {{id: CHG-9, class: normal, author: alice}}
cluster: {{kind: kube, kubeconfig: "{kubeconfig}"}}
targets:
  staging: {{namespace: {NS}, deployment: {STABLE}, canary_deployment: {CANARY}}}
  production: {{namespace: {NS}, deployment: {STABLE}, canary_deployment: {CANARY}}}
"""


async def test_a_second_driver_is_refused_and_told_who_drives(
    sim: Sim,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second driver watches the held lease for up to one duration to see it renewed: a 3 s lease
    # keeps that wait short (with the default 30 s one it took 5 s, and 40 s once under load).
    monkeypatch.setenv("DEPLOYDECK_LEASE_TTL", "3")
    plan = parse_plan(kube_plan(sim.kubeconfig), "plan.yaml", env={})
    first = await open_session(plan, actor="alice", clock=SystemClock(), journal_path=tmp_path / "j.jsonl")
    try:
        with pytest.raises(DriverConflict, match=r"being driven by alice@"):
            await open_session(plan, actor="bob", clock=SystemClock(), journal_path=tmp_path / "j.jsonl")
    finally:
        await first.close()
    # released on close: the next driver gets it
    second = await open_session(plan, actor="bob", clock=SystemClock(), journal_path=tmp_path / "j.jsonl")
    await second.close()


async def test_real_plan_state_is_written_to_the_deployment_annotation(sim: Sim, tmp_path: Path) -> None:  # noqa: F811
    plan = parse_plan(kube_plan(sim.kubeconfig), "plan.yaml", env={})
    session = await open_session(plan, actor="alice", clock=SystemClock(), journal_path=tmp_path / "j.jsonl")
    try:
        await session.rollout._set_weight(5)
        state = await session.world.production.read_state()
        assert state is not None and state["weight"] == 10  # 1 of 10 replicas: 10 % effective
        annotations = sim.deployment()["metadata"]["annotations"]
        assert "deploydeck.io/state" in annotations
    finally:
        await session.close()


async def test_a_replica_count_that_cannot_express_the_first_step_is_refused(
    sim: Sim,  # noqa: F811
    tmp_path: Path,
) -> None:
    from core.plan import PlanError

    text = kube_plan(sim.kubeconfig).replace(
        "production: {namespace: prod, deployment: web, canary_deployment: web-canary}",
        "production: {namespace: prod, deployment: web, canary_deployment: web-canary, replicas: 4}",
    )
    plan = parse_plan(text, "plan.yaml", env={})
    with pytest.raises(PlanError, match=r"plan.yaml: targets.production.replicas: .*step 5% with 4 replicas"):
        await open_session(
            plan, actor="alice", clock=SystemClock(), journal_path=tmp_path / "j.jsonl", plan_path="plan.yaml"
        )
