"""The dashboard attached to a run the agent drives: a Session/Rollout look-alike fed by the agent.

tui/app.py renders one ``session.rollout``: its ``events``, ``subscribe``, ``outcome``, ``allowed``,
the previews, and its commands. :class:`RemoteRollout` offers the same surface over
:class:`core.agent.client.AgentClient`: events arrive on the SSE stream (history first, so charts
are filled when attaching mid-way), ``allowed`` is the engine's verdict streamed after each event
*and* the caller's RBAC (``you.may``, from SubjectAccessReviews), commands are POSTed. A refusal
by the agent (403: RBAC; 409: the engine) comes back as a refused CommandResult, which the app
shows as it shows any refused command.

:class:`RemoteDeckApp` is the dashboard with one more "may not": what the caller's RBAC forbids is
refused in ``read_only_refuses``, the one place keys, the palette, the mouse and dialog results
all pass, so those keys and palette entries are hidden rather than offered and then refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.agent.client import (
    AgentClient,
    AgentError,
    RunDetail,
    RunState,
    StreamEvent,
    StreamState,
    You,
)
from core.agent.runs import SUBRESOURCE_OF
from core.clock import SystemClock
from core.domain import Outcome
from core.events import Event, Finished
from core.rollout.context import CommandResult
from tui.app import DeployDeckApp
from tui.palette import DeckCommands
from tui.steering import STEERING

#: the engine's command names (``Rollout.allowed``) → the RBAC verb (``you.may``) each needs
#: the engine's command names (sign_off) and the RBAC subresource each needs
COMMAND_MAY = {("sign_off" if verb == "signoff" else verb): sub for verb, sub in SUBRESOURCE_OF.items()}
#: the dashboard's steering actions → the RBAC verb each needs
ACTION_MAY = {
    "rollback": "rollback",
    "proceed": "proceed",
    "promote_early": "proceed",
    "decide": "proceed",
    "refresh_gates": "proceed",
    "sign_off": "signoff",
    "pause_resume": "pause",
    "abort": "abort",
}


# --- the plan as far as the dashboard reads it ----------------------------------------------------


class _Loose(BaseModel):
    # the agent serves the plan as written with its secrets redacted: read what the dashboard
    # shows, ignore the rest (a redacted URL need not validate here; the agent validated the plan)
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Version(_Loose):
    from_: str = Field(default="", alias="from")
    to: str = ""


class _ManualGate(_Loose):
    id: str
    signers: int = 1


class _Gates(_Loose):
    manual: list[_ManualGate] = Field(default_factory=list)


class _Slo(_Loose):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_error_rate_pct: float | None = None


class _Verification(_Loose):
    slo: _Slo = Field(default_factory=_Slo)
    max_error_delta_pp: float = 0.25


class RemotePlan(_Loose):
    """The fields of core.plan.Plan the dashboard uses (service, version, manual gates, SLO)."""

    service: str = ""
    version: _Version = Field(default_factory=_Version)
    gates: _Gates = Field(default_factory=_Gates)
    verification: _Verification = Field(default_factory=_Verification)


# --- the rollout and the session -----------------------------------------------------------------


class RemoteRollout:
    """What tui/app.py and tui/actions.py call on ``session.rollout``, answered by the agent."""

    def __init__(self, client: AgentClient, namespace: str, name: str, detail: RunDetail) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.state: RunState = detail.state or RunState(phase=detail.row.phase, weight=detail.row.weight)
        self.you: You = detail.you
        self.events: list[Event] = []
        self.outcome: Outcome | None = _outcome(self.state.outcome or detail.row.outcome)
        self.interrupted: tuple[str, int] | None = None
        self.approval_note = ""
        self.error: AgentError | None = None  # why the stream ended early
        self.last_seq: int | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._state_listeners: list[Callable[[RunState], None]] = []
        self._finished = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._quiet = asyncio.Event()  # the history burst is in (or the stream is quiet)

    # --- the stream -----------------------------------------------------------------------

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.create_task(self._follow(), name=f"follow {self.namespace}/{self.name}")

    async def caught_up(self, quiet_s: float = 0.15, limit_s: float = 5.0) -> None:
        """Return once the history has arrived: the stream went quiet for ``quiet_s`` (or it ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        seen = -1
        while loop.time() < deadline and not self._finished.is_set():
            if len(self.events) == seen and self._quiet.is_set():
                return
            seen = len(self.events)
            await asyncio.sleep(quiet_s)

    async def _follow(self) -> None:
        try:
            async for item in self.client.events(self.namespace, self.name, last_event_id=self.last_seq):
                self._quiet.set()
                if isinstance(item, StreamState):
                    self.state = item.state
                    for listener in list(self._state_listeners):
                        listener(item.state)
                    continue
                assert isinstance(item, StreamEvent)
                self.last_seq = item.seq if item.seq is not None else self.last_seq
                self._publish(item.event)
        except AgentError as exc:
            self.error = exc
        finally:
            self._quiet.set()
            self._finished.set()

    def _publish(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, Finished):
            self.outcome = event.outcome
        for callback in list(self._subscribers):
            callback(event)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def on_state(self, callback: Callable[[RunState], None]) -> None:
        self._state_listeners.append(callback)

    async def run(self) -> Outcome:
        """Follow the run until it finishes (the agent drives it; this only watches)."""
        self.start()
        await self._finished.wait()
        if self.outcome is not None:
            return self.outcome
        if self.error is not None:
            raise self.error
        raise AgentError(
            f"agent {self.client.url}: the event stream of {self.namespace}/{self.name} ended "
            "before the run finished",
            endpoint=f"GET /api/v1/namespaces/{self.namespace}/runs/{self.name}/events",
        )

    def interrupt(self, signal_name: str, exit_code: int) -> bool:
        """A signal detaches this watcher; the agent keeps driving the run."""
        if self.interrupted is not None:
            return False
        self.interrupted = (signal_name, exit_code)
        self.stop()
        return True

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump

    # --- what may be done now -------------------------------------------------------------

    def may(self, command: str) -> bool:
        """The caller's RBAC for an engine command (absent from ``you.may``: not allowed)."""
        verb = COMMAND_MAY.get(command)
        return verb is not None and bool(self.you.may.get(verb, False))

    def allowed(self, command: str) -> CommandResult:
        if command in COMMAND_MAY and not self.may(command):
            verb = COMMAND_MAY[command]
            return CommandResult(
                ok=False,
                reason=f"{self.you.username} may not {verb} deployruns in {self.namespace} (Kubernetes RBAC)",
            )
        verdict = self.state.allowed.get(command)
        if verdict is None:
            return CommandResult(ok=False, reason=f"the agent did not say whether {command} is allowed")
        return CommandResult(ok=verdict.ok, reason=verdict.reason)

    def pending_reasons(self) -> list[str]:
        return list(self.state.pending_reasons)

    def proceed_preview(self) -> str | None:
        return self.state.proceed_preview

    def promote_early_preview(self) -> str | None:
        return self.state.promote_early_preview

    # --- commands: POSTed; the agent records the authenticated caller, not `actor` ----------

    async def _send(self, verb: str, body: dict[str, Any] | None = None) -> CommandResult:
        try:
            answer = await self.client.command(self.namespace, self.name, verb, body)
        except AgentError as exc:
            if exc.status == 403:
                await self.refresh_permissions()  # the RBAC changed: hide what is no longer allowed
            return CommandResult(ok=False, reason=str(exc))
        return CommandResult(ok=answer.ok, reason=answer.reason)

    async def refresh_permissions(self) -> None:
        """Re-read ``you.may``; refused even that (403), the caller may do nothing here any more."""
        try:
            self.you = (await self.client.run(self.namespace, self.name)).you
        except AgentError as exc:
            if exc.status == 403:
                self.you = self.you.model_copy(update={"may": {}})

    async def sign_off(self, gate_id: str, actor: str, note: str = "") -> CommandResult:
        if actor.strip() != self.you.username:
            # the dialog asks for a signer; attached, the agent records who the token says you are
            return CommandResult(
                ok=False,
                reason=f"attached, you sign as {self.you.username} (your kubeconfig identity), not as "
                f"{actor.strip()!r}; {actor.strip()} signs from their own terminal",
            )
        return await self._send("signoff", {"gate": gate_id, "note": note})

    async def proceed(self, actor: str) -> CommandResult:
        return await self._send("proceed")

    async def promote_early(self, actor: str) -> CommandResult:
        return await self._send("promote_early")

    async def refresh_gates(self, actor: str) -> CommandResult:
        return await self._send("refresh")

    async def pause(self, actor: str, reason: str = "") -> CommandResult:
        return await self._send("pause", {"reason": reason})

    async def resume(self, actor: str) -> CommandResult:
        return await self._send("resume")

    async def rollback(self, actor: str, reason: str = "manual rollback") -> CommandResult:
        return await self._send("rollback", {"reason": reason})

    async def abort(self, actor: str, reason: str) -> CommandResult:
        return await self._send("abort", {"reason": reason})

    async def decide(self, option: str, actor: str) -> CommandResult:
        return await self._send("decide", {"option": option})


def _outcome(value: str | None) -> Outcome | None:
    try:
        return Outcome(value) if value else None
    except ValueError:
        return None


class RemoteSession:
    """What the app reads from a Session: ``plan``, ``clock``, ``rollout``, ``journal_path``, ``close``.

    The deployment log lives with the agent (PostgreSQL or its file), not here: no journal path."""

    def __init__(self, client: AgentClient, detail: RunDetail) -> None:
        row = detail.row
        self.client = client
        self.namespace, self.name = row.namespace, row.name
        self.plan = RemotePlan.model_validate(detail.plan or {})
        if not self.plan.service:
            self.plan.service = row.service
        self.clock = SystemClock()  # the agent's events carry wall-clock times
        self.rollout = RemoteRollout(client, row.namespace, row.name, detail)
        self.journal_path: Path | None = None
        self.notes = [f"attached to {row.namespace}/{row.name} through {client.url}"]

    @classmethod
    async def open(cls, client: AgentClient, namespace: str, name: str) -> RemoteSession:
        """Read the run, start following its stream, return once its history is in."""
        detail = await client.run(namespace, name)
        if detail.state is None and detail.row.outcome:
            # finished and nobody drives it any more: its events are in the agent's log
            raise AgentError(
                f"{namespace}/{name} has finished ({detail.row.outcome}); its events are in the team's "
                f"deployment log: deploydeck log show {detail.row.deploy_id or 'DEPLOY_ID'} --database URL",
                endpoint=f"GET /api/v1/namespaces/{namespace}/runs/{name}",
                status=200,
            )
        session = cls(client, detail)
        session.rollout.start()
        await session.rollout.caught_up()
        if session.rollout.error is not None and not session.rollout.events:
            await session.close()
            raise session.rollout.error
        return session

    @property
    def you(self) -> You:
        return self.rollout.you

    async def close(self) -> None:
        await self.rollout.close()


# --- the dashboard, attached ----------------------------------------------------------------------


class RemoteCommands(DeckCommands):
    """The palette: the dashboard's entries, none of them before a run is open."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        if getattr(self.app, "session", None) is None:
            return []
        return super()._commands()


class RemoteDeckApp(DeployDeckApp):
    """The dashboard on a run the agent drives. ``session`` is a :class:`RemoteSession`."""

    COMMANDS = DeployDeckApp.COMMANDS - {DeckCommands} | {RemoteCommands}

    def __init__(self, session: RemoteSession | None, *, actor: str, read_only: bool = False, **kwargs: Any):
        super().__init__(session, actor=actor, read_only=read_only, **kwargs)  # type: ignore[arg-type]
        self.asked_read_only = read_only

    def permits(self, action: str) -> bool:
        """The caller's RBAC for a steering action; everything else is not RBAC's business."""
        session = self.session
        if session is None or action not in ACTION_MAY:
            return True
        return bool(session.rollout.you.may.get(ACTION_MAY[action], False))  # type: ignore[attr-defined]

    def read_only_refuses(self, action: str) -> bool:
        if action == "switch_scenario":
            return True  # the agent's run is not a demo: nothing to switch to
        if action in STEERING and not self.permits(action):
            return True
        return super().read_only_refuses(action)

    def follow_permissions(self) -> None:
        """Read-only (header badge included) when the caller may do nothing at all on this run."""
        session = self.session
        if session is None:
            return
        may = session.rollout.you.may  # type: ignore[attr-defined]
        self.read_only = self.asked_read_only or not any(may.get(v, False) for v in set(ACTION_MAY.values()))

    def _attach(self) -> None:
        self.follow_permissions()
        super()._attach()
        # what is allowed arrives in the `state` after each event: redraw the keys then, not at the
        # next tick
        self.session.rollout.on_state(lambda _state: self.call_later(self._refresh_keys))  # type: ignore[attr-defined]

    def _refresh_keys(self) -> None:
        # `you.may` can change (a 403 re-reads it): keep the read-only mode in step before the keys
        self.follow_permissions()
        super()._refresh_keys()

    async def _drive(self) -> None:
        """Follow the run (the base class runs an engine here): a stream the agent stopped answering
        is said as such; the run itself goes on in the cluster, so this is no outcome."""
        rollout = self.rollout
        try:
            outcome = await rollout.run()
        except AgentError as exc:
            from tui.widgets.model import LogEntry

            why = f"lost the agent's event stream (the run goes on in the cluster): {exc}"
            self.model.log.append(LogEntry(ts=self.now(), level="error", text=why))
            self._mark({"log", "header"})
            self.notify(why, severity="error", timeout=30)
            return
        if rollout is self.rollout:
            self.outcome = outcome

    def action_history(self) -> None:
        self.notify(
            "the deployment log is the agent's: `deploydeck log --database URL` (or the agent's log file) "
            "shows the team's history",
            severity="information",
            timeout=8,
        )


class AttachApp(RemoteDeckApp):
    """`deploydeck attach`: the fleet screen first (``fleet=True``), Enter opens a run's dashboard and
    q goes back to the fleet; or (``run --agent``) straight onto one run, q detaching.

    Leaving never touches the run: the agent keeps driving it whoever watches."""

    def __init__(
        self,
        client: AgentClient,
        me: Any,
        *,
        fleet: bool = True,
        run: tuple[str, str] | None = None,
        read_only: bool = False,
        period_s: float = 2.0,
    ) -> None:
        super().__init__(None, actor=me.username, read_only=read_only, starting=f"connecting to {client.url}")
        self.client = client
        self.me = me
        self.fleet = fleet
        self.first_run = run
        self.period_s = period_s
        self.opened = 0  # dashboards opened (tests)

    # --- the fleet, and opening a run -----------------------------------------------------

    def fleet_screen(self) -> Any:
        from tui.screens.fleet import FleetScreen

        groups = f" ({', '.join(self.me.groups)})" if self.me.groups else ""
        return FleetScreen(
            self.client.runs,
            title=f"deploydeck · {self.client.url} · you: {self.me.username}{groups}",
            me=self.me.username,
            now=SystemClock().now,
            period_s=self.period_s,
        )

    async def _open(self) -> None:
        """Replaces the app's opener: no local world to start, only the agent to ask."""
        if self.fleet:
            await self.switch_screen(self.fleet_screen())
        if self.first_run is not None:
            await self.open_run(*self.first_run)

    async def open_run(self, namespace: str, name: str) -> None:
        try:
            session = await RemoteSession.open(self.client, namespace, name)
        except AgentError as exc:
            from tui.screens.starting import StartingScreen

            if isinstance(self.screen, StartingScreen):
                self.outcome = Outcome.ERROR
                self.screen.failed(str(exc))
            else:
                self.notify(f"cannot open {namespace}/{name}: {exc}", severity="error", timeout=10)
            return
        self.session = session  # type: ignore[assignment]
        self._owned.append(session)  # type: ignore[arg-type]
        self.outcome = None
        self._started = None
        self.opened += 1
        self._attach()

    def on_fleet_screen_open(self, message: Any) -> None:
        self.run_worker(self.open_run(message.namespace, message.name), group="open", exclusive=True)

    # --- keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if (
            self.session is None
            and action != "quit_deck"
            and any(getattr(b, "action", None) == action for b in self.BINDINGS)
        ):
            return False  # on the fleet: the dashboard's keys have no run to act on
        return super().check_action(action, parameters)

    def action_quit_deck(self) -> None:
        """Detach: back to the fleet (or out). The agent keeps driving the run; nothing to confirm."""
        if self.session is None or not self.fleet:
            self.exit()
            return
        self.run_worker(self._detach(), group="switch", exclusive=True)

    async def _detach(self) -> None:
        from tui.screens.fleet import FleetScreen

        session = self.session
        self.workers.cancel_group(self, "rollout")
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.session = None  # type: ignore[assignment]
        self._started = None
        self.outcome = None  # a watcher leaving the fleet exits 0, whatever the runs it looked at did
        while len(self.screen_stack) > 1 and not isinstance(self.screen, FleetScreen):
            self.pop_screen()
        if session is not None:
            if session in self._owned:
                self._owned.remove(session)
            await session.close()
        if isinstance(self.screen, FleetScreen):
            self.screen.run_worker(self.screen.reload(), group="fleet", exclusive=True)
