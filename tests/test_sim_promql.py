"""`sim serve`'s simulated metrics API (no Prometheus installed): PromQL as Prometheus evaluates it.

Unit checks of the evaluator's semantics, then the adapters' own queries answered by the
simulated API and by a real Prometheus scraping the same workload, compared.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from core.adapters.prometheus import PrometheusMetrics
from core.clock import SystemClock
from core.plan import PrometheusSpec, QueriesSpec
from core.sim.promql import PromQLError, SeriesStore, evaluate
from core.sim.scenarios import get_scenario
from core.sim.sim_prometheus import SimPrometheus
from core.sim.workload import SimWorkload


def _store() -> SeriesStore:
    store = SeriesStore()
    for t in range(0, 61, 10):  # two versions' counters, 10 s apart; 1.5.0 resets once
        store.add({"__name__": "req", "version": "1.4.2", "code": "200"}, t, 100.0 * t)
        store.add({"__name__": "req", "version": "1.4.2", "code": "500"}, t, 1.0 * t)
        store.add({"__name__": "req", "version": "1.5.0", "code": "200"}, t, 10.0 * (t if t < 30 else t - 30))
    return store


def test_sum_without_a_clause_is_one_series_and_by_keeps_the_named_labels() -> None:
    store = _store()
    total = evaluate("sum(req)", store, 60)
    assert total == [((), 6000.0 + 60.0 + 300.0)]
    by_version = dict(evaluate("sum by (version) (req)", store, 60))  # type: ignore[arg-type]
    assert by_version == {(("version", "1.4.2"),): 6060.0, (("version", "1.5.0"),): 300.0}


def test_increase_extrapolates_like_prometheus_and_survives_a_counter_reset() -> None:
    store = _store()
    # samples at 10..60 inside (0, 60]: 50 s sampled, extrapolated by up to 1.1 intervals to 60 s
    grown = dict(evaluate('increase(req{version="1.4.2",code="200"}[60s])', store, 60))  # type: ignore[arg-type]
    assert grown[(("code", "200"), ("version", "1.4.2"))] == pytest.approx(6000.0)
    rate = dict(evaluate('rate(req{version="1.5.0"}[60s])', store, 60))  # type: ignore[arg-type]
    # 10/s before and after the reset at 30 s: the reset is not a negative increase
    assert rate[(("code", "200"), ("version", "1.5.0"))] == pytest.approx(10.0 * 500 / 600, rel=0.2)


def test_division_or_label_replace_and_comparisons_match_one_to_one() -> None:
    store = _store()
    ratio = evaluate(
        'sum by (version) (rate(req{code=~"5.."}[60s])) or 0 * sum by (version) (rate(req[60s]))',
        store,
        60,
    )
    assert {dict(k)["version"]: v for k, v in ratio} == {"1.4.2": pytest.approx(1.0), "1.5.0": 0.0}  # type: ignore[union-attr]
    tagged = evaluate('label_replace(vector(2), "dd_metric", "requests", "", "")', store, 60)
    assert tagged == [((("dd_metric", "requests"),), 2.0)]
    assert evaluate("sum(req) >= 1e9", store, 60) == []
    assert evaluate("sum(nothing) or vector(0)", store, 60) == [((), 0.0)]


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    store = SeriesStore()
    for le, count in (("0.1", 50.0), ("0.2", 90.0), ("+Inf", 100.0)):
        store.add({"__name__": "h_bucket", "le": le}, 0, 0.0)
        store.add({"__name__": "h_bucket", "le": le}, 10, count)
    [(_, p50)] = evaluate("histogram_quantile(0.5, sum by (le) (rate(h_bucket[20s])))", store, 10)  # type: ignore[misc]
    [(_, p75)] = evaluate("histogram_quantile(0.75, sum by (le) (rate(h_bucket[20s])))", store, 10)  # type: ignore[misc]
    assert p50 == pytest.approx(0.1) and p75 == pytest.approx(0.1 + 0.1 * 25 / 40)


@pytest.mark.parametrize("query", ["topk(3, req)", "req offset 5m", "sum(req", 'req{code~"5"}', "rate(req)"])
def test_outside_the_subset_is_an_error_never_a_number(query: str) -> None:
    with pytest.raises(PromQLError):
        evaluate(query, _store(), 60)


@pytest.mark.real
async def test_the_adapters_queries_read_the_same_from_the_simulated_api_as_from_prometheus(
    prometheus_factory,
) -> None:
    workload = SimWorkload(
        get_scenario("bad-canary").model_copy(update={"requests_per_second": 2000.0}),
        service="checkout",
        namespace="shop",
        stable_version="1.4.2",
        canary_version="1.5.0",
        weight=lambda: 50,
        clock=SystemClock(),
    )
    await workload.start()
    real = prometheus_factory([workload.target])
    simulated = SimPrometheus([workload])
    await simulated.start()
    readers = [
        PrometheusMetrics(
            PrometheusSpec(url=url, timeout=5, retries=0),
            service="checkout",
            namespace="shop",
            canary_version="1.5.0",
            baseline_version="1.4.2",
            queries=QueriesSpec(),
            min_requests=20,
            clock=SystemClock(),
        )
        for url in (real.url, simulated.url)
    ]
    try:
        await asyncio.to_thread(real.wait_for_scrapes, workload.target, 6)
        from_real, from_sim = [await r.canary_metrics(5.0) for r in readers]
    finally:
        for reader in readers:
            await reader.close()
        await simulated.stop()
        await workload.stop()
    assert from_real.reason is None and from_sim.reason is None, (from_real, from_sim)
    for side in ("canary", "baseline"):
        a, b = getattr(from_real, side), getattr(from_sim, side)
        assert b.requests == pytest.approx(a.requests, rel=0.25), side
        assert b.error_rate == pytest.approx(a.error_rate, abs=0.004), side
        for q in ("p50", "p99"):
            assert getattr(b, q) == pytest.approx(getattr(a, q), rel=0.2), (side, q)
    assert not math.isnan(from_sim.canary.error_rate or math.nan)
