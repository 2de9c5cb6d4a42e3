"""Dialogs: sign-off, proceed, abort / quit confirmation and the verification decision."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from tui.widgets.gates import gate_prompt
from tui.widgets.model import GateView


def _label_enter(widget: Input | Button, action: str, label: str) -> None:
    """Show Enter in the footer with what it does on this widget (Textual hides it by default)."""
    widget._bindings = widget._bindings.copy()
    widget._bindings.key_to_bindings["enter"] = [Binding("enter", action, label, key_display="enter")]


class _Dialog(ModalScreen[object]):
    """A dialog with its own footer: its keys, and rollback, which no dialog may block.

    `r` rolls back from a dialog whose focus is on a button; in a text field `r` is a letter, so
    ctrl+r does it there (the footer shows whichever works). Keys typed before the dialog has
    painted go into its text field, never to the dashboard underneath (a space there is `pause`).
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("r", "rollback_now('r')", "Rollback", id="dialog.rollback"),
        Binding("ctrl+r", "rollback_now('ctrl+r')", "Rollback", id="dialog.rollback_ctrl"),
    ]
    #: what Enter does, shown in the footer; the field (or button) that has focus does it
    submit_label = "OK"
    #: the widget that has focus when the dialog opens
    first_focus = "#ok"
    dialog = True

    def compose_footer(self) -> ComposeResult:
        yield Footer()

    def field(self, **kwargs: object) -> Input:
        """An Input that obeys the app's cursor-blink setting (snapshots freeze it)."""
        box = Input(**kwargs)  # type: ignore[arg-type]
        box.cursor_blink = getattr(self.app, "cursor_blink", True)
        return box

    def _on_mount(self, event: events.Mount) -> None:
        # synchronously, before any queued key is handled: the burst goes where the person meant
        try:
            self.set_focus(self.query_one(self.first_focus))
        except NoMatches:
            pass
        # the footer names what Enter does where the focus is (the widgets' own binding is hidden)
        for box in self.query(Input):
            _label_enter(box, "submit", self.submit_label)
        for button in self.query(Button):
            _label_enter(button, "press", str(button.label).split(",")[0])
        self.refresh_bindings()

    def on_key(self, event: events.Key) -> None:
        """Every key from inside the dialog passes here on its way to the app's bindings."""
        event.seen_by_dialog = True  # type: ignore[attr-defined]
        if self.take_stray(event):
            event.stop()
            event.prevent_default()

    def take_stray(self, event: events.Key) -> bool:
        """A key typed before the dialog opened (queued for the screen below) goes into the field
        that has focus, so a fast typist's burst arrives whole. True if taken."""
        focused = self.focused
        if not isinstance(focused, Input) or not event.is_printable or event.character is None:
            return False
        start, end = sorted(focused.selection)
        focused.replace(event.character, start, end)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rollback_now":
            if self.app.check_action("rollback", ()) is not True:
                return False
            typing = isinstance(self.focused, Input)
            return parameters == (("ctrl+r",) if typing else ("r",))
        return True

    def action_rollback_now(self, key: str) -> None:
        self.dismiss(None)
        self.app.action_rollback()  # type: ignore[attr-defined]

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

    submit_label = "Sign off"
    first_focus = "#note"

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
        yield from self.compose_footer()

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
        self.submit_label = "Proceed"
        self.first_focus = "#confirm-name" if needs_typing else "#ok"
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
        yield from self.compose_footer()

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
        # the reason field when there is one (Enter submits what was typed); else the safe button
        self.first_focus = "#reason" if reason is not None else ("#cancel" if danger else "#ok")
        self.submit_label = "Cancel" if self.first_focus == "#cancel" else confirm.split(",")[0]
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
                yield Label("Reason (Enter with none: the default shown)")
                yield self.field(placeholder=self.reason, id="reason")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm, variant="error" if self.danger else "primary", id="ok")
                yield Button("Cancel", id="cancel")
        yield from self.compose_footer()

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
        self.dismiss(self.query_one("#reason", Input).value.strip() or self.reason)


class DecisionModal(_Dialog):
    """Verification failed: rollback (recommended when unsure, POL-010) or fix forward."""

    def __init__(self, *, question: str, options: list[str], recommended: str) -> None:
        self.first_focus = f"#opt-{recommended}"
        self.submit_label = recommended.replace("_", " ")
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
        yield from self.compose_footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("opt-") or None)
