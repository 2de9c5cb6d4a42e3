"""Issue 14, item 1: demo time and Prometheus time agree.

`demo --prometheus --headless` ran the engine in virtual time while Prometheus scraped once a
wall second: whole windows passed between two scrapes, the canary "served 0 requests in the
window", and bad-canary rolled back for no data at 5 % instead of the error rate at 25 %. The
Prometheus demo now runs at the fastest speed where each analysis interval spans at least one
scrape and each read window at least MIN_SCRAPES, and refuses anything faster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.adapters.prometheus import MIN_SCRAPES
from core.clock import ScaledClock, VirtualClock
from core.session import demo_plan
from core.sim.prometheus_demo import prometheus_demo_speed, prometheus_max_speed, start_prometheus_metrics
from core.sim.scenarios import get_scenario
from tests.test_cli import deploydeck


def test_the_demo_plan_runs_at_30x_on_a_1s_scrape_and_never_faster() -> None:
    plan = demo_plan("healthy")
    assert prometheus_max_speed(plan, 1.0) == 30.0  # 30 s interval = 1 scrape; 300 s lookback = 10
    assert prometheus_max_speed(plan, 0.25) == 120.0
    spec = plan.analysis
    speed = prometheus_max_speed(plan, 1.0)
    assert spec.interval / speed >= 1.0 and spec.lookback / speed >= MIN_SCRAPES * 1.0
    assert prometheus_demo_speed(plan, None) == 30.0  # headless default and --speed max
    assert prometheus_demo_speed(plan, 10.0) == 10.0
    with pytest.raises(ValueError, match="use --speed 30 or less"):
        prometheus_demo_speed(plan, 300.0)


async def test_virtual_time_is_refused_for_a_real_prometheus() -> None:
    plan = demo_plan("healthy")
    with pytest.raises(ValueError, match="wall clock"):
        await start_prometheus_metrics(plan, get_scenario("healthy"), object(), VirtualClock())
    with pytest.raises(ValueError, match="--speed"):
        await start_prometheus_metrics(plan, get_scenario("healthy"), object(), ScaledClock(300.0))


def test_demo_prometheus_faster_than_the_scrape_is_bad_input(tmp_path: Path) -> None:
    result = deploydeck("demo", "--prometheus", "--headless", "--speed", "300", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--speed 300 with --prometheus" in result.stderr and "use --speed 30 or less" in result.stderr


@pytest.mark.real
@pytest.mark.slow
def test_headless_bad_canary_through_prometheus_rolls_back_for_the_error_rate_at_25(tmp_path: Path) -> None:
    """The issue's own command line (about a minute at 30x)."""
    from tests.real_servers import PROMETHEUS_BIN, require_binary

    require_binary(PROMETHEUS_BIN)
    result = deploydeck(
        "demo",
        "--prometheus",
        "--headless",
        "--json",
        "--scenario",
        "bad-canary",
        tmp_path=tmp_path,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    (trigger,) = [x for x in lines if x["type"] == "rollback_triggered"]
    assert (trigger["rule"], trigger["weight_at_trigger"]) == ("error_rate", 25)
    assert not [x for x in lines if x["type"] == "paused"]
