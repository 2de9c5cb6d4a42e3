"""Issue 14, item 2: the demo's time and Prometheus's time agree.

Under the demo's ScaledClock a plan window of N seconds spans N / speed wall seconds.
At speed 300 a 300 s lookback became ``[1s]``, shorter than two 1 s scrapes, so the
healthy rollout's verification read "no data: empty result … window 1000ms". A range
never spans fewer than four scrape intervals.
"""

from __future__ import annotations

import re

from core.adapters.prometheus import MIN_SCRAPES, PrometheusMetrics
from core.clock import ScaledClock, SystemClock
from core.plan import PrometheusSpec, QueriesSpec


def _metrics(clock: object, scrape_interval_s: float | None) -> PrometheusMetrics:
    return PrometheusMetrics(
        PrometheusSpec(url="http://127.0.0.1:9", timeout=1, retries=0),
        service="checkout",
        namespace="shop",
        canary_version="1.5.0",
        baseline_version="1.4.2",
        queries=QueriesSpec(),
        min_requests=50,
        clock=clock,  # type: ignore[arg-type]
        scrape_interval_s=scrape_interval_s,
    )


def _ranges(promql: str) -> set[str]:
    return set(re.findall(r"\[([^\]]+)\]", promql))


def test_a_scaled_window_never_spans_fewer_than_four_scrapes() -> None:
    metrics = _metrics(ScaledClock(300.0), scrape_interval_s=1.0)
    assert metrics.window_for(300.0) == MIN_SCRAPES * 1.0
    assert _ranges(metrics.batched_query(300.0)) == {"4000ms"}


def test_a_window_longer_than_four_scrapes_is_left_as_scaled() -> None:
    metrics = _metrics(ScaledClock(20.0), scrape_interval_s=1.0)
    assert metrics.window_for(300.0) == 15.0
    assert _ranges(metrics.batched_query(300.0)) == {"15000ms"}


def test_real_time_plans_keep_their_windows() -> None:
    metrics = _metrics(SystemClock(), scrape_interval_s=15.0)
    assert metrics.window_for(300.0) == 300.0
    # unknown scrape interval: no floor (the plan's own windows are trusted)
    assert _metrics(SystemClock(), scrape_interval_s=None).window_for(2.0) == 2.0
