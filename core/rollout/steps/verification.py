"""Step 5, post-deploy verification (POL-008): the window, the checks, rollback or fix-forward."""

from __future__ import annotations

from core.domain import (
    GateResult,
    Phase,
)
from core.events import (
    DecisionRequired,
    LogLine,
)
from core.rollout.context import (
    RolloutContext,
    _Stopped,
)


class VerificationStep(RolloutContext):
    """Step 5, post-deploy verification (POL-008): the window, the checks, rollback or fix-forward."""

    async def _verify(self) -> str | None:
        spec = self.plan.verification
        await self._set_phase(Phase.VERIFY, "post-deploy verification")
        # a first read right after promotion, so people see the checks during the window;
        # the decision is taken on the read at its end
        await self._verification_checks()
        await self._observe("verification", spec.duration, Phase.VERIFY)
        results = await self._verification_checks()
        failed = [r for r in results if not r.status.satisfied]
        if not failed:
            return None
        summary = "; ".join(f"{r.gate_id}: {r.evidence}" for r in failed)
        choice = spec.on_failure
        if choice == "ask":
            question = f"verification failed ({summary}). Roll back (recommended, POL-010) or fix forward?"
            event = await self._emit(
                DecisionRequired,
                question=question,
                options=["rollback", "fix_forward"],
                recommended="rollback",
            )
            assert isinstance(event, DecisionRequired)
            if self.interactive:
                self._decision_pending = event
                self._decision = None
                await self._enter_pause("engine", "verification failed: decide rollback or fix-forward")
                while self._decision is None:
                    await self._nap(self.plan.analysis.interval)
                    await self._check_stop()
                self._decision_pending = None
                choice = self._decision  # type: ignore[assignment]
            else:
                choice = self.decision_default
                await self._emit(LogLine, message=f"headless: decision taken from the command line: {choice}")
        if choice == "rollback":
            await self._request_stop(
                "rollback", "engine", f"verification failed: {summary}", automatic=True, rule="verification"
            )
            raise _Stopped
        await self._emit(
            LogLine, level="warning", message=f"fix-forward chosen; failing checks stay on record: {summary}"
        )
        return summary

    async def _verification_checks(self) -> list[GateResult]:
        from core.verification import VerifyContext, verification_checks

        ctx = VerifyContext(
            plan=self.plan,
            clock=self.clock,
            metrics=self.world.metrics,
            alerts=self.world.alerts,
            probe=self.world.probe,
            runner=self.world.runner,
            deploy_started_at=self._started_at or self.clock.now(),
            baseline=self._baseline_ref,
        )
        results = await verification_checks(ctx)
        for result in results:
            await self._record_gate(result)
        return [self.gates[r.gate_id] for r in results]
