"""Verification reads the window the canary analysis judged on, not one analysis interval (issue 12)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from core.domain import CanaryMetrics
from core.plan import parse_plan
from core.verification import check_error_rate, check_latency
from tests.test_verification import PLAN, FakeMetrics, make_ctx


@dataclass
class WindowMetrics(FakeMetrics):
    """Records the windows it is asked for."""

    windows: list[float] = field(default_factory=list)

    async def canary_metrics(self, window_s: float) -> CanaryMetrics:
        self.windows.append(window_s)
        return await super().canary_metrics(window_s)


def _plan(interval: str, lookback: str) -> Any:
    text = PLAN + f"analysis: {{interval: {interval}, lookback: {lookback}}}\n"
    plan = parse_plan(text, env={})
    assert plan.analysis.interval == pytest.approx(float(interval.rstrip("s")))
    return plan


@pytest.mark.parametrize(("interval", "lookback", "expected"), [("2s", "10s", 10.0), ("60s", "30s", 60.0)])
async def test_verification_reads_the_analysis_lookback(
    interval: str, lookback: str, expected: float
) -> None:
    metrics = WindowMetrics()
    ctx = make_ctx(plan=_plan(interval, lookback), metrics=metrics)
    await check_error_rate(ctx)
    await check_latency(ctx)
    assert metrics.windows == [expected, expected]


async def test_an_explicit_window_still_wins() -> None:
    metrics = WindowMetrics()
    ctx = make_ctx(plan=_plan("2s", "10s"), metrics=metrics, window_s=4.0)
    await check_error_rate(ctx)
    assert metrics.windows == [4.0]
