"""The deploydeck dashboard: renders the engine's events, sends people's commands back.

The app never talks to Kubernetes or Prometheus: it subscribes to one
``core.engine.Rollout`` and calls its commands. Heavy imports stay out of this
module so the first frame paints fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import ModalScreen

from core.domain import EXIT_CODES, Outcome, Phase
from core.events import DecisionRequired, Event, Finished, RollbackTriggered
from core.redact import redact
from tui.actions import SteeringActions
from tui.lifecycle import end_terminal_threads, stop_on_signals
from tui.palette import DeckCommands
from tui.screens.help import HelpScreen
from tui.screens.log import LogScreen
from tui.screens.main import MainScreen
from tui.screens.modals import ConfirmModal
from tui.screens.starting import StartingScreen
from tui.screens.verification import VerificationScreen
from tui.steering import LIVE_ACTIONS, STEERING, steering
from tui.widgets import words
from tui.widgets.dashboard import ALL_PANELS
from tui.widgets.header import HeaderBar
from tui.widgets.model import DeckModel, LogEntry

if TYPE_CHECKING:
    from core.engine import Rollout
    from core.session import Session

Reopen = Callable[[str], Awaitable["Session"]]

#: the charts redraw at most this often; other panels follow events as they come
CHART_PERIOD_S = 1.0

#: once a rollback starts, painting waits until the engine has called Cluster.rollback (at most this
#: long): a repaint that relayouts the screen (the why panel appears, the footer loses keys, a Static's
#: new text) took 30-190 ms on a busy machine and ran on the event loop between the engine's journal
#: writes and the cluster call (issue 15: `r` → Cluster.rollback p99 256 ms). The header, two fixed
#: lines repainted without a layout pass, still says "rolling back" in the frame of the key.
ROLLBACK_PAINT_HOLD_S = 0.5
#: after SIGHUP/SIGTERM, how long the engine gets to journal its stop before the dashboard quits anyway
SIGNAL_STOP_S = 5.0

_STEERING_KEYS = {
    "r": "roll back",
    "g": "re-check",
    "a": "abort",
    "p": "proceed",
    "s": "sign off",
    "space": "pause",
}


class DeployDeckApp(SteeringActions, App[None]):
    # absolute, so subclasses defined elsewhere (tests, benchmarks) find the stylesheet too
    CSS_PATH = Path(__file__).parent / "deploydeck.tcss"
    TITLE = "deploydeck"
    COMMANDS = App.COMMANDS | {DeckCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rollback", "Rollback", id="rollback"),
        # footer labels short enough that r p s space a g v t fit whole at 80 columns (the palette and
        # help say it in full: "Proceed to the next step", "Re-check the gates now")
        Binding("p", "proceed", "Next", id="proceed"),
        Binding("P", "promote_early", "Promote early", id="promote_early", show=False),
        Binding("s", "sign_off", "Sign", id="sign_off"),
        Binding("space", "pause_resume", "Pause", id="pause"),
        Binding("a", "abort", "Abort", id="abort"),
        Binding("g", "refresh_gates", "Check", id="refresh_gates"),
        Binding("d", "decide", "Decide", id="decide"),
        Binding("v", "verification", "Verify", id="verification"),
        Binding("t", "rollout_tree", "Pods", id="rollout_tree"),
        Binding("l", "show_log", "Log", id="log"),
        Binding("h", "history", "History", id="history"),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("q", "quit_deck", "Quit", id="quit"),
    ]

    def __init__(
        self,
        session: Session | None,
        *,
        actor: str,
        read_only: bool = False,
        allow_rollback: bool = False,
        reopen: Reopen | None = None,
        start: bool = True,
        cursor_blink: bool = True,
        opener: Callable[[], Awaitable[Session]] | None = None,
        starting: str = "starting",
    ) -> None:
        super().__init__()
        # With an opener the first frame paints before the world (cluster, Prometheus) is up.
        self.session: Session = session  # type: ignore[assignment]
        self.opener = opener
        self.starting = starting
        self.actor = actor
        self.read_only = read_only
        self.allow_rollback = allow_rollback
        self.reopen = reopen
        self.start = start
        self.cursor_blink = cursor_blink
        self.model = DeckModel()
        self.outcome: Outcome | None = None
        self.signal_exit: int | None = None  # 129/143 once SIGHUP/SIGTERM ended the dashboard
        self._unsubscribe: Callable[[], None] | None = None
        self._dirty: set[str] = set()
        self._flush_pending = False
        self._charts_drawn_at = 0.0
        self._hold_until = 0.0  # monotonic time until which layout-changing paints wait (rollback)
        self._owned: list[Session] = []  # sessions from `reopen`, which this app must close
        self._decision_shown: DecisionRequired | None = None
        self._keys_signature: tuple[object, ...] = ()
        self._started: object | None = None  # the rollout whose run() this app is driving

    # --- wiring -----------------------------------------------------------------

    @property
    def rollout(self) -> Rollout:
        return self.session.rollout

    def now(self) -> datetime:
        return self.session.clock.now()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick, name="deck-tick")
        if self.session is None:
            self.push_screen(StartingScreen(self.starting))
            # after the first paint: opening imports the kubernetes client, which blocks the loop a while
            self.call_after_refresh(self.run_worker, self._open(), name="open-session", exit_on_error=False)
        else:
            self._attach()

    async def _open(self) -> None:
        assert self.opener is not None
        try:
            session = await self.opener()
        except Exception as exc:  # the world would not start: say why on the screen, no traceback
            from core.session import DriverConflict

            self.outcome = Outcome.BLOCKED if isinstance(exc, DriverConflict) else Outcome.ERROR
            if isinstance(self.screen, StartingScreen):
                self.screen.failed(redact(str(exc)))
            return
        self.session = session
        self._owned.append(session)
        self._attach()

    def _attach(self) -> None:
        """Fold what already happened, subscribe, push the main screen, start the engine."""
        self.model = DeckModel()
        for event in list(self.rollout.events):
            self.model.apply(event)
        self._unsubscribe = self.rollout.subscribe(self._on_event)
        screen = MainScreen(self.model, self.now, self.actor, read_only=self.read_only)
        if isinstance(self.screen, MainScreen | StartingScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        if self.start:
            self.start_rollout()
        self.outcome = self.rollout.outcome

    def start_rollout(self) -> None:
        """Run the engine as a worker (on mount, unless built with start=False)."""
        if self.rollout.outcome is None and self._started is not self.rollout:
            self._started = self.rollout
            self.run_worker(self._drive(), name="rollout", group="rollout", exit_on_error=False)

    def stop_on_signal(self, name: str, code: int) -> None:
        """SIGHUP (the terminal closed) or SIGTERM: leave the rollout where it stands, as the headless
        mode does (journaled `run_interrupted`, no traffic change, resumable), then quit."""
        if self.signal_exit is not None:
            return
        self.signal_exit = code
        rollout = getattr(self.session, "rollout", None)
        interrupt = getattr(rollout, "interrupt", None)  # an attached dashboard only detaches
        if interrupt is not None and interrupt(name, code):
            self.run_worker(self._exit_once_stopped(), group="signal", exit_on_error=False)
        else:
            self.exit()

    async def _exit_once_stopped(self) -> None:
        # the engine journals the stop from its own task; quitting at once would cancel it first
        running = [w for w in self.workers if w.group == "rollout" and not w.is_finished]
        waits = [asyncio.ensure_future(w.wait()) for w in running]
        if waits:  # asyncio.wait, not wait_for: on 3.11 wait_for can drop a cancellation
            await asyncio.wait(waits, timeout=SIGNAL_STOP_S)
        for wait in waits:
            wait.cancel()
        self.exit()

    async def _drive(self) -> None:
        rollout = self.rollout
        try:
            outcome = await rollout.run()
        except Exception as exc:  # the engine failed: say so on screen instead of a traceback
            self.outcome = Outcome.ERROR
            why = redact(f"engine stopped: {exc}")  # not an event: masked here, like events are
            self.model.log.append(LogEntry(ts=self.now(), level="error", text=why))
            self._mark({"log", "header"})
            self.notify(why, severity="error", timeout=30)
            return
        if rollout is self.rollout:
            self.outcome = outcome

    def _on_event(self, event: Event) -> None:
        # called synchronously by the engine: fold now, paint on the next turn of the loop
        if isinstance(event, RollbackTriggered):
            self.hold_layout()
        self._mark(self.model.apply(event))
        if isinstance(event, DecisionRequired) and not self.read_only_refuses("decide"):
            self.call_later(self._ask_decision, event)
        if isinstance(event, Finished):
            self.outcome = event.outcome
            severity = "information" if event.outcome == Outcome.COMPLETED else "error"
            self.call_later(
                self.notify, f"deploy finished: {words.outcome(event.outcome)}", severity=severity
            )

    def _mark(self, changed: set[str]) -> None:
        self._dirty |= changed
        if not self._flush_pending:
            self._flush_pending = True
            self.call_later(self._paint_dirty)

    # not `_flush`: Textual's App._flush(stderr=...) is called whenever stdout is flushed while it runs,
    # and shadowing it made every such flush (and quitting) end in a TypeError traceback
    def hold_layout(self) -> None:
        """A rollback is starting: let the engine reach the cluster before anything is repainted."""
        if time.monotonic() < self._hold_until or self.session is None:
            return
        # an attached dashboard's engine runs in the agent: nothing local to wait for, paint at once
        started = getattr(self.rollout, "rollback_started", None)
        if started is None or started.is_set():
            return
        self._hold_until = time.monotonic() + ROLLBACK_PAINT_HOLD_S

        async def release() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROLLBACK_PAINT_HOLD_S):
                    await started.wait()
            self._hold_until = 0.0
            self._mark(set())

        self.run_worker(release(), group="rollback-hold", exit_on_error=False)

    def _paint_dirty(self) -> None:
        self._flush_pending = False
        if time.monotonic() < self._hold_until:
            # the header is two fixed lines (no relayout); the rest stays dirty until the hold ends
            if "header" in self._dirty:
                self._dirty.discard("header")
                self._paint({"header"})
            return
        changed = set(self._dirty)  # a copy: the in-place -= below would empty it too
        if "charts" in changed and time.monotonic() - self._charts_drawn_at < CHART_PERIOD_S:
            changed = changed - {"charts"}  # stays dirty until the tick draws it
        else:
            self._charts_drawn_at = time.monotonic() if "charts" in changed else self._charts_drawn_at
        self._dirty -= changed
        self._paint(changed)
        self._refresh_keys()

    def _paint(self, changed: set[str] | frozenset[str]) -> None:
        for screen in self._live_screens():
            # a screen being composed or torn down (quit, switch scenario) may miss a panel
            with contextlib.suppress(NoMatches):
                screen.refresh_panels(changed)  # type: ignore[attr-defined]

    def _live_screens(self) -> list[object]:
        return [
            s
            for s in self.screen_stack
            if hasattr(s, "refresh_panels") and getattr(s, "model", None) is self.model
        ]

    def _tick(self) -> None:
        if time.monotonic() < self._hold_until:
            return  # a rollback is starting: the engine's path to the cluster first
        if "charts" in self._dirty:
            self._dirty.discard("charts")
            self._charts_drawn_at = time.monotonic()
            self._paint({"charts"})
        for screen in self._live_screens():
            with contextlib.suppress(NoMatches):
                screen.tick()  # type: ignore[attr-defined]
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Recompose the Footer only when a key's availability changed: it is the costliest repaint."""
        if not self.screen_stack:
            return  # quitting: the timer's last tick came after the last screen went (ScreenStackError)
        signature = (id(self.screen), *(self.check_action(a, ()) for a in sorted(LIVE_ACTIONS)))
        if signature != self._keys_signature:
            self._keys_signature = signature
            self.refresh_bindings()

    def refresh_now(self) -> None:
        """Paint every panel (charts too) from the model right now; tests and screenshots use it."""
        self._dirty.clear()
        self._charts_drawn_at = time.monotonic()
        self._paint(ALL_PANELS)
        for screen in self._live_screens():
            with contextlib.suppress(NoMatches):
                screen.tick()  # type: ignore[attr-defined]
        self.refresh_bindings()

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:  # type: ignore[override]
        """Every toast (screens' too: Widget.notify lands here) passes core.redact: it can quote an
        error, a URL, a reason."""
        super().notify(redact(str(message)), title=redact(title), **kwargs)

    # --- key checks -------------------------------------------------------------

    def read_only_refuses(self, action: str) -> bool:
        """The one place the --read-only mode is decided: True if `action` may not run now."""
        if not self.read_only or action not in STEERING:
            return False
        # rolling back is the safe direction: an observer may keep that key when asked to
        return not (action == "rollback" and self.allow_rollback)

    def on_key(self, event: events.Key) -> None:
        # a key that reaches the app from the screen under a dialog was typed as the dialog opened
        dialog = self.screen
        if getattr(dialog, "dialog", False) and not getattr(event, "seen_by_dialog", False):
            if dialog.take_stray(event):  # type: ignore[attr-defined]
                event.prevent_default()
            return
        finished = self.model.finished
        if finished is not None and event.key in _STEERING_KEYS and not getattr(dialog, "dialog", False):
            # the steering keys are hidden once the deploy is over; a press still gets an answer
            self.notify(
                f"{_STEERING_KEYS[event.key]}: the deploy has finished ({words.outcome(finished.outcome)}); "
                "h history, q quit",
                severity="warning",
            )
            event.prevent_default()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.screen_stack:
            return False  # quitting, the last screen gone: no key does anything (and self.screen raises)
        if getattr(self.screen, "dialog", False) and action != "rollback":
            return False  # a dialog's footer shows the dialog's keys (and rollback, never blocked)
        if action not in LIVE_ACTIONS:
            return True
        if self.read_only_refuses(action):
            return False
        if self.session is None:
            return False  # still starting: nothing to steer yet
        live = getattr(self.screen, "live_commands", None)
        if self.rollout.outcome is not None or self.model.finished is not None:
            return False  # nothing left to steer: hide the commands rather than grey them
        if action == "rollback":
            # rolling back is the safe direction: it works from dialogs too, never from a replay
            if live is False:
                return False
            return True if self.rollout.allowed("rollback").ok else None
        if self.read_only or not live or isinstance(self.screen, ModalScreen):
            return False
        if action == "decide":
            return self.rollout.allowed("decide").ok
        if action == "pause_resume":
            ok = self.rollout.allowed("resume" if self.model.phase == Phase.PAUSED else "pause").ok
        elif action == "refresh_gates":
            ok = self.rollout.allowed("refresh").ok
        elif action == "sign_off":
            ok = self.rollout.allowed("sign_off").ok and self._gate_to_sign() is not None
        else:
            ok = self.rollout.allowed(action).ok
        return True if ok else None

    # --- commands -----------------------------------------------------------------

    def _header(self) -> HeaderBar:
        return HeaderBar(self.model, self.now, self.actor, read_only=self.read_only)

    def action_show_log(self) -> None:
        if not isinstance(self.screen, LogScreen):
            self.push_screen(LogScreen(self.model, self._header()))

    def action_verification(self) -> None:
        if not isinstance(self.screen, VerificationScreen):
            self.push_screen(
                VerificationScreen(
                    self.model,
                    self._header(),
                    self.now,
                    self.session.plan.verification.slo,
                    self.session.plan.verification.max_error_delta_pp,
                )
            )

    def action_rollout_tree(self) -> None:
        """ReplicaSets, pods, images, weights and analysis counts (kubectl argo rollouts get rollout)."""
        from tui.screens.history import HistoryScreen, ReplayScreen
        from tui.screens.rollout_tree import RolloutScreen

        if isinstance(self.screen, HistoryScreen | ReplayScreen):
            # a replay of a past deploy: the cluster shows today's pods, not that deploy's
            self.notify("pods: the live deploy's only (esc back to it first)", severity="warning")
            return
        if self.session is not None and not isinstance(self.screen, RolloutScreen):
            self.push_screen(RolloutScreen(self.model, self._header, self.session.inspector()))

    def action_history(self) -> None:
        from tui.screens.history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(Path(self.session.journal_path), self.actor))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_names()))

    def key_names(self) -> dict[str, str]:
        """Binding id → key as the person sees it, after any App.set_keymap remapping."""
        names: dict[str, str] = {}
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if binding.id and binding.id not in names:
                names[binding.id] = self.get_key_display(binding.with_key(key))
        return names

    def action_quit_deck(self) -> None:
        if self.session is None or self.rollout.outcome is not None or not self.model.in_flight:
            self.exit()
            return
        phase = self.model.phase.value.replace("_", " ")
        body = (
            f"The rollout is in flight ({phase}, canary at {self.model.weight} %).\n"
            "Quitting leaves it where it is: traffic stays as it is, nothing is promoted or rolled back, "
            "and the deployment log keeps its place."
        )

        def done(answer: object) -> None:
            if answer is True:
                self.exit()

        self.push_screen(
            ConfirmModal(title="Quit deploydeck?", body=body, confirm="Quit, leave it as is", danger=False),
            done,
        )

    # --- demo: switch scenario -----------------------------------------------------

    @steering("switch_scenario")
    def switch_scenario(self, name: str) -> None:
        if self.reopen is None:
            return
        self.run_worker(self._switch(name), group="switch", exclusive=True, exit_on_error=False)

    async def _switch(self, name: str) -> None:
        assert self.reopen is not None
        try:
            fresh = await self.reopen(name)
        except Exception as exc:  # a bad scenario name or a world that would not start: tell, keep going
            self.notify(f"cannot switch to {name}: {exc}", severity="error")
            return
        self.workers.cancel_group(self, "rollout")
        if self._unsubscribe is not None:
            self._unsubscribe()
        old = self.session
        self.session = fresh
        self._owned.append(fresh)
        if old in self._owned:
            self._owned.remove(old)
            await old.close()
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.outcome = None
        self._attach()
        self.start_rollout()
        self.notify(f"switched to scenario {name}")

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for session in self._owned:
            await session.close()
        self._owned.clear()

    def on_resize(self, event: events.Resize) -> None:
        self._size_classes(event.size.width, event.size.height)

    def _size_classes(self, width: int, height: int) -> None:
        self.set_class(width < 100, "-narrow")
        self.set_class(width >= 160, "-wide")
        self.set_class(height < 30, "-short")
        self.set_class(height >= 50, "-tall")


async def run_dashboard(
    session: Session | None,
    *,
    actor: str,
    read_only: bool = False,
    allow_rollback: bool = False,
    reopen: Reopen | None = None,
    opener: Callable[[], Awaitable[Session]] | None = None,
    starting: str = "starting",
) -> int:
    """Run the dashboard until the person quits; the exit code: the rollout's (core.domain.EXIT_CODES)
    if it finished, 0 if the person quit before, 129/143 if SIGHUP/SIGTERM stopped it where it stood.

    Pass ``opener`` instead of a session to paint the first frame before the world starts;
    the app then owns (and closes) the session it opened.
    """
    app = DeployDeckApp(
        session,
        actor=actor,
        read_only=read_only,
        allow_rollback=allow_rollback,
        reopen=reopen,
        opener=opener,
        starting=starting,
    )
    with stop_on_signals(app):
        try:
            await app.run_async()
        finally:
            end_terminal_threads(app)
    if app.signal_exit is not None:
        return app.signal_exit
    return 0 if app.outcome is None else EXIT_CODES[app.outcome]
