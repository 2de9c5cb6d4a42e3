"""Dialogs: sign-off, proceed, abort / quit confirmation and the verification decision."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.widgets.gates import gate_prompt
from tui.widgets.model import GateView


class _Dialog(ModalScreen[object]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def field(self, **kwargs: object) -> Input:
        """An Input that obeys the app's cursor-blink setting (snapshots freeze it)."""
        box = Input(**kwargs)  # type: ignore[arg-type]
        box.cursor_blink = getattr(self.app, "cursor_blink", True)
        return box

    def action_cancel(self) -> None:
        self.dismiss(None)


class SignOffResult(tuple[str, str]):
    """(signer, note)"""

    @property
    def signer(self) -> str:
        return self[0]

    @property
    def note(self) -> str:
        return self[1]


class SignOffModal(_Dialog):
    """Signer defaults to --as / $USER; security-sensitive gates may need a second, different signer."""

    def __init__(self, gate: GateView, signer: str, *, signers_needed: int = 1) -> None:
        super().__init__()
        self.gate = gate
        self.signer = signer
        self.signers_needed = signers_needed

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="signoff-dialog") as box:
            box.border_title = "Sign off"
            yield Static(gate_prompt(self.gate), classes="dialog-gate")
            already = [s.actor for s in self.gate.sign_offs]
            if already:
                yield Label(
                    f"already signed by {', '.join(already)}; the next signer must be someone else",
                    classes="dialog-warn",
                )
            elif self.signers_needed > 1:
                yield Label(f"this gate needs {self.signers_needed} different signers", classes="dialog-warn")
            yield Label("Signer")
            yield self.field(value=self.signer, id="signer", placeholder="who signs")
            yield Label("Note (optional)")
            yield self.field(id="note", placeholder="e.g. reviewed the rollback plan with the DBA")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Sign off", variant="success", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        signer = self.query_one("#signer", Input).value.strip()
        if not signer:
            self.notify("a sign-off needs a signer", severity="error")
            return
        self.dismiss(SignOffResult((signer, self.query_one("#note", Input).value.strip())))


class ProceedModal(_Dialog):
    """Lists what passed and what is pending; promoting to 100 % asks for the service name."""

    def __init__(
        self,
        *,
        target: str,
        passed: list[str],
        pending: list[str],
        service: str,
        needs_typing: bool,
        skipped: str = "",
    ) -> None:
        super().__init__()
        self.target = target
        self.skipped = skipped  # what a proceed mid-window cuts short, said before it is pressed
        self.passed = passed
        self.pending = pending
        self.service = service
        self.needs_typing = needs_typing

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="proceed-dialog") as box:
            box.border_title = "Proceed"
            yield Label(Text.assemble(("Proceed one step: ", "bold"), self.target))
            if self.skipped:
                yield Label(self.skipped, classes="dialog-warn", id="proceed-skipped")
            body = Text()
            for item in self.passed:
                body.append("✔ ", style="green")
                body.append(item + "\n")
            for item in self.pending:
                body.append("○ ", style="yellow")
                body.append(item + "\n", style="yellow")
            if not self.passed and not self.pending:
                body.append("nothing to report", style="dim")
            yield Static(body.rstrip() or Text(), classes="dialog-list")
            if self.needs_typing:
                yield Label(Text.assemble("Type the service name ", (self.service, "bold"), " to send 100 %"))
                yield self.field(id="confirm-name", placeholder=self.service)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Proceed", variant="warning", id="ok", disabled=self.needs_typing)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.needs_typing:
            self.query_one("#confirm-name", Input).focus()
        else:
            self.query_one("#ok", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#ok", Button).disabled = event.value.strip() != self.service

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.service:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True if event.button.id == "ok" else None)


class ConfirmModal(_Dialog):
    """Yes/no with an optional reason field (abort needs one, quit does not)."""

    def __init__(
        self, *, title: str, body: str, confirm: str, danger: bool = True, reason: str | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm = confirm
        self.danger = danger
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog") as box:
            box.border_title = self.title_text
            yield Static(self.body, classes="dialog-list")
            if self.reason is not None:
                yield Label("Reason")
                yield self.field(value=self.reason, id="reason")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm, variant="error" if self.danger else "primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._confirm()
        else:
            self.dismiss(None)

    def _confirm(self) -> None:
        if self.reason is None:
            self.dismiss(True)
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.notify("give a reason", severity="error")
            return
        self.dismiss(reason)


class DecisionModal(_Dialog):
    """Verification failed: rollback (recommended when unsure, POL-010) or fix forward."""

    def __init__(self, *, question: str, options: list[str], recommended: str) -> None:
        super().__init__()
        self.question = question
        self.options = options
        self.recommended = recommended

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="decision-dialog") as box:
            box.border_title = "Decision needed"
            yield Static(self.question, classes="dialog-list")
            yield Label(
                f"recommended: {self.recommended} (POL-010: roll back if unsure)", classes="dialog-warn"
            )
            with Horizontal(classes="dialog-buttons"):
                for option in self.options:
                    variant = "error" if option == self.recommended else "default"
                    yield Button(option.replace("_", " "), variant=variant, id=f"opt-{option}")

    def on_mount(self) -> None:
        try:
            self.query_one(f"#opt-{self.recommended}", Button).focus()
        except NoMatches:  # the recommended option may not be offered
            pass

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("opt-") or None)
