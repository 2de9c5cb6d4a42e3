"""People's commands: what is allowed now, and what each command changes.

Who gave a command: ``actor`` is the name, ``identity`` how it is known. In the embedded mode the
person typed it (``--as``, the sign-off dialog): "self-declared". Through the agent's API the name
and ``groups`` come from a TokenReview: "authenticated". Both are journaled with sign-offs,
overrides and refusals, so the log tells a checked name from a typed one.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.domain import (
    Phase,
)
from core.durations import format_duration
from core.events import (
    CommandRefused,
    GateOverridden,
    GateSignedOff,
    IdentitySource,
    LogLine,
    Resumed,
)
from core.rollout.context import (
    _GROUP_OF,
    CommandResult,
    RolloutContext,
    _unevaluated,
)


class Commands(RolloutContext):
    """People's commands: what is allowed now, and what each command changes."""

    def allowed(self, command: str) -> CommandResult:
        phase, effective = self.phase, self.effective_phase
        if self._interrupted is not None and self.outcome is None:
            return CommandResult(
                ok=False,
                reason=f"the rollout is stopping where it stands ({self._interrupted[0]} received); "
                "run the plan again to resume it",
            )
        if self.outcome is not None or phase in {Phase.PENDING, Phase.ROLLING_BACK}:
            where = "has not started" if phase == Phase.PENDING else f"is {phase.value.replace('_', ' ')}"
            return CommandResult(ok=False, reason=f"the rollout {where}")
        if command == "rollback":
            return CommandResult(ok=True)
        if command == "abort":
            return CommandResult(ok=True)
        if command == "pause":
            if phase == Phase.PAUSED:
                return CommandResult(ok=False, reason="already paused")
            return CommandResult(ok=True)
        if command == "resume":
            if phase != Phase.PAUSED:
                return CommandResult(ok=False, reason="not paused")
            return CommandResult(ok=True)
        if command == "decide":
            if self._decision_pending is None:
                return CommandResult(ok=False, reason="no decision is pending")
            return CommandResult(ok=True)
        if command == "refresh":
            if not self.interactive or effective not in {Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING}:
                return CommandResult(
                    ok=False, reason="gates are re-checked only while the rollout waits at them"
                )
            return CommandResult(ok=True)
        if command in {"sign_off", "override"}:
            if effective not in _GROUP_OF:
                return CommandResult(ok=False, reason=f"no gates are open in {effective.value}")
            return CommandResult(ok=True)
        if command == "proceed":
            if phase == Phase.PAUSED:
                return CommandResult(ok=False, reason="paused: resume first")
            if self._awaiting_proceed:
                blockers = [r for r in self.pending_reasons() if not r.startswith("no analysis")]
                if blockers:
                    return CommandResult(ok=False, reason="; ".join(blockers))
                return CommandResult(ok=True)
            if effective == Phase.CANARY and self.window is not None:
                if self._at_last_step():
                    return CommandResult(
                        ok=False,
                        reason="the 100 % bake ends by itself; promote early (P) skips the rest of it",
                    )
                if self.last_analysis is None or self.last_analysis.verdict != "healthy":
                    reason = "no healthy analysis sample in this step yet"
                    if self.last_analysis is not None and self.last_analysis.no_data_reason:
                        reason = f"last analysis had no data: {self.last_analysis.no_data_reason}"
                    return CommandResult(ok=False, reason=reason)
                return CommandResult(ok=True)
            reasons = self.pending_reasons()
            return CommandResult(
                ok=False,
                reason="; ".join(reasons) if reasons else f"nothing to proceed to in {effective.value}",
            )
        if command == "promote_early":
            if phase == Phase.PAUSED:
                return CommandResult(ok=False, reason="paused: resume first")
            if effective != Phase.CANARY or self.window is None:
                return CommandResult(ok=False, reason="promote early only skips the rest of the 100 % bake")
            if not self._at_last_step():
                return CommandResult(
                    ok=False,
                    reason="promote early only skips the 100 % bake; before it, press p to move one step",
                )
            if self.last_analysis is None or self.last_analysis.verdict != "healthy":
                return CommandResult(ok=False, reason="no healthy analysis sample at 100 % yet")
            return CommandResult(ok=True)
        return CommandResult(ok=False, reason=f"unknown command '{command}'")

    def _at_last_step(self) -> bool:
        return self.step_index is not None and self.step_index == len(self.plan.canary.steps) - 1

    def proceed_preview(self) -> str | None:
        """What a proceed in the middle of a canary window cuts short; None outside a window."""
        if not self.allowed("proceed").ok or self.window is None or self.step_index is None:
            return None
        steps = self.plan.canary.steps
        if self.step_index + 1 >= len(steps):
            return None
        here, following = steps[self.step_index], steps[self.step_index + 1]
        left = max(0.0, (self.window.ends_at - self.clock.now()).total_seconds())
        return (
            f"skips the remaining {format_duration(left)} of the {here.weight} % window; "
            f"{following.weight} % then gets its full {format_duration(following.observe)} window"
        )

    def promote_early_preview(self) -> str | None:
        """What promoting early would skip, for the confirmation; None when it is not allowed now."""
        if not self.allowed("promote_early").ok or self.window is None:
            return None
        left = max(0.0, (self.window.ends_at - self.clock.now()).total_seconds())
        return f"skip the remaining {format_duration(left)} of the 100 % bake"

    async def _refused(
        self, command: str, actor: str, identity: IdentitySource, groups: Sequence[str]
    ) -> CommandResult | None:
        """The refusal (journaled) when the command makes no sense now; None when it may go ahead."""
        check = self.allowed(command)
        return None if check.ok else await self._refuse(command, actor, check.reason, identity, groups)

    async def _refuse(
        self,
        command: str,
        actor: str,
        reason: str,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        await self._emit(
            CommandRefused,
            command=command,
            actor=actor,
            reason=reason,
            identity=identity,
            groups=list(groups),
        )
        return CommandResult(ok=False, reason=reason)

    async def refuse(
        self,
        command: str,
        actor: str,
        reason: str,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        """Journal a command refused before it reached the engine (the agent's RBAC check said no):
        the log keeps who tried what, as it does for the engine's own refusals."""
        return await self._refuse(command, actor, reason, identity, groups)

    async def sign_off(
        self,
        gate_id: str,
        actor: str,
        note: str = "",
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        check = self.allowed("sign_off")
        gate = self.catalogue.get(gate_id)
        if check.ok and gate is None:
            check = CommandResult(ok=False, reason=f"no gate '{gate_id}' in this plan")
        elif check.ok and gate is not None and gate.automated:
            check = CommandResult(ok=False, reason=f"{gate_id} is automated; override it instead")
        if not check.ok:
            return await self._refuse("sign_off", actor, check.reason, identity, groups)
        assert gate is not None
        ok, reason, complete = self.ledger.sign(
            gate, actor, note, self.clock.now(), identity=identity, groups=groups
        )
        if not ok:
            return await self._refuse("sign_off", actor, reason, identity, groups)
        await self._emit(
            GateSignedOff,
            gate_id=gate_id,
            actor=actor,
            note=note,
            complete=complete,
            identity=identity,
            groups=list(groups),
        )
        current = self.gates.get(gate_id) or _unevaluated(gate)
        await self._record_gate(current)
        self._wake.set()
        return CommandResult(ok=True, reason="" if complete else "recorded; another person must sign too")

    async def override(
        self,
        gate_id: str,
        actor: str,
        reason: str,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        check = self.allowed("override")
        gate = self.catalogue.get(gate_id)
        if check.ok and gate is None:
            check = CommandResult(ok=False, reason=f"no gate '{gate_id}' in this plan")
        if not check.ok:
            return await self._refuse("override", actor, check.reason, identity, groups)
        assert gate is not None
        # with the gate's current result: a passing gate has nothing to override, and an override
        # recorded on it would silently cover its next failure
        ok, why = self.ledger.override(
            gate,
            actor,
            reason,
            self.clock.now(),
            self.gates.get(gate_id),
            identity=identity,
            groups=groups,
        )
        if not ok:
            return await self._refuse("override", actor, why, identity, groups)
        await self._emit(
            GateOverridden,
            gate_id=gate_id,
            actor=actor,
            reason=reason,
            identity=identity,
            groups=list(groups),
        )
        current = self.gates.get(gate_id) or _unevaluated(gate)
        await self._record_gate(current)
        self._wake.set()
        return CommandResult(ok=True)

    async def proceed(
        self, actor: str, *, identity: IdentitySource = "self-declared", groups: Sequence[str] = ()
    ) -> CommandResult:
        if refused := await self._refused("proceed", actor, identity, groups):
            return refused
        self._proceed_requested = actor
        self._proceed_step = self.step_index  # a proceed moves one step: the one it was given at
        await self._emit(LogLine, message=f"{actor} proceeds", source=actor)
        self._wake.set()
        return CommandResult(ok=True)

    async def promote_early(
        self, actor: str, *, identity: IdentitySource = "self-declared", groups: Sequence[str] = ()
    ) -> CommandResult:
        """Skip the rest of the final (100 %) bake and promote now: explicit, never a proceed."""
        if refused := await self._refused("promote_early", actor, identity, groups):
            return refused
        preview = self.promote_early_preview() or "skip the rest of the 100 % bake"
        self._promote_early_requested = actor
        await self._emit(LogLine, level="warning", message=f"{actor} promotes early: {preview}", source=actor)
        self._wake.set()
        return CommandResult(ok=True)

    async def refresh_gates(
        self, actor: str, *, identity: IdentitySource = "self-declared", groups: Sequence[str] = ()
    ) -> CommandResult:
        """Re-check the current step's automated gates now instead of at the next refresh."""
        if refused := await self._refused("refresh", actor, identity, groups):
            return refused
        self._refresh_requested = actor
        self._wake.set()
        return CommandResult(ok=True)

    async def pause(
        self,
        actor: str,
        reason: str = "",
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        if refused := await self._refused("pause", actor, identity, groups):
            return refused
        await self._enter_pause(actor, reason or f"paused by {actor}")
        return CommandResult(ok=True)

    async def resume(
        self, actor: str, *, identity: IdentitySource = "self-declared", groups: Sequence[str] = ()
    ) -> CommandResult:
        if refused := await self._refused("resume", actor, identity, groups):
            return refused
        previous = self._paused_from or Phase.PREFLIGHT
        self._paused_from = None
        self._paused_by_engine_at = None
        await self._emit(Resumed, actor=actor)
        await self._set_phase(previous, f"resumed by {actor}")
        self._resumed.set()
        self._wake.set()
        return CommandResult(ok=True)

    async def rollback(
        self,
        actor: str,
        reason: str = "manual rollback",
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        if refused := await self._refused("rollback", actor, identity, groups):
            return refused
        await self._request_stop("rollback", actor, reason, automatic=False)
        return CommandResult(ok=True)

    async def abort(
        self,
        actor: str,
        reason: str,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        if refused := await self._refused("abort", actor, identity, groups):
            return refused
        await self._request_stop("abort", actor, reason or f"aborted by {actor}", automatic=False)
        return CommandResult(ok=True)

    async def decide(
        self,
        option: str,
        actor: str,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> CommandResult:
        check = self.allowed("decide")
        if check.ok and self._decision_pending is not None and option not in self._decision_pending.options:
            check = CommandResult(
                ok=False, reason=f"choose one of: {', '.join(self._decision_pending.options)}"
            )
        if not check.ok:
            return await self._refuse("decide", actor, check.reason, identity, groups)
        self._decision = option
        await self._emit(LogLine, message=f"{actor} decided: {option.replace('_', '-')}", source=actor)
        if self.phase == Phase.PAUSED:
            await self.resume(actor, identity=identity, groups=groups)
        self._wake.set()
        return CommandResult(ok=True)
