"""Step 4, progressive canary (POL-007 CTRL-007.3): each weight observed, then promotion."""

from __future__ import annotations

from core.analysis import TriggerState
from core.domain import (
    Phase,
)
from core.events import (
    LogLine,
    TrafficChanged,
)
from core.ports import PortError
from core.rollout.context import (
    RolloutContext,
)


class CanaryStep(RolloutContext):
    """Step 4, progressive canary (POL-007 CTRL-007.3): each weight observed, then promotion."""

    async def _canary(self) -> None:
        plan = self.plan
        prod = self.world.production
        await self._set_phase(Phase.CANARY, "starting the canary")
        # each piece below is persisted as done once done; a resumed run skips what is done
        if not self._done("canary.deploy"):
            if (
                plan.migrations is not None
                and plan.migrations.production_command
                and not self._done("migrations.production")
            ):
                await self._persist(pending="migrations.production")
                await self._run_command(
                    "migrations (production)", plan.migrations.production_command, plan.migrations.timeout
                )
                await self._mark("migrations.production", "ran on production")
            await self._persist(pending="canary.deploy")
            await self._emit(LogLine, message=f"canary: set image {plan.version.image}")
            await prod.deploy(plan.version.image, "canary")
            await self._mark("canary.deploy", plan.version.image)
        self._triggers = TriggerState()
        for index, step in enumerate(plan.canary.steps):
            if self._done(f"canary.step.{index}"):
                continue
            self.step_index = index
            await self._set_weight(step.weight)
            if index == 0:
                await prod.wait_ready(
                    "canary", plan.targets.production.rollout_timeout, self._progress("canary rollout")
                )
            self.last_analysis = None
            ended_by_person = await self._observe(f"canary {step.weight} %", step.observe, Phase.CANARY)
            last = index == len(plan.canary.steps) - 1
            if not plan.canary.auto_promote and self.interactive and not last and not ended_by_person:
                # a proceed given in the window's last interval is this wait's answer
                await self._wait_for_proceed(f"step {step.weight} % observed; proceed to the next step")
            elif self._proceed_requested is not None:
                # it came as the window ended by itself: the step moves on anyway, and the request
                # dies here so it can never end the next step's window (issue 14)
                await self._emit(
                    LogLine,
                    message=f"{self._proceed_requested}'s proceed at {step.weight} % came as its window "
                    "ended; the next step gets its full window",
                )
                self._proceed_requested = None
            await self._mark(f"canary.step.{index}", f"{step.weight} % observed")
        if not self._done("canary.promote"):
            await self._persist(pending="canary.promote")
            await self._emit(LogLine, message=f"promoting {plan.version.to} to stable")
            await prod.deploy(plan.version.image, "stable")
            await prod.wait_ready(
                "stable", plan.targets.production.rollout_timeout, self._progress("stable rollout")
            )
            await self._set_weight(0, detail="promoted: stable runs the new version")
            await self._report_stable()
            self.step_index = None
            await self._mark("canary.promote", f"{plan.version.to} is stable")
        self.step_index = None

    async def _report_stable(self) -> None:
        """The replicas strategy scales stable to 0 while the canary carries 100 %: the wait before
        the weight returned found nothing to roll out ("0 of 0", issue 15), and stable's pods came
        back with the weight (set_canary_weight waits for them). Say what stable runs now."""
        try:
            status = await self.world.production.describe()
        except PortError as exc:
            await self._emit(
                LogLine, message=f"stable rollout: cannot read it back now: {exc}", source="cluster"
            )
            return
        await self._emit(
            LogLine,
            message=f"stable rollout: {status.stable_ready} of {status.stable_desired} pods ready, "
            f"running {status.stable_image}",
            source="cluster",
        )

    async def _set_weight(self, percent: int, detail: str = "") -> None:
        """Move traffic once: intent persisted and journaled first, then the cluster, then the record.

        Re-entered after a crash it neither repeats nor skips the change: a change the journal
        already shows applied is not made again; one only announced (intent) is made once more
        (setting the same weight twice is harmless to the cluster) and recorded.
        """
        last = self._last_traffic()
        if last is not None and last.applied and last.requested == percent:
            self.weight = last.effective
            await self._persist(weight_target=None)
            return
        if last is None or last.applied or last.requested != percent:
            await self._persist(weight_target=percent)
            await self._emit(
                TrafficChanged, requested=percent, effective=percent, applied=False, detail="intent"
            )
        change = await self.world.production.set_canary_weight(percent)
        self.weight = change.effective
        await self._emit(
            TrafficChanged,
            requested=percent,
            effective=change.effective,
            detail=detail or change.detail,
        )
        await self._persist(weight_target=None)
