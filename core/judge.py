"""Statistical canary judge: Mann-Whitney U per metric, scored like Kayenta's NetflixACAJudge.

Optional per plan and always *beside* the workflow's fixed triggers, never instead
of them. Pure Python (core must not need scipy): U with average ranks for ties,
the normal approximation with tie and continuity correction.

Per metric:
* ``nodata``   fewer than :data:`MIN_SAMPLES` samples on either side;
* ``fail``     the difference is significant in the harmful direction AND the
  canary/baseline median ratio is beyond the allowed effect;
* ``pass``     otherwise: a significant difference inside the allowed effect passes, as in
  Kayenta, where the effect-size tolerance decides. Counting it against the canary made a
  healthy canary fail 8 of 20 simulated deploys: judged every step, two metrics at α = 0.05
  find some "significant" nothing most of the time.

Score = 100 x passes / metrics with data; the overall verdict is marginal between the
marginal and pass scores. A failing critical metric forces the score to 0 (Kayenta: a
critical failure fails the whole run).
"""

from __future__ import annotations

import math
import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.plan import JudgeMetric, JudgeSpec

Alternative = Literal["two-sided", "greater", "less"]
MetricVerdict = Literal["pass", "fail", "nodata"]
Verdict = Literal["pass", "marginal", "fail", "nodata"]

#: below this many samples per side the normal approximation means little
MIN_SAMPLES = 3


class MannWhitney(BaseModel):
    model_config = ConfigDict(frozen=True)

    u: float  # U of the first sample (canary)
    z: float
    p_value: float


class MetricJudgement(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    verdict: MetricVerdict
    critical: bool = False
    p_value: float | None = None
    effect: float | None = None  # canary median / baseline median
    allowed_effect: float
    canary_median: float | None = None
    baseline_median: float | None = None
    canary_n: int = 0
    baseline_n: int = 0
    text: str = ""


class JudgeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    score: float | None  # None when no metric had data
    metrics: list[MetricJudgement]
    summary: str


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) in the input order, and the sizes of tied groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = average
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney_u(x: list[float], y: list[float], alternative: Alternative = "two-sided") -> MannWhitney:
    """Same numbers as ``scipy.stats.mannwhitneyu(x, y, alternative=..., method="asymptotic")``.

    "greater" asks whether x tends to be larger than y. With every value tied the
    test has nothing to say and returns p = 1.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    ranks, ties = _ranks([*x, *y])
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2.0
    u2 = n1 * n2 - u1
    n = n1 + n2
    mean = n1 * n2 / 2.0
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return MannWhitney(u=u1, z=0.0, p_value=1.0)
    sd = math.sqrt(variance)
    if alternative == "greater":
        z = (u1 - mean - 0.5) / sd
        p = _normal_sf(z)
    elif alternative == "less":
        z = (u2 - mean - 0.5) / sd
        p = _normal_sf(z)
    else:
        z = (max(u1, u2) - mean - 0.5) / sd
        p = 2.0 * _normal_sf(z)
    return MannWhitney(u=u1, z=z, p_value=min(1.0, max(0.0, p)))


def effect_size(canary: list[float], baseline: list[float]) -> float:
    """Canary median / baseline median.

    Error rates are mostly zero, so both medians can be 0: then the means decide,
    so a canary that errs at all is not called equal to one that never does.
    """
    cm, bm = statistics.median(canary), statistics.median(baseline)
    if bm == 0 and cm == 0:
        cm, bm = statistics.fmean(canary), statistics.fmean(baseline)
        if bm == 0:
            return 1.0 if cm == 0 else math.inf
    if bm == 0:
        return math.inf if cm > 0 else -math.inf
    return cm / bm


def _judge_metric(
    metric: JudgeMetric, canary: list[float], baseline: list[float], alpha: float
) -> MetricJudgement:
    c = [v for v in canary if math.isfinite(v)]
    b = [v for v in baseline if math.isfinite(v)]
    base = {
        "name": metric.name,
        "critical": metric.critical,
        "allowed_effect": metric.allowed_effect,
        "canary_n": len(c),
        "baseline_n": len(b),
    }
    if len(c) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return MetricJudgement(
            **base,
            verdict="nodata",
            text=f"{metric.name}: no data ({len(c)} canary, {len(b)} baseline samples; need {MIN_SAMPLES})",
        )
    alternative: Alternative = {"increase": "greater", "decrease": "less", "either": "two-sided"}[
        metric.direction
    ]
    test = mann_whitney_u(c, b, alternative)
    effect = effect_size(c, b)
    significant = test.p_value < alpha
    # allowed_effect is a ratio tolerance: 1.1 tolerates +10 % (or -10 % for "decrease").
    if metric.direction == "increase":
        beyond = effect > metric.allowed_effect
    elif metric.direction == "decrease":
        beyond = effect < 1.0 / metric.allowed_effect
    else:
        beyond = effect > metric.allowed_effect or effect < 1.0 / metric.allowed_effect
    verdict: MetricVerdict = "fail" if significant and beyond else "pass"
    shown = "∞" if math.isinf(effect) else f"{effect:.2f}"
    return MetricJudgement(
        **base,
        verdict=verdict,
        p_value=test.p_value,
        effect=effect,
        canary_median=statistics.median(c),
        baseline_median=statistics.median(b),
        text=(
            f"{metric.name}: {verdict} (p={test.p_value:.3g} vs α={alpha:.3g}, "
            f"effect ×{shown}, allowed ×{metric.allowed_effect:g})"
        ),
    )


def judge(canary: dict[str, list[float]], baseline: dict[str, list[float]], spec: JudgeSpec) -> JudgeResult:
    """Judge every metric in ``spec`` from per-interval samples of canary and baseline."""
    alpha = 1.0 - spec.confidence
    results = [
        _judge_metric(m, canary.get(m.name, []), baseline.get(m.name, []), alpha) for m in spec.metrics
    ]
    counted = [r for r in results if r.verdict != "nodata"]
    if not counted:
        return JudgeResult(verdict="nodata", score=None, metrics=results, summary="no data for any metric")
    points = sum(1.0 for r in counted if r.verdict == "pass")
    score = 100.0 * points / len(counted)
    critical_failed = [r.name for r in counted if r.critical and r.verdict == "fail"]
    if critical_failed:
        score = 0.0
    if critical_failed or score < spec.marginal_score:
        verdict: Verdict = "fail"
    elif score < spec.pass_score:
        verdict = "marginal"
    else:
        verdict = "pass"
    summary = f"score {score:.0f}/100: {verdict}"
    if critical_failed:
        summary += f" (critical metric failed: {', '.join(critical_failed)})"
    missing = [r.name for r in results if r.verdict == "nodata"]
    if missing:
        summary += f"; no data: {', '.join(missing)}"
    return JudgeResult(verdict=verdict, score=score, metrics=results, summary=summary)
