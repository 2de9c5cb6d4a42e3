"""Observation windows: analysis every interval, blind intervals, triggers, the statistical judge."""

from __future__ import annotations

from datetime import datetime, timedelta
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
    Resumed,
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

    # A proceed belongs to the step it was given at: one that arrives as that step's window ends
    # must not end the next step's window too (issue 14: one `p` at 50 % skipped the 100 % bake).
    _proceed_step: int | None = None
    # Skipping the rest of the final bake is its own command (promote_early), never a proceed.
    _promote_early_requested: str | None = None
    # Start of the current stretch without metrics (None while data flows): "how long blind".
    _blind_since: datetime | None = None

    def _window_cut_short(self, phase: Phase) -> bool:
        """Whether a person asked to end the current canary window now (proceed or promote early)."""
        if phase != Phase.CANARY:
            return False
        own_proceed = self._proceed_requested is not None and self._proceed_step == self.step_index
        return own_proceed or self._promote_early_requested is not None

    def _window_left_s(self) -> float:
        if self.window is None:
            return 0.0
        return max(0.0, (self.window.ends_at - self.clock.now()).total_seconds())

    async def _nap_interval(self, seconds: float, phase: Phase) -> None:
        """One analysis interval on the clock. A command wakes the nap; only a stop, a resume or a
        request that ends the window cuts the interval short, so every counted interval is whole."""
        end = self.clock.now() + timedelta(seconds=seconds)
        paused = self.phase == Phase.PAUSED
        while (left := (end - self.clock.now()).total_seconds()) > 0:
            await self._nap(left)
            if (
                self._stop is not None
                or self._window_cut_short(phase)
                or paused != (self.phase == Phase.PAUSED)
            ):
                return

    async def _end_window_for_person(self, name: str, duration: float, observed: float) -> None:
        """Journal who ended the window and what that skipped; consume the request."""
        steps = self.plan.canary.steps
        index = self.step_index or 0
        if self._promote_early_requested is not None:
            actor = self._promote_early_requested
            left = format_duration(self._window_left_s())
            message = f"{actor} promoted early: skipped the remaining {left} of the 100 % bake"
        else:
            actor = self._proceed_requested or "someone"
            following = steps[index + 1].weight if index + 1 < len(steps) else None
            message = (
                f"{actor} proceeds from {steps[index].weight} % to {following} % after "
                f"{format_duration(observed)} of {format_duration(duration)}: skipped the remaining "
                f"{format_duration(self._window_left_s())} of {name}; {following} % gets its full window"
            )
        self._promote_early_requested = None
        self._proceed_requested = None
        self._proceed_step = None
        await self._emit(LogLine, level="warning", message=message, source="engine")

    async def _start_window(self, name: str, duration: float) -> _Window:
        # a resumed deploy continues its window from the persisted start (context._open_window)
        return await self._open_window(name, duration)

    async def _counts(self, win: _Window, verdict: str, sample: AnalysisSample, duration: float) -> bool:
        """Whether this interval counts toward the window; pauses the rollout after too many blind ones.

        An interval that does not count (thin, blind, paused) moves the window's end out: the window
        needs ``duration`` of time with data, the countdown and a proceed's "skipped the remaining"
        say when that can be, and the end's distance from the start is persisted as blind time, so
        a restart never counts such intervals as observed (it counted a blind pause: a 5-minute step
        was promoted after 2.5 minutes of data).
        """
        if await self._interval_counts(win, verdict, sample):
            return True
        await self._extend_window(duration - win.observed_s)
        return False

    async def _interval_counts(self, win: _Window, verdict: str, sample: AnalysisSample) -> bool:
        """The rules of :meth:`_counts`, without moving the end.

        A pause for blindness is the engine's: it ends by itself at the first read with data, and
        its rollback countdown runs only while the blindness lasts (issue 14: a rollout that had
        data again for 15 samples still rolled back "for no data").
        """
        spec = self.plan.analysis
        win.samples.append(sample)
        blind_pause = self.phase == Phase.PAUSED and self._paused_by_engine_at is not None
        if verdict == "thin":
            return False  # the metrics answered with too few requests to judge: not counted, not blind
        if verdict != "no_data":
            win.blind = 0
            blind_since, self._blind_since = self._blind_since, None
            if blind_pause and self._decision_pending is None and blind_since is not None:
                await self._data_is_back(sample, blind_since)
                return False  # read while paused: judged by the triggers, not counted
            return self.phase != Phase.PAUSED
        win.blind += 1
        if self._blind_since is None:
            self._blind_since = sample.ts - timedelta(seconds=spec.interval)
        if blind_pause:
            assert self._paused_by_engine_at is not None
            waited = (self.clock.now() - self._paused_by_engine_at).total_seconds()
            if waited >= spec.blind_pause_timeout and self._decision_pending is None:
                blind = format_duration((self.clock.now() - self._blind_since).total_seconds())
                reason = (
                    f"no data for {blind}, still blind {format_duration(waited)} after pausing "
                    f"({sample.no_data_reason or 'no data'}); rollback if unsure (POL-010)"
                )
                await self._request_stop("rollback", "engine", reason, automatic=True, rule="no_data")
                raise _Stopped
            return False
        if win.blind >= spec.max_blind_intervals:  # a pause already on stays as it is (_enter_pause)
            await self._enter_pause(
                "engine",
                f"no data for {win.blind} analysis intervals ({sample.no_data_reason}); never promoting "
                f"blind: resumes by itself when data is back, rolls back if still blind in "
                f"{format_duration(spec.blind_pause_timeout)} (POL-010); roll back now with r",
                by_engine=True,
            )
        return False

    async def _data_is_back(self, sample: AnalysisSample, blind_since: datetime) -> None:
        """End the engine's blind pause: journaled with how long the metrics were missing."""
        blind_s = (sample.ts - blind_since).total_seconds()
        previous = self._paused_from or Phase.CANARY
        self._paused_from = None
        self._paused_by_engine_at = None
        await self._emit(Resumed, actor="engine", blind_s=blind_s)
        await self._emit(
            LogLine,
            message=f"data is back after {format_duration(blind_s)} blind: resuming; "
            "the window counts only intervals with data",
        )
        await self._set_phase(previous, f"data is back after {format_duration(blind_s)} blind")
        self._resumed.set()

    def _blind_fields(self, verdict: str, win: _Window | None) -> dict[str, Any]:
        """The blind count, blind time and rollback countdown a sample carries (screen and --json)."""
        if verdict != "no_data":
            return {}
        spec = self.plan.analysis
        now = self.clock.now()
        since = self._blind_since or now - timedelta(seconds=spec.interval)
        count = (win.blind if win is not None else 0) + 1
        fields: dict[str, Any] = {"blind_intervals": count, "blind_s": (now - since).total_seconds()}
        if self.phase == Phase.PAUSED and self._paused_by_engine_at is not None:
            waited = (now - self._paused_by_engine_at).total_seconds()
            fields["rollback_in_s"] = max(0.0, spec.blind_pause_timeout - waited)
        elif self.phase != Phase.PAUSED and count >= spec.max_blind_intervals:
            fields["rollback_in_s"] = spec.blind_pause_timeout  # this read pauses: the countdown starts
        return fields

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

    async def _observe(self, name: str, duration: float, phase: Phase) -> bool:
        """Observe a window to its end; True when a person ended it early (proceed, promote early)."""
        spec = self.plan.analysis
        win = await self._start_window(name, duration)
        promoted_early = False
        while win.observed_s < duration or win.fresh_needed:
            if self._window_cut_short(phase):
                await self._end_window_for_person(name, duration, win.observed_s)
                promoted_early = True
                break
            paused_before = self.phase == Phase.PAUSED
            await self._nap_interval(spec.interval, phase)
            await self._check_stop()
            if self._window_cut_short(phase):
                continue  # the request ends the window before a partial interval is counted
            # a resume cuts the paused interval short: read at once, but that stub is not 30 s observed
            was_paused = paused_before or self.phase == Phase.PAUSED
            judgement, sample = await self._analyse(win.observed_s, duration, phase, win, paused=was_paused)
            if judgement.verdict == "fired":
                await self._auto_rollback(judgement, [*win.samples, sample])
            # too few requests is not blindness: the window waits for evidence without pausing
            verdict = "thin" if judgement.thin else judgement.verdict
            if await self._counts(win, verdict, sample, duration):
                if judgement.verdict == "healthy" and phase == Phase.CANARY and self.weight < 100:
                    self._baseline_ref = (
                        self._last_metrics.baseline if self._last_metrics else self._baseline_ref
                    )
                if not was_paused:
                    win.observed_s += spec.interval
                    win.counted += 1
                    win.fresh_needed = False
                    await self._persist_window(win)
                else:
                    await self._extend_window(duration - win.observed_s)  # as _counts does
        self.window = None
        if phase == Phase.CANARY and self.weight < 100 and spec.judge.enabled:
            await self._statistical_judge(win.samples, promoted_early=promoted_early)
        return promoted_early

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
        self,
        elapsed: float,
        duration: float,
        phase: Phase,
        win: _Window | None = None,
        *,
        paused: bool = False,
    ) -> tuple[Judgement, AnalysisSample]:
        """One read and judgement. ``elapsed`` is the window's time with data before this read; the
        sample shows it plus this interval only when this interval will count (``paused``: it was
        paused during the interval, which then does not count)."""
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
        if win is not None and judgement.verdict == "healthy" and not paused:
            elapsed += spec.interval  # this interval counts: the window's data time grows
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
            **self._blind_fields("thin" if judgement.thin else judgement.verdict, win),
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
