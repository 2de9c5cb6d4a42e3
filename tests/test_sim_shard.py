"""core/sim/shard.py: simulated workloads in worker processes, their weights pushed from here."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.sim.shard import WorkloadShards, WorkloadSpec


def _spec(namespace: str, service: str) -> WorkloadSpec:
    return WorkloadSpec(namespace, service, "healthy", 400.0, 1, "1.0.0", "1.1.0", 0.5, 20.0)


@pytest.mark.slow  # ~2-4 s: two spawned worker processes import the simulated world
async def test_each_service_is_served_whole_by_one_shard_and_follows_the_pushed_weight() -> None:
    weights = {("prod", "a"): 0, ("stg", "a"): 0, ("prod", "b"): 0, ("stg", "b"): 0}
    specs = [_spec(ns, svc) for ns, svc in weights]
    shards = WorkloadShards(specs, 2, lambda ns, svc: weights[(ns, svc)], push_every_s=0.05)
    await shards.start()
    try:
        assert len(shards.pids) == 2 and set(shards.urls) == set(weights)
        # a service's namespaces share one metrics API (a staging query goes where production's does)
        assert shards.prometheus[("prod", "a")] == shards.prometheus[("stg", "a")]
        assert shards.prometheus[("prod", "a")] != shards.prometheus[("prod", "b")]
        weights[("prod", "a")] = 50  # the canary takes half of a's production traffic
        query = 'sum(http_requests_total{namespace="prod",version="1.1.0"})'
        async with httpx.AsyncClient(timeout=5) as client:
            seen = {}
            for _ in range(60):
                for svc in ("a", "b"):
                    answer = await client.get(
                        f"{shards.prometheus[('prod', svc)]}/api/v1/query", params={"query": query}
                    )
                    result = answer.json()["data"]["result"]
                    seen[svc] = float(result[0]["value"][1]) if result else 0.0
                if seen["a"] > 0:
                    break
                await asyncio.sleep(0.1)
            assert seen["a"] > 0 and seen["b"] == 0, seen  # only a's canary serves
            health = await client.get(f"{shards.urls[('prod', 'a')]}/canary/health/ready")
            assert health.status_code == 200
    finally:
        await shards.stop()
    assert not [p for p in shards._procs if p.is_alive()]  # every worker gone
    assert shards.lags and max(shards.lags) < 30  # each shard said how late its loop woke
