"""The dashboard's steering: every command a person can give (keys, palette, mouse, dialogs).

Each action wears the ``@steering`` guard (tui/steering.py), so ``--read-only`` is decided in
one place, and every command reaches the engine through :meth:`SteeringActions._command`.
A mixin of :class:`tui.app.DeployDeckApp`: it uses the app's session, model and screens.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches

from core.domain import GateGroup, GateStatus, Phase
from core.events import DecisionRequired
from tui.screens.gate_detail import GateDetailScreen
from tui.screens.main import MainScreen
from tui.screens.modals import ConfirmModal, DecisionModal, ProceedModal, SignOffModal, SignOffResult
from tui.steering import steering
from tui.widgets.gates import GateChecklist
from tui.widgets.model import LogEntry

if TYPE_CHECKING:
    from core.engine import CommandResult


_PHASE_GROUP: dict[Phase, GateGroup] = {
    Phase.PREFLIGHT: GateGroup.PRE_DEPLOY,
    Phase.MIGRATIONS: GateGroup.MIGRATIONS,
    Phase.STAGING: GateGroup.STAGING,
    Phase.VERIFY: GateGroup.POST_DEPLOY,
}


class SteeringActions:
    """Rollback, proceed, promote early, sign-off, pause/resume, abort, decisions, gate details."""

    # provided by DeployDeckApp
    session: Any
    model: Any
    actor: str

    def _command(self, action: str, make: Callable[[], Coroutine[Any, Any, CommandResult]]) -> None:
        """Send one command to the engine; every command, from every path, passes here last."""
        if self.read_only_refuses(action):
            # a dialog's result arriving after all (opened before a mode change, or by a path not
            # yet guarded) stops here, before the command is even built
            self.notify(f"read-only: {action.replace('_', ' ')} refused", severity="error")
            return
        what = action.replace("_", "-")

        async def send() -> None:
            result = await make()
            if not result.ok:
                self.notify(f"{what} refused: {result.reason}", severity="error", timeout=8)
                if what == "rollback":
                    self.model.rollback_requested_by = None
                    self._mark({"header"})
            elif result.reason:
                self.notify(f"{what}: {result.reason}", severity="warning")

        self.run_worker(send(), group="commands", exit_on_error=False)

    @steering("refresh_gates")
    def action_refresh_gates(self) -> None:
        if self.check_action("refresh_gates", ()) is True:
            self._command("refresh_gates", lambda: self.rollout.refresh_gates(self.actor))

    @steering("rollback")
    def action_rollback(self) -> None:
        if self.check_action("rollback", ()) is not True:
            self.notify(f"cannot roll back: {self.rollout.allowed('rollback').reason}", severity="warning")
            return
        # show it in this very frame; the engine's RollbackTriggered confirms it moments later
        self.hold_layout()  # type: ignore[attr-defined]
        self.model.rollback_requested_by = self.actor
        self.model.log.append(
            LogEntry(ts=self.now(), level="error", text=f"rollback requested by {self.actor} (r)")
        )
        # the header (two fixed lines, no relayout) says so in this very frame; the log and the
        # panels that change the layout wait until the engine has called the cluster (hold_layout)
        self._paint({"header"})
        self._mark({"log"})  # type: ignore[attr-defined]
        self._command(
            "rollback", lambda: self.rollout.rollback(self.actor, f"manual rollback by {self.actor}")
        )

    @steering("proceed")
    def action_proceed(self) -> None:
        allowed = self.rollout.allowed("proceed")
        if not allowed.ok:
            self.notify(f"cannot proceed: {allowed.reason}", severity="warning", timeout=8)
            return
        target, next_weight = self._proceed_target()
        group = _PHASE_GROUP.get(self.model.phase)
        passed = [
            f"{v.result.title} ({v.result.policy})"
            for v in self.model.gates.values()
            if v.result.status.satisfied and (group is None or v.result.group == group)
        ]
        sample = self.model.last_analysis
        if self.model.phase == Phase.CANARY and sample is not None and sample.verdict == "healthy":
            passed.append(f"last analysis healthy at {sample.weight} % ({sample.ts.strftime('%H:%M:%S')})")
        pending = [r for r in self.rollout.pending_reasons() if not r.startswith("no analysis")]
        service = self.model.started.service if self.model.started else self.session.plan.service
        modal = ProceedModal(
            target=target,
            passed=passed,
            pending=pending,
            service=service,
            needs_typing=next_weight == 100,
            skipped=self.rollout.proceed_preview() or "",
        )

        def done(answer: object) -> None:
            if answer is True:
                self._command("proceed", lambda: self.rollout.proceed(self.actor))

        self.push_screen(modal, done)

    @steering("promote_early")
    def action_promote_early(self) -> None:
        """Skip the rest of the final bake: its own key and its own dialog, saying what is skipped."""
        allowed = self.rollout.allowed("promote_early")
        preview = self.rollout.promote_early_preview()
        if not allowed.ok or preview is None:
            self.notify(f"cannot promote early: {allowed.reason}", severity="warning", timeout=8)
            return
        modal = ConfirmModal(
            title="Promote early",
            body=f"Promote {self.session.plan.version.to} to stable now and {preview}.\n"
            "Post-deploy verification still runs in full.",
            confirm="Promote early",
        )

        def done(answer: object) -> None:
            if answer is True:
                self._command("promote_early", lambda: self.rollout.promote_early(self.actor))

        self.push_screen(modal, done)

    def _proceed_target(self) -> tuple[str, int | None]:
        phase, step, steps = self.model.phase, self.model.step, self.model.steps
        if phase == Phase.CANARY and step is not None:
            if step + 1 < len(steps):
                return f"canary {steps[step]} % → {steps[step + 1]} %", steps[step + 1]
            return "canary 100 % → post-deploy verification", None
        if phase == Phase.STAGING and steps:
            return f"staging → production canary at {steps[0]} %", steps[0]
        return f"past the {phase.value.replace('_', ' ')} gates", None

    def _gate_to_sign(self) -> str | None:
        screen = self.screen
        if isinstance(screen, MainScreen):
            # check_action asks this on every binding refresh, also while the screen switches and its
            # checklist is not mounted (or already gone): then no gate is selected, not a crash (NoMatches)
            try:
                selected = screen.query_one(GateChecklist).selected_gate_id
            except NoMatches:
                selected = None
            view = self.model.gates.get(selected or "")
            if view is not None and view.result.status == GateStatus.NEEDS_SIGN_OFF:
                return view.result.gate_id
        for view in self.model.gates.values():
            if view.result.status == GateStatus.NEEDS_SIGN_OFF:
                return view.result.gate_id
        return None

    @steering("sign_off")
    def action_sign_off(self, gate_id: str | None = None) -> None:
        gate_id = gate_id or self._gate_to_sign()
        if gate_id is None:
            self.notify("no gate is waiting for a sign-off", severity="warning")
            return
        view = self.model.gates[gate_id]
        # the plan says how many different people must sign; the engine enforces it
        needed = next((m.signers for m in self.session.plan.gates.manual if m.id == gate_id), 1)

        def done(answer: object) -> None:
            if isinstance(answer, SignOffResult):
                self._command("sign_off", lambda: self.rollout.sign_off(gate_id, answer.signer, answer.note))

        self.push_screen(SignOffModal(view, self.actor, signers_needed=needed), done)

    @steering("pause_resume")
    def action_pause_resume(self) -> None:
        if self.model.phase == Phase.PAUSED:
            self._command("pause_resume", lambda: self.rollout.resume(self.actor))
        else:
            self._command(
                "pause_resume",
                lambda: self.rollout.pause(self.actor, f"paused from the dashboard by {self.actor}"),
            )

    @steering("abort")
    def action_abort(self) -> None:
        weight = self.model.weight
        body = (
            "Abort stops this deploy for good and puts the previous version back "
            f"(canary now at {weight} %). Use r instead if the new version is misbehaving."
        )

        def done(answer: object) -> None:
            if isinstance(answer, str):
                self._command("abort", lambda: self.rollout.abort(self.actor, answer))

        self.push_screen(
            ConfirmModal(
                title="Abort the deploy?",
                body=body,
                confirm="Abort deploy",
                reason=f"aborted by {self.actor}",
            ),
            done,
        )

    @steering("decide")
    def action_decide(self) -> None:
        if self.model.decision is not None:
            self._ask_decision(self.model.decision)

    @steering("decide")
    def _ask_decision(self, event: DecisionRequired) -> None:
        if self._decision_shown is event or self.model.decision is not event:
            return
        self._decision_shown = event

        def done(answer: object) -> None:
            self._decision_shown = None
            if isinstance(answer, str):
                self._command("decide", lambda: self.rollout.decide(answer, self.actor))

        self.push_screen(
            DecisionModal(question=event.question, options=event.options, recommended=event.recommended), done
        )

    def open_gate(self, gate_id: str) -> None:
        view = self.model.gates.get(gate_id)
        if view is None:
            return
        can_sign = not self.read_only_refuses("sign_off") and view.result.status == GateStatus.NEEDS_SIGN_OFF

        def done(answer: object) -> None:
            if answer == "sign":
                self.action_sign_off(gate_id)

        self.push_screen(GateDetailScreen(view, can_sign=can_sign), done)

    # --- other screens ------------------------------------------------------------
