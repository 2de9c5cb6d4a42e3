"""Step 3, staging: deploy, staging gates, and the soak against production's baseline."""

from __future__ import annotations

from typing import Literal

from core.analysis import soak_judge, soak_regression
from core.domain import (
    GateGroup,
    Phase,
    WorkloadSample,
)
from core.durations import format_duration
from core.events import (
    AnalysisSample,
    LogLine,
    RuleReading,
)
from core.ports import PortError
from core.rollout.context import (
    RolloutContext,
    _Blocked,
    _ms,
    _pct,
)


class StagingStep(RolloutContext):
    """Step 3, staging: deploy, staging gates, and the soak against production's baseline."""

    async def _staging(self) -> None:
        plan = self.plan
        await self._set_phase(Phase.STAGING, f"deploying {plan.version.to} to staging")
        # re-entry after a crash: what is persisted as done is not done again (setting the
        # same image twice is harmless, but E2E suites and the soak are not free)
        if not self._done("staging.deploy"):
            await self._emit(LogLine, message=f"staging: set image {plan.version.image}")
            await self.world.staging.deploy(plan.version.image, "stable")
            await self.world.staging.wait_ready(
                "stable", plan.targets.staging.rollout_timeout, progress=self._progress("staging rollout")
            )
            await self._record_pass("staging-deploy", f"{plan.version.to} rolled out")
            await self._mark("staging.deploy", f"{plan.version.to} rolled out")
        if not self._done("staging.gates"):
            await self._gate_phase(GateGroup.STAGING, needs_proceed=False, skip={"staging-deploy"})
            await self._mark("staging.gates", "staging gates satisfied")
        try:
            await self._soak()
        except _Blocked as exc:
            # a failed soak leaves staging as it was before this deploy, not on the rejected version
            await self._emit(
                LogLine, level="warning", message=f"{exc}; reverting staging to {plan.version.from_}"
            )
            try:
                report = await self.world.staging.rollback()
                await self._emit(LogLine, message=f"staging reverted: {report.detail}")
            except PortError as revert:
                await self._emit(LogLine, level="error", message=f"staging NOT reverted: {revert}")
            raise

    async def _soak(self) -> None:
        """Staging soak: the error rate over the whole window must stay below baseline + limit.

        Each interval reads the last `lookback` of traffic to show progress and to stop early on a
        clear regression (the canary trigger's limit); the 0.1 pp rule itself is judged once, on a
        read spanning the whole soak, because shorter windows hold too few requests to resolve it.
        """
        soak = self.plan.staging.soak
        spec = self.plan.analysis
        if soak.duration <= 0:
            return
        if self.world.staging_metrics is None or self.world.metrics is None:
            raise _Blocked("staging soak needs metrics for staging and production; none configured")
        win = await self._start_window("staging soak", soak.duration)
        while win.observed_s < soak.duration or win.fresh_needed:
            # A command wakes the engine but does not end the interval (as in the canary's windows):
            # with a plain nap every early read counted whole, and `g` pressed every 10 s ended a
            # 5-minute soak after 100 s. A resume ends it early; that stub is not counted.
            paused_before = self.phase == Phase.PAUSED
            await self._nap_interval(spec.interval, Phase.STAGING)
            await self._check_stop()
            reading, staging_side, base_side = await self._soak_reading(spec.lookback)
            # stop early only on a regression the counts make certain (issue 14's significance)
            clear_regression = reading.value is not None and soak_regression(
                staging_side, base_side, spec.triggers.error_delta_pp
            )
            verdict: Literal["healthy", "no_data", "fired"] = (
                "no_data" if reading.value is None else ("fired" if clear_regression else "healthy")
            )
            sample = await self._emit(
                AnalysisSample,
                weight=0,
                canary_error_rate=_pct(staging_side.error_rate),
                baseline_error_rate=_pct(base_side.error_rate),
                canary_p99_ms=_ms(staging_side.p99),
                baseline_p99_ms=_ms(base_side.p99),
                canary_requests=staging_side.requests,
                baseline_requests=base_side.requests,
                verdict=verdict,
                no_data_reason=reading.text if verdict == "no_data" else None,
                readings=[reading],
                elapsed_s=win.observed_s + spec.interval,
                window_s=soak.duration,
            )
            assert isinstance(sample, AnalysisSample)
            self.last_analysis = sample
            if verdict == "fired":
                raise _Blocked(f"staging soak failed early: {reading.text}")
            counts = await self._counts(win, verdict, sample, soak.duration)
            if counts and paused_before:  # resumed part-way through: not a whole interval observed
                await self._extend_window(soak.duration - win.observed_s)
            elif counts:
                win.observed_s += spec.interval
                win.counted += 1
                win.fresh_needed = False
                await self._persist_window(win)
        self.window = None
        final, _, _ = await self._soak_reading(soak.duration)
        if final.value is None:
            raise _Blocked(f"staging soak: {final.text}")
        if final.fired:
            raise _Blocked(f"staging soak failed over {format_duration(soak.duration)}: {final.text}")
        await self._emit(
            LogLine, message=f"staging soak passed over {format_duration(soak.duration)}: {final.text}"
        )

    async def _soak_reading(self, window_s: float) -> tuple[RuleReading, WorkloadSample, WorkloadSample]:
        """Staging's new version against production's stable version over the same window."""
        assert self.world.staging_metrics is not None and self.world.metrics is not None
        soak = self.plan.staging.soak
        staging = await self._read(self.world.staging_metrics, window_s)
        production = await self._read(self.world.metrics, window_s)
        staging_side = staging.canary if staging.reason is None else WorkloadSample(reason=staging.reason)
        base_side = (
            production.baseline if production.reason is None else WorkloadSample(reason=production.reason)
        )
        reading = soak_judge(
            staging_side, base_side, soak.max_error_delta_pp, self.plan.analysis.min_requests
        )
        return reading, staging_side, base_side
