"""Continuing a deploy from its persisted progress (the state annotation) after its driver died.

The writing side lives in `RolloutContext._persist`: every step writes what it is about to do
before it does it. This side turns a persisted :class:`RolloutStatus` back into the rollout's
state, so the steps' idempotent re-entry (`_done`) picks up where the dead driver stopped.
"""

from __future__ import annotations

from core.events import DeployStarted, RollbackTriggered, RunResumed
from core.rollout.context import RolloutContext, _Stop
from core.rollout.progress import RolloutStatus
from core.signoff import SignOffLedger


class Store(RolloutContext):
    """Continuing a deploy from its persisted progress after its driver died."""

    async def _resume_from(self, status: RolloutStatus) -> None:
        now = self.clock.now()
        self.progress = status
        self._started_at = status.started_at
        self.step_index = status.step_index
        self.weight = status.weight
        self._baseline_ref = status.baseline
        self.ledger = SignOffLedger.from_records(status.sign_offs, self.plan, deployer=self.actor)
        if status.stop is not None:
            self._stop = _Stop(status.stop.kind, status.stop.actor, status.stop.reason)
        # the records (completion message, incident record) cover the whole deploy, not only this run
        self.events = [e for e in self._prior_events if e.deploy_id == self.deploy_id]  # type: ignore[misc]
        for event in self.events:
            if isinstance(event, RollbackTriggered):
                self.rollback_reason = event
        last = self._last_traffic()
        if last is not None and last.applied and status.weight_target == last.requested:
            # the driver died after the cluster took the change and it was journaled, before the
            # status recorded it: the weight in force is the journaled one (and is not applied again)
            self.weight = last.effective
        if not any(isinstance(e, DeployStarted) for e in self.events):
            # the driver died between persisting the deploy and journaling its first line
            await self._deploy_started()
        window = status.window
        await self._emit(
            RunResumed,
            from_phase=status.phase,
            from_step=status.step_index,
            weight=self.weight,
            window=window.name if window else None,
            window_started_at=window.started_at if window else None,
            unwatched_s=max(0.0, (now - status.updated_at).total_seconds()),
            previous_driver=status.driver,
            actor=self.actor,
            completed=list(status.completed),
        )
        stop = status.stop
        if stop is not None and stop.kind == "rollback" and self.rollback_reason is None:
            # decided and persisted, but the driver died before journaling it: record it now
            event = await self._emit(
                RollbackTriggered,
                actor=stop.actor,
                automatic=stop.automatic,
                rule=stop.rule,
                reason=stop.reason,
                weight_at_trigger=stop.weight_at_trigger,
            )
            assert isinstance(event, RollbackTriggered)
            self.rollback_reason = event
        await self._persist()

    async def _deploy_started(self) -> None:
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
