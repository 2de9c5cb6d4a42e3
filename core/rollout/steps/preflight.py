"""Step 1, pre-deployment gates (POL-007, POL-015): command-line approvals, then the gates."""

from __future__ import annotations

from core.domain import (
    GateGroup,
    Phase,
)
from core.events import (
    GateSignedOff,
)
from core.rollout.context import (
    RolloutContext,
    _Blocked,
)


class PreflightStep(RolloutContext):
    """Step 1, pre-deployment gates (POL-007, POL-015): command-line approvals, then the gates."""

    #: the note on an up-front approval; the headless demo, which signs its own gates, says so
    approval_note = "approved on the command line"

    async def _preflight(self) -> None:
        await self._set_phase(Phase.PREFLIGHT, "checking pre-deploy gates")
        for gate_id in self._approvals:
            gate = self.catalogue.get(gate_id)
            if gate is None:
                raise _Blocked(f"--approve {gate_id}: no such gate in this plan")
            if any(r.actor == self.actor for r in self.ledger.records_for(gate_id, "sign")):
                continue  # signed in the run this one resumes (restored from the persisted progress)
            ok, why, complete = self.ledger.sign(gate, self.actor, self.approval_note, self.clock.now())
            if not ok:
                raise _Blocked(f"--approve {gate_id}: {why}")
            await self._emit(
                GateSignedOff,
                gate_id=gate_id,
                actor=self.actor,
                note=self.approval_note,
                complete=complete,
            )
        await self._gate_phase(GateGroup.PRE_DEPLOY, needs_proceed=self.interactive)
