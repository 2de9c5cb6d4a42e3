"""Small terminals (issue 15, section 3): at 80x24 the phase line and the keys that steer a rollout
are always on screen, the current phase's gates are in view, and the finish toast covers nothing that
explains the outcome; at 120x40 the STAGING gates are above the fold. Checked on the screen as painted."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Footer
from textual.widgets._toast import Toast

from core.domain import GateGroup, Phase
from tui.screenshots import at_gates, canary_at, demo_app, drive, rolled_back, verifying
from tui.widgets.model import DeckModel


def screen_lines(app: App[object]) -> list[str]:
    """What the terminal shows, one string per row."""
    update = app.screen._compositor.render_full_update()
    return ["".join(segment.text for segment in strip) for strip in update.strips]


def footer_keys(app: App[object]) -> list[str]:
    return [str(key.render()).split()[0] for key in app.screen.query_one(Footer).query("FooterKey")]


def staging(model: DeckModel) -> bool:
    return model.phase == Phase.STAGING and any(
        v.result.group == GateGroup.STAGING for v in model.gates.values()
    )


STEERING = ["r", "p", "s", "space", "a"]
#: and, labels short enough, the views (issue 15: `t Pods` was only in help and the palette)
ALSO = {"g": "Check", "v": "Verify", "t": "Pods"}


@pytest.mark.parametrize(
    ("scenario", "until", "phase_word"),
    [
        ("healthy", at_gates, "PREFLIGHT"),
        ("bad-canary", canary_at(25, samples=1), "CANARY"),
        ("healthy", verifying(2), "VERIFY"),
    ],
    ids=["gates", "canary", "verify"],
)
async def test_80x24_shows_the_phase_line_and_the_steering_keys(
    scenario: str, until: object, phase_word: str, tmp_path: Path
) -> None:
    async with demo_app(scenario, size=(80, 24), journal=tmp_path / "j.jsonl", freeze_at=until) as (
        app,
        pilot,
    ):
        await drive(app, pilot, until, operate=phase_word != "PREFLIGHT")  # type: ignore[arg-type]
        app.refresh_now()  # type: ignore[attr-defined]
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[1].lstrip().startswith(phase_word), lines[:3]
        if app.model.window is not None:  # type: ignore[attr-defined]
            assert " left" in lines[1], lines[1]
            if phase_word == "CANARY":  # and in the ladder, the bar giving way to the time left
                assert any(" left" in line and "canary 25 %:" in line for line in lines[2:]), lines
        keys = footer_keys(app)
        assert all(k in keys for k in STEERING), keys
        visible = "\n".join(lines[-1:])
        for key in STEERING:
            assert f" {key} " in f" {visible} ", visible  # painted, not only present off-screen
        for key, label in ALSO.items():  # whole: the key and its label, before the palette's
            assert f" {key} {label} " in f" {visible.split('▏')[0]}", visible


async def test_80x24_rolled_back_keeps_the_phase_line_and_the_toast_off_the_why_panel(tmp_path: Path) -> None:
    async with demo_app("bad-canary", size=(80, 24), journal=tmp_path / "j.jsonl", notifications=True) as (
        app,
        pilot,
    ):
        await drive(app, pilot, rolled_back)
        await pilot.pause()
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[1].lstrip().startswith("ROLLED BACK"), lines[:3]
        toasts = list(app.screen.query(Toast))
        assert toasts, "the finish is announced"
        why = app.screen.query_one("#why")
        right = app.screen.query_one("#right")
        for toast in toasts:
            assert not toast.region.intersection(why.region).area, (toast.region, why.region)
            assert not toast.region.intersection(right.region).area, (toast.region, right.region)
            assert toast.region.y >= 2  # never over the header


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_current_phases_gates_are_in_view(size: tuple[int, int], tmp_path: Path) -> None:
    async with demo_app("healthy", size=size, journal=tmp_path / "j.jsonl", freeze_at=staging) as (
        app,
        pilot,
    ):
        await drive(app, pilot, staging)
        app.refresh_now()  # type: ignore[attr-defined]
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        gates = [v for v in app.model.gates.values() if v.result.group == GateGroup.STAGING]  # type: ignore[attr-defined]
        assert gates
        for view in gates:
            title = (view.result.title or view.result.gate_id)[:12]
            assert title in text, f"{title!r} is below the fold:\n{text}"
        assert "PRE-DEPLOY" in text and "all passed" in text  # the passed group is one line
