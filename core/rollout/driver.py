"""The rollout driver: the workflow's steps in order, stopping, and the finish."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from core.domain import (
    Outcome,
    Phase,
)
from core.events import (
    AnalysisSample,
    Finished,
    LeaseLost,
    LogLine,
    RollbackTriggered,
    RuleReading,
    RunInterrupted,
)
from core.ports import PortError
from core.rollout.commands import Commands
from core.rollout.context import (
    CommandResult,
    RolloutContext,
    _Blocked,
    _Stop,
    _Stopped,
)
from core.rollout.gates import Gates
from core.rollout.steps.canary import CanaryStep
from core.rollout.steps.completion import CompletionStep
from core.rollout.steps.migrations import MigrationsStep
from core.rollout.steps.preflight import PreflightStep
from core.rollout.steps.rollback import RollbackProcedure
from core.rollout.steps.staging import StagingStep
from core.rollout.steps.verification import VerificationStep
from core.rollout.store import Store
from core.rollout.window import Windows


class Rollout(
    Commands,
    PreflightStep,
    MigrationsStep,
    StagingStep,
    CanaryStep,
    VerificationStep,
    RollbackProcedure,
    CompletionStep,
    Gates,
    Windows,
    Store,
    RolloutContext,
):
    """One deploy. ``await run()`` walks it to an :class:`Outcome`; commands steer it meanwhile."""

    async def run(self) -> Outcome:
        """Walk the deploy to its outcome; ends at once, without touching the cluster, if the lease is lost."""
        if self._lease_lost is not None:  # lost before the first step: do nothing at all
            return await self._stopped_by_lease_loss()
        if self._interrupted is not None:
            return await self._stopped_by_signal()
        self._body = asyncio.ensure_future(self._drive())
        halted = asyncio.ensure_future(self._halt_requested.wait())
        try:
            # not only the body's end: a signal or a lost lease cancels the body once, and a
            # library can swallow one cancellation (Python 3.11's wait_for returns an answer that
            # landed in the same turn). Woken here, _halt_body cancels again until it ends
            await asyncio.wait({self._body, halted}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._body.cancel()
            raise
        finally:
            halted.cancel()
        if self._interrupted is not None and self.outcome is None:
            return await self._stopped_by_signal()
        if self._lease_lost is not None and self.outcome is None:
            return await self._stopped_by_lease_loss()
        await asyncio.wait({self._body})  # halted as the body finished: let it end as it does
        return self._body.result()

    async def _drive(self) -> Outcome:
        if self._resume is not None:
            await self._resume_from(self._resume)
        else:
            await self._start_new()
        for note in self._notes:
            await self._emit(LogLine, source="session", message=note)
        if self._stop is not None:  # a resumed rollback or abort: finish it, never go forward
            return await self._finish_stop()
        self._flow = asyncio.create_task(self._main())
        reason = ""
        try:
            outcome = await self._flow
        except asyncio.CancelledError:
            if self._stop is None or self._lease_lost is not None or self._interrupted is not None:
                raise
            outcome = Outcome.ERROR
        except _Stopped:
            outcome = Outcome.ERROR
        except _Blocked as exc:
            await self._set_phase(Phase.BLOCKED, exc.reason)
            outcome, reason = Outcome.BLOCKED, exc.reason
        except PortError as exc:
            if self._lease_lost is not None or self._interrupted is not None:
                # the fence refused a write: not an error that ends the deploy but a lost lease,
                # which stops acting where it stands (run() journals it; the deploy stays resumable).
                # A signal the same instant as a failing call: the stop it asked for, not a rollback
                raise asyncio.CancelledError from exc
            # An outside system failed mid-deploy. Once traffic has moved, rolling back is the safe direction.
            await self._emit(LogLine, level="error", message=str(exc))
            if self.effective_phase in {Phase.STAGING, Phase.CANARY, Phase.VERIFY}:
                await self._request_stop(
                    "rollback", "engine", f"cannot continue: {exc}", automatic=True, rule="error"
                )
            else:
                outcome, reason = Outcome.ERROR, str(exc)
        if self._stop is not None:
            return await self._finish_stop()
        if outcome == Outcome.COMPLETED:
            reason = "all gates passed, canary promoted, verification green"
        return await self._finish(outcome, reason)

    async def _finish_stop(self) -> Outcome:
        assert self._stop is not None
        if self._stop.kind == "rollback":
            outcome = await self._rollback_procedure()
        else:
            outcome = await self._abort_procedure()
        return await self._finish(outcome, self._stop.reason)

    async def _start_new(self) -> None:
        self._started_at = self.clock.now()
        stable_before: str | None = None
        with contextlib.suppress(PortError):
            stable_before = (await self.world.production.describe()).stable_image
        # persisted before the first journal line: a crash from here on resumes THIS deploy id
        await self._persist(stable_before=stable_before)
        await self._deploy_started()

    async def _main(self) -> Outcome:
        # one place owns the order of the steps; each step skips what its persisted progress says is done
        if not self._done("preflight"):
            await self._preflight()
            await self._mark("preflight", "pre-deploy gates satisfied")
        migrations = self.plan.migrations
        if migrations is not None and (migrations.files or migrations.staging_command):
            if not self._done("migrations"):
                await self._migrations()
                await self._mark("migrations", "migrations reviewed and run on staging")
        if not self._done("staging"):
            await self._staging()
            await self._mark("staging", "staging deployed, gates green, soak passed")
        await self._canary()
        if self._done("verify"):
            decided = self.progress.results.get("verify") if self.progress else None
            decided = None if decided == "green" else decided
        else:
            decided = await self._verify()
            await self._mark("verify", decided or "green")
        await self._complete(decided)
        return Outcome.COMPLETED

    async def _request_stop(
        self,
        kind: Literal["rollback", "abort"],
        actor: str,
        reason: str,
        *,
        automatic: bool,
        rule: str = "manual",
        readings: list[RuleReading] | None = None,
        samples: list[AnalysisSample] | None = None,
    ) -> None:
        if self._stop is not None:
            return
        self._stop = _Stop(kind, actor, reason)
        weight_at_trigger = 100 if self.effective_phase == Phase.VERIFY else self.weight
        if self._lease_lost is None:
            # persisted before it is journaled or acted on: a resume finishes this decision
            with contextlib.suppress(PortError):
                await self._persist(
                    stop={
                        "kind": kind,
                        "actor": actor,
                        "reason": reason,
                        "automatic": automatic,
                        "rule": rule,
                        "weight_at_trigger": weight_at_trigger,
                    }
                )
        if kind == "rollback":
            event = await self._emit(
                RollbackTriggered,
                actor=actor,
                automatic=automatic,
                rule=rule,
                reason=reason,
                readings=readings or (self.last_analysis.readings if self.last_analysis else []),
                samples=samples or ([self.last_analysis] if self.last_analysis else []),
                weight_at_trigger=weight_at_trigger,
            )
            assert isinstance(event, RollbackTriggered)
            self.rollback_reason = event
            self._paused_from = None
            await self._set_phase(Phase.ROLLING_BACK, reason)
        else:
            await self._emit(
                LogLine, level="warning", message=f"abort requested by {actor}: {reason}", source=actor
            )
        self._resumed.set()
        self._wake.set()
        current = asyncio.current_task()
        if self._flow is not None and not self._flow.done() and current is not self._flow:
            self._flow.cancel()

    async def _check_stop(self) -> None:
        if self._stop is not None:
            raise _Stopped

    async def _finish(self, outcome: Outcome, reason: str) -> Outcome:
        self._halt_if_signalled()  # a body whose cancellation was swallowed never finishes the deploy
        self.outcome = outcome
        self.window = None
        duration = (self.clock.now() - self._started_at).total_seconds() if self._started_at else 0.0
        await self._emit(Finished, outcome=outcome, reason=reason, duration_s=duration)
        if self._lease_lost is None and self._interrupted is None and not self._outcome_written:
            # finished: no longer resumable (a lease loss or a signal leaves it for a resume).
            # After the journal line: a driver killed in between is seen finished by the journal
            with contextlib.suppress(PortError):
                await self._persist(outcome=outcome.value, pending=None)
        return outcome

    # --- fencing: the lease is gone -----------------------------------------------------

    def lease_lost(self, reason: str) -> None:
        """Called by the lease keeper the moment the lease is lost or cannot be renewed in time.

        The driver stops acting: the flow is cancelled where it stands (no rollback: that
        would be a cluster write by a driver that no longer owns the rollout). The
        keeper's fence refuses any write still under way.
        """
        if self._lease_lost is not None or self.outcome is not None:
            return
        self._lease_lost = reason
        self._halt_requested.set()
        if self._body is not None and not self._body.done():
            self._body.cancel()

    async def _halt_body(self) -> None:
        body = self._body
        # a step that catches one cancellation (the rollback's retry loop) gets another
        for _ in range(50):
            if body is None or body.done():
                break
            body.cancel()
            await asyncio.wait({body}, timeout=0.1)

    # --- signals: stop where we stand, to be resumed ---------------------------------------

    @property
    def interrupted(self) -> tuple[str, int] | None:
        """(signal name, exit code) once a signal stopped this run."""
        return self._interrupted

    def interrupt(self, signal_name: str, exit_code: int) -> bool:
        """SIGTERM, SIGHUP or SIGINT: stop acting at once and leave the rollout where it is.

        No rollback and no traffic change: the canary keeps its weight, the persisted progress
        stays unfinished, and the next `deploydeck run` of the plan resumes it. False when the
        run already has its outcome (it is only closing) or has stopped for another reason.
        """
        if self._interrupted is not None or self.outcome is not None or self._lease_lost is not None:
            return False
        self._interrupted = (signal_name, exit_code)
        self._halt_requested.set()
        if self._body is not None and not self._body.done():
            self._body.cancel()
        return True

    async def _stopped_by_signal(self) -> Outcome:
        await self._halt_body()
        assert self._interrupted is not None
        name, code = self._interrupted
        self.window = None
        await self._emit(
            RunInterrupted,
            signal=name,
            reason=f"{name} received: stopped where it stands (canary at {self.weight} %, nothing rolled "
            "back); the lease is released and `deploydeck run` of the same plan resumes it",
            weight=self.weight,
            exit_code=code,
        )
        self._signal_journaled = True
        # the weight in force as it stands; not finished (no outcome), so the deploy stays resumable
        with contextlib.suppress(PortError):
            await self._persist()
        return Outcome.BLOCKED

    async def _stopped_by_lease_loss(self) -> Outcome:
        await self._halt_body()
        reason = self._lease_lost or "lease lost"
        await self._emit(LeaseLost, reason=reason, weight=self.weight)
        return await self._finish(
            Outcome.BLOCKED,
            f"lease lost: {reason}; stopped acting with canary at {self.weight} % "
            "(no further cluster writes; the rollout is left for the lease holder or a resume)",
        )


__all__ = ["CommandResult", "Rollout"]
