"""Step 6, rollback (POL-010): execute, verify, communicate, document; or abort.

Communicating can never hold the procedure or the rollout up. The outcome is journaled
first (state annotation, phase ``rolled_back``); then the lease is handed back, since the
procedure writes nothing more to the cluster; only then do the team-channel messages go
out, each bounded by the notifier's deadline and retries, before ``finished``. The alarm
sent while the rollback API keeps failing goes out beside the retries, never in front of
them. A channel answering one byte a second thus costs a bounded delay of the
``finished`` line, never the rollout and never the next driver's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from core.domain import (
    NotifyResult,
    Outcome,
    Phase,
    RollbackReport,
)
from core.durations import format_duration
from core.events import (
    HealthChecked,
    LogLine,
    NotificationSent,
    RollbackStep,
    TrafficChanged,
)
from core.ports import PortError
from core.rollout.context import (
    RolloutContext,
    _public,
)


class RollbackProcedure(RolloutContext):
    """Step 6, rollback (POL-010): execute, verify, communicate, document; or abort."""

    #: set by the session: hands the lease back (fenced; a no-op once it is not ours)
    hand_back_lease: Callable[[], Awaitable[None]] | None = None
    #: the outcome reached the cluster's persisted progress before the hand-back (`_finish` need not write it)
    _outcome_written: bool = False

    async def _rollback_procedure(self) -> Outcome:
        """POL-010: execute, verify, communicate, document. A failing API is retried, never given up silently."""
        prod = self.world.production
        if self.phase != Phase.ROLLING_BACK:
            await self._set_phase(Phase.ROLLING_BACK, self._stop.reason if self._stop else "rollback")
        attempt, delay = 0, 1.0
        # persisted before acting: a resume finishes this rollback rather than going forward
        with contextlib.suppress(PortError):  # never let bookkeeping block the safe direction
            await self._persist(pending="rollback")
        while not self._done("rollback.applied"):
            attempt += 1
            try:
                self.rollback_started.set()
                report = await prod.rollback()
                break
            except PortError as exc:
                if self._lease_lost is not None:
                    # fenced: the rollout is no longer ours to roll back. Stop as the keeper's
                    # cancellation would have stopped us (the driver then journals the loss)
                    raise asyncio.CancelledError(f"lease lost: {self._lease_lost}") from exc
                await self._emit(
                    RollbackStep, action="attempt_failed", ok=False, detail=f"attempt {attempt}: {exc}"
                )
                if attempt == _ROLLBACK_ALARM_AFTER:
                    # never give up on the safe direction: keep trying, and make sure people know
                    await self._emit(
                        LogLine,
                        level="error",
                        message=f"ROLLBACK NOT APPLIED after {attempt} attempts ({exc}); still retrying every "
                        f"{format_duration(_ROLLBACK_MAX_DELAY_S)} — act on the cluster by hand if you can",
                    )
                    # beside the retries, never in front of them: a stuck channel must not pause them
                    self._beside(
                        self._communicate(
                            ok=False, detail=f"rollback not applied after {attempt} attempts: {exc}"
                        )
                    )
                await self.clock.sleep(delay)
                delay = min(delay * 2, _ROLLBACK_MAX_DELAY_S)
        else:  # no attempt needed: a resumed run whose rollback was applied before the driver died
            report = RollbackReport(
                weight_reset=True, stable_restored=True, detail="applied before a restart"
            )
        self.weight = 0
        with contextlib.suppress(PortError):
            await self._mark("rollback.applied", report.detail)
        # a resume after a kill records each of these once (the journal already may hold them)
        last = self._last_traffic()
        recorded = {e.action for e in self.events if isinstance(e, RollbackStep)}
        if last is None or last.detail != "rollback":
            await self._emit(
                TrafficChanged,
                requested=0,
                effective=0,
                actor=self._stop.actor if self._stop else "engine",
                detail="rollback",
            )
        if "weight_reset" not in recorded:
            await self._emit(
                RollbackStep, action="weight_reset", ok=report.weight_reset, detail="canary weight 0"
            )
        if "undo_stable" not in recorded:
            await self._emit(
                RollbackStep,
                action="undo_stable",
                ok=True,
                detail=report.detail
                or (
                    "stable restored to the previous revision"
                    if report.stable_restored
                    else "stable untouched"
                ),
            )
        verified, detail = await self._verify_restored()
        await self._emit(RollbackStep, action="verify", ok=verified, detail=detail)
        if detail.startswith(METRICS_UNKNOWN):
            # say what is known: traffic is back and health is green; the error rate cannot be seen
            await self._emit(LogLine, level="warning", message=f"rolled back: {detail}; keep watching")
        elif not verified:
            await self._emit(LogLine, level="error", message=f"SERVICE NOT RESTORED: {detail}; keep watching")
        await self._set_phase(Phase.ROLLED_BACK, self._stop.reason if self._stop else "rolled back")
        # the outcome is journaled and the cluster is done with: the next driver need not wait for the channel
        if self.hand_back_lease is not None:
            # ...but the cluster's progress must say it is over first: written after the hand-back,
            # the fence refuses it and the next driver "resumes" a finished rollback as its own.
            # Before the journal's `finished` line, unlike `_finish`: a kill in between leaves a
            # deploy the cluster calls rolled back (it is) and the journal shows rolled back, unfinished.
            # Refused, the lease is kept: `_finish` writes the outcome while still holding it
            try:
                await self._persist(outcome=Outcome.ROLLED_BACK.value, pending=None)
            except PortError:
                pass
            else:
                self._outcome_written = True
                await self.hand_back_lease()
        await self._settle()  # the alarm, if one is still going out (bounded by the notifier)
        await self._communicate(ok=verified, detail=detail)
        await self._document()
        return Outcome.ROLLED_BACK

    async def _verify_restored(self) -> tuple[bool, str]:
        """Health green and error rate back to baseline within the plan's limit."""
        spec = self.plan.verification
        deadline = self.clock.now() + timedelta(seconds=spec.restore_timeout)
        last = "not checked"
        while True:
            health = await self._stable_health()
            metrics = (
                await self._read(self.world.metrics, self.plan.analysis.lookback)
                if self.world.metrics
                else None
            )
            err = None
            if metrics is not None and metrics.reason is None and metrics.baseline.error_rate is not None:
                err = metrics.baseline.error_rate * 100
            reference = (
                self._baseline_ref.error_rate * 100
                if self._baseline_ref and self._baseline_ref.error_rate is not None
                else None
            )
            err_ok = err is not None and (
                reference is None or err <= reference + self.plan.analysis.triggers.error_delta_pp
            )
            if health is not False and err_ok:
                return True, f"health green; error rate {err:.2f} %" + (
                    f" (baseline {reference:.2f} %)" if reference is not None else ""
                )
            last = f"health {'failing' if health is False else 'ok'}; error rate {'no data' if err is None else f'{err:.2f} %'}"
            if self.clock.now() >= deadline:
                if health is not False and err is None and self.weight == 0:
                    why = metrics.reason if metrics is not None and metrics.reason else "no metrics"
                    return False, (
                        f"{METRICS_UNKNOWN} (error rate no data after "
                        f"{format_duration(spec.restore_timeout)}: {why})"
                    )
                return False, f"not restored after {format_duration(spec.restore_timeout)}: {last}"
            await self.clock.sleep(self.plan.analysis.interval)

    async def _stable_health(self) -> bool | None:
        """The production service's own health endpoint (the canary's may be gone after a rollback)."""
        health = self.plan.targets.production.health
        if health is None:
            return None
        try:
            result = await self.world.probe.check(health.ready, timeout_s=health.timeout)
        except PortError as exc:
            await self._emit(HealthChecked, url=_public(health.ready), ok=False, detail=str(exc))
            return False
        return result.ok

    async def _communicate(self, *, ok: bool, detail: str) -> None:
        """Tell the team channel and journal what became of it (bounded by the notifier's deadlines)."""
        from core.incident import rollback_message

        message = rollback_message(self.events)
        if not ok:
            message = message.model_copy(
                update={"level": "critical", "text": f"{message.text}\nNOT RESTORED: {detail}"}
            )
        try:
            results = await self.world.notifier.notify(message)
        except Exception as exc:  # a notifier must never break the procedure
            results = [NotifyResult(channel="team channel", delivered=False, detail=type(exc).__name__)]
        for result in results:
            await self._emit(
                NotificationSent,
                channel=result.channel,
                delivered=result.delivered,
                attempts=result.attempts,
                detail=result.detail,
            )
        failed = [f"{r.channel}: {r.detail}" for r in results if not r.delivered]
        await self._emit(
            RollbackStep,
            action="communicate",
            ok=not failed,
            detail="team channel notified" if not failed else "not delivered: " + "; ".join(failed),
        )

    def _beside(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the procedure; :meth:`_settle` waits for it before ``finished``."""
        tasks: set[asyncio.Future[None]] = self.__dict__.setdefault("_beside_tasks", set())
        tasks.add(asyncio.ensure_future(work))

    async def _settle(self) -> None:
        tasks: set[asyncio.Future[None]] = self.__dict__.get("_beside_tasks", set())
        while pending := [t for t in tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _document(self) -> None:
        from core.incident import write_incident_record

        try:
            path = write_incident_record(list(self.events), self.incident_dir)
        except OSError as exc:
            await self._emit(
                RollbackStep, action="document", ok=False, detail=f"incident record not written: {exc}"
            )
            return
        await self._emit(RollbackStep, action="document", ok=True, detail=f"incident record {path}")

    async def _abort_procedure(self) -> Outcome:
        if self.weight > 0:
            with contextlib.suppress(PortError):
                change = await self.world.production.set_canary_weight(0)
                self.weight = change.effective
                await self._emit(
                    TrafficChanged,
                    requested=0,
                    effective=change.effective,
                    actor=self._stop.actor if self._stop else "",
                    detail="abort: canary traffic off",
                )
        await self._set_phase(Phase.ABORTED, self._stop.reason if self._stop else "aborted")
        return Outcome.ABORTED


_ROLLBACK_ALARM_AFTER = 5
#: a rollback whose traffic and health are back but whose error rate cannot be read (issue 14):
#: neither "restored" (unproven) nor "not restored" (nothing says so)
METRICS_UNKNOWN = "traffic restored (canary 0 %), health green, metrics unknown"
_ROLLBACK_MAX_DELAY_S = 30.0
