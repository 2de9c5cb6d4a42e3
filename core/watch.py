"""The hand-off after completion (workflow Step 7.4): keep the triggers and alerts armed.

`deploydeck watch PLAN` judges the live service against the baseline measured during
the deploy's canary, for a given time (default 24 h). It notifies the team channel
when a rule fires or a new alert starts; it rolls back only when asked to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from core.analysis import TriggerState, judge
from core.domain import Notification, Phase, WorkloadSample
from core.durations import format_duration
from core.events import AnalysisSample, DeployStarted, Event, Finished
from core.plan import Plan
from core.ports import PortError
from core.world import World


class WatchReport(BaseModel):
    outcome: str  # "quiet" | "notified" | "rolled_back"
    intervals: int = 0
    blind_intervals: int = 0
    fired: list[str] = Field(default_factory=list)
    new_alerts: list[str] = Field(default_factory=list)


def reference_baseline(events: Sequence[Event]) -> WorkloadSample | None:
    """The old version's error rate and p99 while the canary ran, averaged over healthy samples."""
    samples = [
        e
        for e in events
        if isinstance(e, AnalysisSample)
        and e.phase == Phase.CANARY
        and e.verdict == "healthy"
        and e.weight < 100
        and e.baseline_error_rate is not None
        and e.baseline_p99_ms is not None
    ]
    if not samples:
        return None
    n = len(samples)
    return WorkloadSample(
        requests=sum(s.baseline_requests or 0 for s in samples),
        error_rate=sum(s.baseline_error_rate or 0 for s in samples) / n / 100,
        p99=sum(s.baseline_p99_ms or 0 for s in samples) / n / 1000,
    )


def last_completed(events_by_deploy: dict[str, list[Event]], service: str) -> list[Event] | None:
    done = [
        evs
        for evs in events_by_deploy.values()
        if any(isinstance(e, DeployStarted) and e.service == service for e in evs)
        and any(isinstance(e, Finished) and e.outcome.value == "completed" for e in evs)
    ]
    return done[-1] if done else None


class Watch:
    def __init__(
        self,
        plan: Plan,
        world: World,
        *,
        duration_s: float,
        reference: WorkloadSample,
        rollback: bool,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.world = world
        self.clock = world.clock
        self.duration_s = duration_s
        self.reference = reference
        self.rollback = rollback
        self.say = say

    async def run(self) -> WatchReport:
        spec = self.plan.analysis
        started: datetime = self.clock.now()
        state = TriggerState()
        report = WatchReport(outcome="quiet")
        seen_alerts: set[str] = set()
        self.say(
            f"watching {self.plan.service} {self.plan.version.to} for {format_duration(self.duration_s)} "
            f"against baseline {self.reference.error_rate * 100:.2f} % errors, "  # type: ignore[operator]
            f"p99 {self.reference.p99 * 1000:.0f} ms"  # type: ignore[operator]
        )
        while (self.clock.now() - started).total_seconds() < self.duration_s:
            await self.clock.sleep(spec.interval)
            report.intervals += 1
            metrics = None
            if self.world.metrics is not None:
                try:
                    metrics = await self.world.metrics.canary_metrics(spec.lookback)
                except PortError as exc:
                    self.say(f"metrics: {exc}")
            if metrics is not None and metrics.reason is None:
                metrics = metrics.model_copy(update={"baseline": self.reference})
            judgement = judge(metrics, None, spec, state)
            if judgement.verdict == "no_data":
                report.blind_intervals += 1
                self.say(f"no data: {judgement.no_data_reason}")
            fired = judgement.fired
            await self._check_alerts(started, seen_alerts, report)
            if fired:
                reason = "; ".join(r.text for r in fired)
                report.fired.append(reason)
                self.say(f"TRIGGER: {reason}")
                if self.rollback:
                    await self.world.production.rollback()
                    await self._notify(
                        f"Rolled back {self.plan.service} {self.plan.version.to} during the watch", reason
                    )
                    report.outcome = "rolled_back"
                    return report
                await self._notify(
                    f"{self.plan.service} {self.plan.version.to}: rollback trigger fired after deploy", reason
                )
                report.outcome = "notified"
                state = TriggerState()  # one message per episode, not one per interval
        self.say(
            f"watch over: {report.intervals} intervals, {len(report.fired)} trigger(s), {len(report.new_alerts)} new alert(s)"
        )
        return report

    async def _check_alerts(self, started: datetime, seen: set[str], report: WatchReport) -> None:
        if self.world.alerts is None:
            return
        matchers = self.plan.gates.monitoring_matchers or [f'service="{self.plan.service}"']
        try:
            alerts = await self.world.alerts.active_alerts(matchers)
        except PortError as exc:
            self.say(f"alerts: {exc}")
            return
        for alert in alerts:
            key = f"{alert.name}{sorted(alert.labels.items())}"
            if key in seen or (alert.starts_at is not None and alert.starts_at < started):
                continue
            seen.add(key)
            report.new_alerts.append(alert.name)
            if report.outcome == "quiet":
                report.outcome = "notified"
            self.say(f"NEW ALERT: {alert.name} ({alert.severity or 'no severity'})")
            await self._notify(
                f"New alert after deploying {self.plan.service} {self.plan.version.to}", alert.name
            )

    async def _notify(self, title: str, text: str) -> None:
        try:
            results = await self.world.notifier.notify(Notification(title=title, text=text, level="warning"))
        except Exception as exc:  # the watch must outlive a broken webhook
            self.say(f"notification failed: {type(exc).__name__}")
            return
        for result in results:
            self.say(
                f"notified {result.channel}: {'delivered' if result.delivered else 'FAILED ' + result.detail}"
            )
