"""Gate evaluation and waiting at a group of gates until they are satisfied or signed off."""

from __future__ import annotations

from pathlib import Path

from core.domain import (
    GateGroup,
    GateResult,
    GateStatus,
)
from core.events import (
    GateEvaluated,
    LogLine,
)
from core.gates.base import GateContext
from core.gates.runner import evaluate_gates
from core.rollout.context import (
    RolloutContext,
    _Blocked,
    _unevaluated,
)


class Gates(RolloutContext):
    """Gate evaluation and waiting at a group of gates until they are satisfied or signed off."""

    def _gate_context(self) -> GateContext:
        return GateContext(
            plan=self.plan,
            clock=self.clock,
            probe=self.world.probe,
            runner=self.world.runner,
            alerts=self.world.alerts,
            metrics=self.world.metrics,
            codehost=self.world.codehost,
            deploy_started_at=self._started_at or self.clock.now(),
            staging=self.world.staging,
            base_dir=Path(self.plan_path).parent
            if self.plan_path and not self.plan_path.startswith("(")
            else None,
            on_log=self._gate_log,
        )

    async def _gate_log(self, source: str, line: str) -> None:
        await self._emit(LogLine, source=source, message=line)

    async def _evaluate(self, group: GateGroup, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        only = {g.id for g in self.catalogue.values() if g.group == group and g.id not in skip}
        results = await evaluate_gates(self._gate_context(), group, only=only)
        for result in results:
            if result.gate_id in skip:
                continue
            await self._record_gate(result)

    async def _record_pass(self, gate_id: str, evidence: str) -> None:
        """A gate the engine itself satisfied by doing the work (deploy, migration run)."""
        gate = self.catalogue.get(gate_id)
        if gate is not None:
            await self._record_gate(gate.result(GateStatus.PASS, evidence, at=self.clock.now()))

    async def _record_gate(self, result: GateResult) -> None:
        overlaid = self.ledger.apply(result)
        self.gates[overlaid.gate_id] = overlaid
        await self._emit(GateEvaluated, gate=overlaid)

    def _unsatisfied(self, group: GateGroup, skip: set[str]) -> list[GateResult]:
        out = []
        for gate in self.catalogue.values():
            if gate.group != group or gate.id in skip:
                continue
            result = self.gates.get(gate.id)
            if result is None or not result.status.satisfied:
                out.append(result or _unevaluated(gate))
        return out

    async def _gate_phase(
        self, group: GateGroup, *, needs_proceed: bool, skip: set[str] = frozenset()
    ) -> None:  # type: ignore[assignment]
        await self._evaluate(group, skip)
        refresh = self.plan.gates.refresh
        last_refresh = self.clock.now()
        announced = False
        while True:
            await self._check_stop()
            waiting = self._unsatisfied(group, skip)
            if not self.interactive:
                if waiting:
                    names = ", ".join(f"{r.gate_id} ({r.status.value})" for r in waiting)
                    raise _Blocked(f"blocked at {group.value.replace('_', '-')} gates: {names}")
                return
            if not waiting:
                if not needs_proceed or self._proceed_requested:
                    self._proceed_requested = None
                    self._awaiting_proceed = False
                    return
                self._awaiting_proceed = True  # before the message: whoever reads it may press p at once
                if not announced:
                    await self._emit(LogLine, message="all gates satisfied: press p to proceed")
                    announced = True
            else:
                self._awaiting_proceed = needs_proceed
            await self._nap(min(refresh, 5.0))
            if self._refresh_requested is not None:
                # on demand: every automated gate of the step again, not only the waiting ones
                await self._emit(LogLine, message=f"{self._refresh_requested} re-checks the gates")
                self._refresh_requested = None
                automated = {g.id for g in self.catalogue.values() if g.group == group and g.automated}
                await self._evaluate(group, skip | (set(self.catalogue) - automated))
                last_refresh = self.clock.now()
            elif (self.clock.now() - last_refresh).total_seconds() >= refresh:
                automated = {r.gate_id for r in waiting if self.catalogue[r.gate_id].automated}
                if automated:
                    await self._evaluate(group, skip | (set(self.catalogue) - automated))
                last_refresh = self.clock.now()

    async def _wait_for_proceed(self, message: str) -> None:
        self._awaiting_proceed = True
        await self._emit(LogLine, message=f"{message}: press p")
        while not self._proceed_requested:
            await self._nap(5.0)
            await self._check_stop()
        self._proceed_requested = None
        self._awaiting_proceed = False
