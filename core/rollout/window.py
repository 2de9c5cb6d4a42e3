"""Observation windows: analysis every interval, blind intervals, triggers, the statistical judge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.analysis import Judgement, judge
from core.domain import (
    CanaryMetrics,
    Phase,
    WorkloadSample,
)
from core.durations import format_duration
from core.events import (
    AnalysisSample,
    HealthChecked,
    LogLine,
    RuleReading,
    WindowStarted,
)
from core.ports import PortError
from core.rollout.context import (
    _RULE_TITLES,
    RolloutContext,
    _ms,
    _pct,
    _public,
    _Stopped,
    _Window,
)


class Windows(RolloutContext):
    """Observation windows: analysis every interval, blind intervals, triggers, the statistical judge."""

    async def _start_window(self, name: str, duration: float) -> _Window:
        # a resumed deploy continues its window from the persisted start (context._open_window)
        return await self._open_window(name, duration)

    async def _counts(self, win: _Window, verdict: str, sample: AnalysisSample, duration: float) -> bool:
        """Whether this interval counts toward the window; pauses the rollout after too many blind ones."""
        spec = self.plan.analysis
        win.samples.append(sample)
        if self.phase == Phase.PAUSED:
            if self._paused_by_engine_at is not None:
                waited = (self.clock.now() - self._paused_by_engine_at).total_seconds()
                if waited >= spec.blind_pause_timeout and self._decision_pending is None:
                    reason = (
                        f"no data for {format_duration(waited)} while paused ({sample.no_data_reason or 'no data'}); "
                        "rollback if unsure (POL-010)"
                    )
                    await self._request_stop("rollback", "engine", reason, automatic=True, rule="no_data")
                    raise _Stopped
            return False
        if verdict == "no_data":
            win.blind += 1
            if win.blind >= spec.max_blind_intervals:
                await self._enter_pause(
                    "engine",
                    f"no data for {win.blind} analysis intervals ({sample.no_data_reason}); "
                    "never promoting blind — resume when data is back, or roll back",
                    by_engine=True,
                )
            else:
                # blind time does not count: the window's end moves out
                await self._extend_window(duration - win.observed_s)
            return False
        win.blind = 0
        return True

    async def _extend_window(self, remaining: float) -> None:
        if self.window is None:
            return
        event = await self._emit(
            WindowStarted,
            name=self.window.name,
            duration_s=self.window.duration_s,
            ends_at=self.clock.now() + timedelta(seconds=remaining),
        )
        assert isinstance(event, WindowStarted)
        self.window = event
        if self._win is not None:
            await self._persist_window(self._win)  # the end moved out: persisted as blind time

    async def _observe(self, name: str, duration: float, phase: Phase) -> None:
        spec = self.plan.analysis
        win = await self._start_window(name, duration)
        promoted_early = False
        while win.observed_s < duration or win.fresh_needed:
            if self._proceed_requested and phase == Phase.CANARY:
                await self._emit(
                    LogLine,
                    level="warning",
                    message=f"{self._proceed_requested} promoted early after {format_duration(win.observed_s)} of {format_duration(duration)}",
                )
                self._proceed_requested = None
                promoted_early = True
                break
            await self._nap(spec.interval)
            await self._check_stop()
            was_paused = self.phase == Phase.PAUSED
            judgement, sample = await self._analyse(win.observed_s + spec.interval, duration, phase)
            if judgement.verdict == "fired":
                await self._auto_rollback(judgement, [*win.samples, sample])
            if await self._counts(win, judgement.verdict, sample, duration):
                if judgement.verdict == "healthy" and phase == Phase.CANARY and self.weight < 100:
                    self._baseline_ref = (
                        self._last_metrics.baseline if self._last_metrics else self._baseline_ref
                    )
                if not was_paused:
                    win.observed_s += spec.interval
                    win.counted += 1
                    win.fresh_needed = False
                    await self._persist_window(win)
        self.window = None
        if phase == Phase.CANARY and self.weight < 100 and spec.judge.enabled:
            await self._statistical_judge(win.samples, promoted_early=promoted_early)

    async def _statistical_judge(self, samples: list[AnalysisSample], *, promoted_early: bool) -> None:
        """Kayenta-style Mann-Whitney over the step's samples, beside the fixed triggers.

        fail rolls back; marginal or no data means a person decides (headless: rollback if unsure).
        At 100 % there is no concurrent baseline to compare with, so only partial steps are judged.
        """
        from core.judge import judge as mann_whitney_judge

        healthy = [s for s in samples if s.verdict == "healthy"]
        canary: dict[str, list[float]] = {"error_rate": [], "p50": [], "p95": [], "p99": []}
        baseline: dict[str, list[float]] = {"error_rate": [], "p99": []}
        for s in healthy:
            for name, value in (
                ("error_rate", s.canary_error_rate),
                ("p50", s.canary_p50_ms),
                ("p95", s.canary_p95_ms),
                ("p99", s.canary_p99_ms),
            ):
                if value is not None:
                    canary[name].append(value)
            for name, value in (("error_rate", s.baseline_error_rate), ("p99", s.baseline_p99_ms)):
                if value is not None:
                    baseline[name].append(value)
        result = mann_whitney_judge(canary, baseline, self.plan.analysis.judge)
        details = "; ".join(m.text for m in result.metrics if m.text)
        message = f"statistical judge at {self.weight} %: {result.summary}" + (
            f" — {details}" if details else ""
        )
        reading = RuleReading(
            rule="judge",
            value=result.score,
            limit=self.plan.analysis.judge.marginal_score,
            unit="score",
            fired=result.verdict == "fail",
            text=message,
        )
        if result.verdict == "pass" or (result.verdict == "nodata" and promoted_early):
            await self._emit(
                LogLine, level="info" if result.verdict == "pass" else "warning", message=message
            )
            return
        if result.verdict == "fail":
            await self._request_stop(
                "rollback",
                "engine",
                message,
                automatic=True,
                rule="judge",
                readings=[reading],
                samples=samples[-5:],
            )
            raise _Stopped
        if not self.interactive:
            await self._request_stop(
                "rollback",
                "engine",
                f"{message}; nobody to decide: rollback if unsure (POL-010)",
                automatic=True,
                rule="judge",
                readings=[reading],
                samples=samples[-5:],
            )
            raise _Stopped
        await self._enter_pause("engine", f"{message}: resume to promote, or roll back")
        while self.phase == Phase.PAUSED:
            await self._nap(self.plan.analysis.interval)
            await self._check_stop()

    async def _analyse(
        self, elapsed: float, duration: float, phase: Phase
    ) -> tuple[Judgement, AnalysisSample]:
        spec = self.plan.analysis
        metrics: CanaryMetrics | None = None
        if self.world.metrics is not None:
            metrics = await self._read(self.world.metrics, spec.lookback)
            no_old_version = phase == Phase.VERIFY or self.weight >= 100
            if no_old_version and metrics.reason is None and self._baseline_ref is not None:
                # at 100 % and after promotion the old version serves nothing: judge against the
                # baseline measured while it still took traffic
                metrics = metrics.model_copy(update={"baseline": self._baseline_ref})
        self._last_metrics = metrics
        health = await self._health()
        judgement = judge(metrics, health, spec, self._triggers)
        canary = metrics.canary if metrics else WorkloadSample()
        baseline = metrics.baseline if metrics else WorkloadSample()
        sample = await self._emit(
            AnalysisSample,
            weight=self.weight if phase == Phase.CANARY else 100,
            canary_error_rate=_pct(canary.error_rate),
            baseline_error_rate=_pct(baseline.error_rate),
            canary_p99_ms=_ms(canary.p99),
            baseline_p99_ms=_ms(baseline.p99),
            canary_p50_ms=_ms(canary.p50),
            canary_p95_ms=_ms(canary.p95),
            canary_requests=canary.requests,
            baseline_requests=baseline.requests,
            health_ok=health,
            verdict=judgement.verdict,
            no_data_reason=judgement.no_data_reason,
            readings=judgement.readings,
            elapsed_s=min(elapsed, duration),
            window_s=duration,
        )
        assert isinstance(sample, AnalysisSample)
        self.last_analysis = sample
        return judgement, sample

    async def _read(self, metrics: Any, window_s: float) -> CanaryMetrics:
        try:
            return await metrics.canary_metrics(window_s)
        except PortError as exc:
            none = WorkloadSample(reason=str(exc))
            return CanaryMetrics(canary=none, baseline=none, at=self.clock.now(), reason=str(exc))

    async def _health(self) -> bool | None:
        urls = self.plan.analysis.health_urls
        if not urls:
            return None
        ok = True
        for url in urls:
            try:
                result = await self.world.probe.check(url, timeout_s=5.0)
            except PortError as exc:
                await self._emit(HealthChecked, url=_public(url), ok=False, detail=str(exc))
                ok = False
                continue
            if not result.ok:
                await self._emit(
                    HealthChecked, url=_public(url), ok=False, status=result.status, detail=result.detail
                )
            ok = ok and result.ok
        return ok

    async def _auto_rollback(self, judgement: Judgement, samples: list[AnalysisSample]) -> None:
        fired = judgement.fired
        rule = fired[0].rule if fired else "unknown"
        reason = "; ".join(r.text for r in fired)
        await self._request_stop(
            "rollback",
            "engine",
            f"{_RULE_TITLES.get(rule, rule)}: {reason}",
            automatic=True,
            rule=rule,
            readings=judgement.readings,
            samples=samples[-5:],
        )
        raise _Stopped
