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
from core.rollout.context import (
    RolloutContext,
)


class CanaryStep(RolloutContext):
    """Step 4, progressive canary (POL-007 CTRL-007.3): each weight observed, then promotion."""

    async def _canary(self) -> None:
        plan = self.plan
        prod = self.world.production
        await self._set_phase(Phase.CANARY, "starting the canary")
        if plan.migrations is not None and plan.migrations.production_command:
            await self._run_command(
                "migrations (production)", plan.migrations.production_command, plan.migrations.timeout
            )
        await self._emit(LogLine, message=f"canary: set image {plan.version.image}")
        await prod.deploy(plan.version.image, "canary")
        self._triggers = TriggerState()
        for index, step in enumerate(plan.canary.steps):
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
        await self._emit(LogLine, message=f"promoting {plan.version.to} to stable")
        await prod.deploy(plan.version.image, "stable")
        await prod.wait_ready(
            "stable", plan.targets.production.rollout_timeout, self._progress("stable rollout")
        )
        await self._set_weight(0, detail="promoted: stable runs the new version")
        self.step_index = None

    async def _set_weight(self, percent: int, detail: str = "") -> None:
        await self._emit(TrafficChanged, requested=percent, effective=percent, applied=False, detail="intent")
        change = await self.world.production.set_canary_weight(percent)
        self.weight = change.effective
        await self._emit(
            TrafficChanged,
            requested=percent,
            effective=change.effective,
            detail=detail or change.detail,
        )
        await self.world.production.write_state(self._state(self.effective_phase.value))
