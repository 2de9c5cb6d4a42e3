"""Scripted runs of the dashboard on the simulated world, and `python -m tui.screenshots`.

The same drivers serve the snapshot tests, the screenshots and the benchmarks:
a real session on a VirtualClock is walked through the workflow with key
presses, and time is frozen (``VirtualClock.hold``) the moment the wanted state
is reached, so every run stops at the same simulated instant.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from textual import events
from textual.pilot import Pilot

from core.clock import VirtualClock
from core.domain import GateStatus, Phase
from core.events import AnalysisSample, DecisionRequired, Event, GateEvaluated, GateSignedOff, LogLine
from tui.app import DeployDeckApp
from tui.widgets.model import DeckModel

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ACTOR = "alice"

Until = Callable[[DeckModel], bool]


class FreezingClock(VirtualClock):
    """A VirtualClock that can be stopped: while stopped, nobody can start a new sleep.

    Sleeps already pending still end (that is deterministic: what is pending at a
    given event is the same every run), but the engine cannot wait any further, so
    time stops within one interval. Besides the final ``freeze``, time also stops
    while the engine waits for a person (``wait_for_human``), so a scripted sign-off
    lands at the same simulated instant however long the key presses take.
    Blocking new sleeps rather than holding the clock keeps the process idle, which
    Textual's pilot needs to notice that a key press has been handled.
    """

    def __init__(self, start: datetime = START) -> None:
        super().__init__(start)
        self._frozen = False
        self._human = False
        self._blocked: list[asyncio.Future[None]] = []

    async def sleep(self, seconds: float) -> None:
        while self._frozen or self._human:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._blocked.append(fut)
            await fut
        await super().sleep(seconds)

    def _release(self) -> None:
        if self._frozen or self._human:
            return
        blocked, self._blocked = self._blocked, []
        for fut in blocked:
            if not fut.done():
                fut.set_result(None)

    def wait_for_human(self) -> None:
        self._human = True

    def human_done(self) -> None:
        self._human = False
        self._release()

    @property
    def waiting_for_human(self) -> bool:
        return self._human

    def freeze(self) -> None:
        self._frozen = True

    def thaw(self) -> None:
        self._frozen = False
        self._human = False
        self._release()

    @property
    def frozen(self) -> bool:
        return self._frozen


@asynccontextmanager
async def demo_app(
    scenario: str = "healthy",
    *,
    size: tuple[int, int] = (120, 40),
    journal: Path | None = None,
    read_only: bool = False,
    allow_rollback: bool = False,
    clock: VirtualClock | None = None,
    theme: str | None = None,
    freeze_at: Until | None = None,
    humans: bool = True,
    promote: bool = False,
    deploy_id: str | None = None,
    notifications: bool = False,
    backend: Literal["memory", "kube"] = "memory",
) -> AsyncIterator[tuple[DeployDeckApp, Pilot[None]]]:
    """A dashboard on a fresh simulated session, running headless; closes everything after.

    The hooks go in before the engine starts, so the run is the same every time:
    ``freeze_at`` stops simulated time when that state is reached, ``humans`` stops it
    while the engine waits for a sign-off or a proceed.
    """
    from core.session import demo_plan, open_session

    with tempfile.TemporaryDirectory(prefix="deploydeck-tui-") as tmp:
        path = journal or Path(tmp) / "deployments.jsonl"
        session = await open_session(
            demo_plan(scenario),
            actor=ACTOR,
            clock=clock or FreezingClock(),
            journal_path=path,
            sim_backend=backend,
        )
        if deploy_id:
            session.rollout.deploy_id = deploy_id  # a fixed id: snapshots show it
        app = DeployDeckApp(
            session,
            actor=ACTOR,
            read_only=read_only,
            allow_rollback=allow_rollback,
            cursor_blink=False,
            start=False,
        )
        try:
            async with app.run_test(size=size, notifications=notifications) as pilot:
                if theme:
                    app.theme = theme
                if freeze_at is not None:
                    freeze_when(app, freeze_at)
                if humans:
                    stop_for_humans(app, promote=promote)
                app.start_rollout()
                await pilot.pause()
                yield app, pilot
        finally:
            if isinstance(session.clock, FreezingClock):
                session.clock.thaw()
            await session.close()


#: screenshots and snapshots show the journal path and the deploy id: keep both fixed
# a fixed path (snapshots show it), guarded by a lock; renamed from deploydeck-shots, which runs of
# the code before the lock still rmtree under each other
SHOT_JOURNAL = Path(tempfile.gettempdir()) / "deploydeck-snapshots" / "deployments.jsonl"
SHOT_DEPLOY_ID = "d3c0de5a1e01"


_shots_lock: Any = None


def fresh_journal(path: Path = SHOT_JOURNAL) -> Path:
    """An empty journal at the fixed path the snapshots show. The path is shared by every process
    on the machine (a checkout's tests, another's, `make screenshots`): an exclusive lock beside it
    is held until release_shots(), so one run's rmtree never lands in another's deploy."""
    global _shots_lock
    if _shots_lock is None:
        import fcntl

        lock = path.parent.with_name(path.parent.name + ".lock").open("a")
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the other run's app to finish
        _shots_lock = lock
    if path.parent.exists():
        shutil.rmtree(path.parent)
    path.parent.mkdir(parents=True)
    return path


def release_shots() -> None:
    global _shots_lock
    if _shots_lock is not None:
        _shots_lock.close()  # closing the file drops the flock
        _shots_lock = None


class ScriptedDeck(DeployDeckApp):
    """A dashboard that opens its own simulated session on mount.

    For pytest-textual-snapshot, which runs the app in an event loop of its own:
    the session (sockets, tasks) has to be created inside that loop.
    """

    def __init__(
        self,
        scenario: str = "healthy",
        *,
        freeze_at: Until | None = None,
        journal: Path | None = None,
        deploy_id: str | None = SHOT_DEPLOY_ID,
        theme: str | None = None,
    ) -> None:
        super().__init__(None, actor=ACTOR, cursor_blink=False, start=False)  # type: ignore[arg-type]
        self.scenario = scenario
        self.freeze_at = freeze_at
        self.journal = journal or fresh_journal()
        self.fixed_deploy_id = deploy_id
        self.initial_theme = theme

    async def on_mount(self, event: events.Mount) -> None:
        from core.session import demo_plan, open_session

        event.prevent_default()  # the base handler needs the session this one opens first
        if self.initial_theme:
            self.theme = self.initial_theme
        self.session = await open_session(
            demo_plan(self.scenario), actor=ACTOR, clock=FreezingClock(), journal_path=self.journal
        )
        if self.fixed_deploy_id:
            self.session.rollout.deploy_id = self.fixed_deploy_id
        self._owned.append(self.session)  # closed on unmount
        super().on_mount()
        if self.freeze_at is not None:
            freeze_when(self, self.freeze_at)
        stop_for_humans(self)
        self.start_rollout()

    async def on_unmount(self) -> None:
        if isinstance(self.session.clock, FreezingClock):
            self.session.clock.thaw()
        release_shots()


def freeze_when(app: DeployDeckApp, until: Until) -> None:
    """Stop simulated time the instant `until(model)` holds, inside the engine's own emit."""
    clock = app.session.clock

    def check(event: Event) -> None:
        # the app's own subscriber ran first (it subscribed on mount), so the model is current
        if isinstance(clock, FreezingClock) and until(app.model):
            clock.freeze()

    app.session.rollout.subscribe(check)
    if isinstance(clock, FreezingClock) and until(app.model):
        clock.freeze()


def stop_for_humans(app: DeployDeckApp, *, promote: bool = False) -> None:
    """Hold simulated time whenever the engine starts waiting for a sign-off or a proceed.

    With ``promote``, also at every canary sample after which the engine would accept a
    proceed, so a script can promote each step at a deterministic moment.
    """
    clock = app.session.clock
    if not isinstance(clock, FreezingClock):
        return

    def check(event: Event) -> None:
        if (
            (isinstance(event, GateEvaluated) and event.gate.status == GateStatus.NEEDS_SIGN_OFF)
            or (isinstance(event, LogLine) and "press p" in event.message)
            or isinstance(event, DecisionRequired)
            or (
                promote
                and isinstance(event, AnalysisSample)
                and event.phase == Phase.CANARY
                and app.rollout.allowed("proceed").ok
            )
        ):
            clock.wait_for_human()
        elif isinstance(event, GateSignedOff) or (
            isinstance(event, LogLine)
            and (event.message.endswith(" proceeds") or " decided: " in event.message)
        ):
            # the engine has the person's answer: let time run once nobody else is waited for
            if not needs_sign_off(app.model):
                clock.human_done()

    app.session.rollout.subscribe(check)
    if needs_sign_off(app.model):
        clock.wait_for_human()


def needs_sign_off(model: DeckModel) -> bool:
    return any(v.status == GateStatus.NEEDS_SIGN_OFF for v in model.gates.values())


async def sign_off_all(app: DeployDeckApp, pilot: Pilot[None], note: str = "") -> int:
    """Sign every gate that waits for a person, through the `s` dialog. Returns how many."""
    signed = 0
    while needs_sign_off(app.model) and app.check_action("sign_off", ()) is True:
        await pilot.press("s")
        await pilot.pause()
        if note:
            await pilot.press(*note)
        await pilot.press("enter")
        await pilot.pause()
        signed += 1
        if signed > 20:
            raise RuntimeError("sign-off does not stick")
    return signed


async def proceed(app: DeployDeckApp, pilot: Pilot[None]) -> bool:
    """Press `p` and confirm (typing the service name when the dialog asks). False if greyed out."""
    if app.check_action("proceed", ()) is not True:
        return False
    await pilot.press("p")
    await pilot.pause()
    from tui.screens.modals import ProceedModal

    modal = app.screen
    if isinstance(modal, ProceedModal) and modal.needs_typing:
        await pilot.press(*modal.service)
    await pilot.press("enter")
    await pilot.pause()
    return True


async def drive(
    app: DeployDeckApp,
    pilot: Pilot[None],
    until: Until,
    *,
    operate: bool = True,
    promote: bool = False,
    timeout_s: float = 60.0,
) -> None:
    """Keep signing off and proceeding like a release manager would until `until(model)` holds.

    Proceed is pressed when the engine waits at a gate (no observation window running);
    with ``promote`` also mid-window, as soon as the engine allows it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    clock = app.session.clock
    idle = 0
    while not until(app.model):
        if loop.time() > deadline:
            raise TimeoutError(f"state not reached; phase {app.model.phase.value}, outcome {app.outcome}")
        if operate and app.model.finished is None and not getattr(clock, "frozen", False):
            acted = False
            if needs_sign_off(app.model):
                acted = await sign_off_all(app, pilot) > 0
            elif promote or app.model.window is None:
                acted = await proceed(app, pilot)
            idle = 0 if acted else idle + 1
            # a wait the script cannot answer (proceed refused): let time run rather than hang;
            # a few turns first, as the engine announces "press p" just before it accepts it
            if isinstance(clock, FreezingClock) and idle > 3:
                clock.human_done()
        await pilot.pause(0.01)
    app.refresh_now()
    await pilot.pause()


# --- the states the screenshots and snapshots show --------------------------------------


def at_gates(model: DeckModel) -> bool:
    return model.phase == Phase.PREFLIGHT and needs_sign_off(model) and len(model.gates) >= 8


def canary_at(weight: int, samples: int = 4) -> Until:
    def check(model: DeckModel) -> bool:
        if model.phase != Phase.CANARY or model.weight != weight:
            return False
        at = [p for p in model.errors if p.canary is not None]
        return len(at) >= samples and model.last_analysis is not None and model.last_analysis.weight == weight

    return check


def rolled_back(model: DeckModel) -> bool:
    return model.finished is not None and model.rollback is not None


def verifying(samples: int = 6) -> Until:
    def check(model: DeckModel) -> bool:
        return model.phase == Phase.VERIFY and len(model.verify_samples) >= samples

    return check


def completed(model: DeckModel) -> bool:
    return model.finished is not None


@dataclass(frozen=True)
class Shot:
    name: str
    scenario: str
    until: Until
    # keys pressed after the state is reached ("v": verification, "h": history); "wait:MS" waits
    then: str | tuple[str, ...] = ""
    theme: str | None = None


SHOTS: list[Shot] = [
    Shot("gates-pending", "healthy", at_gates),
    Shot("canary-25", "healthy", canary_at(25)),
    Shot("canary-25-light", "healthy", canary_at(25), theme="textual-light"),
    Shot("rolled-back", "bad-canary", rolled_back),
    Shot("verification", "healthy", verifying(), then="v"),
    Shot("pods", "bad-canary", canary_at(25, samples=6), then=("t", "wait:300")),
    # Enter on the last canary pod: its events and log tail (bad-canary: its 503s)
    Shot(
        "pod", "bad-canary", canary_at(25, samples=6), then=("t", "wait:300", "ctrl+end", "enter", "wait:300")
    ),
    Shot("history", "bad-canary", rolled_back, then="h"),
]


async def reach(app: DeployDeckApp, pilot: Pilot[None], shot: Shot) -> None:
    await drive(app, pilot, shot.until, operate=not shot.name.startswith("gates"))
    if shot.then:
        await pilot.press(*shot.then)
        await pilot.pause()
    app.refresh_now()
    app.clear_notifications()
    await pilot.pause()


async def take(shot: Shot, out_dir: Path, size: tuple[int, int]) -> Path:
    async with demo_app(
        shot.scenario,
        size=size,
        theme=shot.theme,
        freeze_at=shot.until,
        journal=fresh_journal(),
        deploy_id=SHOT_DEPLOY_ID,
    ) as (app, pilot):
        try:
            await reach(app, pilot, shot)
            path = out_dir / f"{shot.name}.svg"
            app.save_screenshot(filename=path.name, path=str(out_dir))
            return path
        finally:
            release_shots()


_BRAILLE_RUN = re.compile(
    r'<text (?P<pre>[^>]*?)x="(?P<x>[\d.]+)"(?P<mid>[^>]*?)textLength="(?P<len>[\d.]+)"(?P<post>[^>]*)>'
    r"(?P<body>[^<]*[\u2800-\u28ff][^<]*)</text>"
)


def _one_cell_each(match: re.Match[str]) -> str:
    """Braille glyphs come from a proportional fallback font and rsvg ignores textLength:
    place every cell on its own so chart lines stay inside their panels."""
    body = match["body"]
    x, width = float(match["x"]), float(match["len"]) / max(1, len(body))
    return "".join(
        f'<text {match["pre"]}x="{x + i * width:.1f}"{match["mid"]}textLength="{width:.1f}"{match["post"]}>{ch}</text>'
        for i, ch in enumerate(body)
        if ch != " "
    )


def svg_to_png(svg: Path) -> Path | None:
    """rsvg-convert collapses leading spaces; mark whitespace as preserved so columns line up."""
    tool = shutil.which("rsvg-convert") or (
        "/usr/bin/rsvg-convert" if Path("/usr/bin/rsvg-convert").exists() else None
    )
    if tool is None:
        return None
    text = svg.read_text(encoding="utf-8")
    text = re.sub(r"<svg ", '<svg xml:space="preserve" ', text, count=1).replace("&#160;", " ")
    # Fira Code is a web font rsvg cannot fetch: name the local monospace font instead
    text = text.replace("Fira Code, monospace", "DejaVu Sans Mono, monospace")
    text = _BRAILLE_RUN.sub(_one_cell_each, text)
    png = svg.with_suffix(".png")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    try:
        subprocess.run([tool, tmp.name, "-o", str(png)], check=True, timeout=60)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    return png


async def main_async(out_dir: Path, names: list[str], size: tuple[int, int]) -> int:
    from tui.fleet_shots import FLEET_SHOTS, take_fleet

    for shot in SHOTS:
        if names and shot.name not in names:
            continue
        svg = await take(shot, out_dir, size)
        png = svg_to_png(svg)
        print(f"{svg}" + (f"  {png}" if png else "  (no rsvg-convert: SVG only)"))
    for name in FLEET_SHOTS:  # `deploydeck attach`'s fleet screen, at its own sizes (80x24 and 120x40)
        if names and name not in names:
            continue
        svg = await take_fleet(name, out_dir)
        png = svg_to_png(svg)
        print(f"{svg}" + (f"  {png}" if png else "  (no rsvg-convert: SVG only)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshots", description=__doc__)
    from tui.fleet_shots import FLEET_SHOTS

    known = [s.name for s in SHOTS] + list(FLEET_SHOTS)
    parser.add_argument("names", nargs="*", help="only these shots: " + ", ".join(known))
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--size", default="120x40", help="terminal size, WxH")
    args = parser.parse_args(argv)
    try:
        width, height = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WxH like 120x40, not {args.size!r}")
    unknown = set(args.names) - set(known)
    if unknown:
        parser.error(f"unknown shot(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async(args.out, args.names, (width, height)))


if __name__ == "__main__":
    sys.exit(main())
