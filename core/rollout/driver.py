"""The rollout driver: the workflow's steps in order, stopping, and the finish."""

from __future__ import annotations

import asyncio
from typing import Literal

from core.domain import (
    Outcome,
    Phase,
)
from core.events import (
    AnalysisSample,
    DeployStarted,
    Finished,
    LeaseLost,
    LogLine,
    RollbackTriggered,
    RuleReading,
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
        self._body = asyncio.ensure_future(self._drive())
        try:
            await asyncio.wait({self._body})
        except asyncio.CancelledError:
            self._body.cancel()
            raise
        if self._lease_lost is None or self.outcome is not None:
            return self._body.result()
        return await self._stopped_by_lease_loss()

    async def _drive(self) -> Outcome:
        self._started_at = self.clock.now()
        plan = self.plan
        await self._emit(
            DeployStarted,
            service=plan.service,
            namespace=plan.namespace,
            from_version=plan.version.from_,
            to_version=plan.version.to,
            image=plan.version.image,
            change_id=plan.change.id,
            change_class=plan.change.class_,
            security_sensitive=plan.change.security_sensitive,
            actor=self.actor,
            plan_path=self.plan_path,
            steps=[s.weight for s in plan.canary.steps],
            scenario=self.scenario,
        )
        for note in self._notes:
            await self._emit(LogLine, source="session", message=note)
        self._flow = asyncio.create_task(self._main())
        reason = ""
        try:
            outcome = await self._flow
        except asyncio.CancelledError:
            if self._stop is None or self._lease_lost is not None:
                raise
            outcome = Outcome.ERROR
        except _Stopped:
            outcome = Outcome.ERROR
        except _Blocked as exc:
            await self._set_phase(Phase.BLOCKED, exc.reason)
            outcome, reason = Outcome.BLOCKED, exc.reason
        except PortError as exc:
            # An outside system failed mid-deploy. Once traffic has moved, rolling back is the safe direction.
            await self._emit(LogLine, level="error", message=str(exc))
            if self.effective_phase in {Phase.STAGING, Phase.CANARY, Phase.VERIFY}:
                await self._request_stop(
                    "rollback", "engine", f"cannot continue: {exc}", automatic=True, rule="error"
                )
            else:
                outcome, reason = Outcome.ERROR, str(exc)
        if self._stop is not None:
            if self._stop.kind == "rollback":
                outcome = await self._rollback_procedure()
            else:
                outcome = await self._abort_procedure()
            reason = self._stop.reason
        elif outcome == Outcome.COMPLETED:
            reason = "all gates passed, canary promoted, verification green"
        return await self._finish(outcome, reason)

    async def _main(self) -> Outcome:
        await self._preflight()
        if self.plan.migrations is not None and (
            self.plan.migrations.files or self.plan.migrations.staging_command
        ):
            await self._migrations()
        await self._staging()
        await self._canary()
        decided = await self._verify()
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
        if kind == "rollback":
            event = await self._emit(
                RollbackTriggered,
                actor=actor,
                automatic=automatic,
                rule=rule,
                reason=reason,
                readings=readings or (self.last_analysis.readings if self.last_analysis else []),
                samples=samples or ([self.last_analysis] if self.last_analysis else []),
                weight_at_trigger=100 if self.effective_phase == Phase.VERIFY else self.weight,
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
        self.outcome = outcome
        self.window = None
        duration = (self.clock.now() - self._started_at).total_seconds() if self._started_at else 0.0
        await self._emit(Finished, outcome=outcome, reason=reason, duration_s=duration)
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
        if self._body is not None and not self._body.done():
            self._body.cancel()

    async def _stopped_by_lease_loss(self) -> Outcome:
        body = self._body
        # a step that catches one cancellation (the rollback's retry loop) gets another
        for _ in range(50):
            if body is None or body.done():
                break
            body.cancel()
            await asyncio.wait({body}, timeout=0.1)
        reason = self._lease_lost or "lease lost"
        await self._emit(LeaseLost, reason=reason, weight=self.weight)
        return await self._finish(
            Outcome.BLOCKED,
            f"lease lost: {reason}; stopped acting with canary at {self.weight} % "
            "(no further cluster writes; the rollout is left for the lease holder or a resume)",
        )


__all__ = ["CommandResult", "Rollout"]
