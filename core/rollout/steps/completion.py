"""Step 7, completion: mark complete, notify, close tickets, roll out feature flags."""

from __future__ import annotations

from core.domain import (
    Phase,
)
from core.events import (
    LogLine,
)
from core.rollout.context import (
    RolloutContext,
)


class CompletionStep(RolloutContext):
    """Step 7, completion: mark complete, notify, close tickets, roll out feature flags."""

    async def _complete(self, fix_forward: str | None) -> None:
        from core.completion import completion_message

        await self._set_phase(Phase.COMPLETE, "deploy complete")
        # each is done once: a resume after a crash here does not notify or close tickets twice
        if not self._done("complete.notify"):
            message = completion_message(self.events)
            if fix_forward:
                message = message.model_copy(
                    update={"text": f"{message.text}. Fix-forward chosen with failing checks: {fix_forward}"}
                )
            await self._mark("complete.notify")
            await self._notify(message)
        if not self._done("complete.extras"):
            await self._mark("complete.extras")
            await self._completion_extras()

    async def _completion_extras(self) -> None:
        from core.completion import FlagStepResult, close_tickets, completion_summary, roll_out_flags

        summary = completion_summary(self.events)
        for ticket in await close_tickets(self.plan, deploy_id=self.deploy_id, summary=summary):
            await self._emit(
                LogLine,
                level="info" if ticket.closed else "warning",
                source="completion",
                message=f"ticket {ticket.ticket}: {'closed' if ticket.closed else 'NOT closed'} via {ticket.via} {ticket.detail}".rstrip(),
            )

        async def flag_step(step: FlagStepResult) -> None:
            state = "ok" if step.ok else ("failed, set back to 0 %" if step.reverted else "failed")
            await self._emit(
                LogLine,
                level="info" if step.ok else "warning",
                source="feature flags",
                message=f"flag {step.flag} at {step.percent} %: {state} {step.detail}".rstrip(),
            )

        async def observe_flag(flag: object, percent: int) -> str | None:
            judgement, _ = await self._analyse(0.0, 0.0, Phase.VERIFY)
            if judgement.verdict == "fired":
                return "; ".join(r.text for r in judgement.fired)
            if judgement.verdict == "no_data":
                return f"no data: {judgement.no_data_reason}"
            return None

        await roll_out_flags(self.plan, clock=self.clock, observe=observe_flag, on_step=flag_step)
