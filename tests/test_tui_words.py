"""Words (issue 15, section 3): what the screen and the readable headless log say, in words a release
manager reads without knowing the code: no raw identifiers, no JSON, limits that read as limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.domain import Outcome
from tests.test_cli import ROOT, deploydeck
from tests.test_tui_small import screen_lines
from tui.screenshots import demo_app, drive, rolled_back

#: identifiers of the code that used to reach the screen
RAW = re.compile(
    r"rolled_back|weight_reset|undo_stable|attempt_failed|error_rate|p99_latency|gate_signed_off|"
    r"rollback_step|needs_sign_off|post_deploy|pre_deploy|\{\""
)


def everything_said(app: object) -> str:
    """The screen as painted plus every event-log entry (the log scrolls)."""
    log = "\n".join(entry.text for entry in app.model.log)  # type: ignore[attr-defined]
    return "\n".join(screen_lines(app)) + "\n" + log  # type: ignore[arg-type]


async def test_the_screen_after_a_rollback_says_it_in_words(tmp_path: Path) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        app.refresh_now()
        await pilot.pause()
        said = everything_said(app)
        assert not RAW.findall(said), [line for line in said.splitlines() if RAW.search(line)]
        assert "ROLLED BACK" in said and "rolled back" in said
        assert "error rate" in said
        # a status is said once, not "needs a sign-off: needs a sign-off"
        assert not re.search(r"(needs a sign-off): \1", said)
        # the clock of a simulated run is simulated time, and says so
        assert "UTC" not in screen_lines(app)[1] and "simulated" in screen_lines(app)[1]


async def test_a_completed_screen_says_it_in_words_keeps_the_split_and_says_why_keys_do_nothing(
    tmp_path: Path,
) -> None:
    # one completed deploy for both (each test driving its own took 5-9 s)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", promote=True, notifications=True) as (
        app,
        pilot,
    ):
        splits = []

        def verify_split(model: object) -> bool:
            if model.phase.value == "verify":  # type: ignore[attr-defined]
                splits.append(_split(screen_lines(app)))
            return model.finished is not None  # type: ignore[attr-defined]

        await drive(app, pilot, verify_split, promote=True)
        assert app.outcome == Outcome.COMPLETED
        app.refresh_now()
        await pilot.pause()
        said = everything_said(app)
        assert not RAW.findall(said), [line for line in said.splitlines() if RAW.search(line)]
        final = _split(screen_lines(app))
        assert final == "1.5.0 100 %", final
        assert all(s == final for s in splits if s), splits  # VERIFY and COMPLETE say the same
        # after complete, the steering keys say why they do nothing
        app.clear_notifications()
        for key in ("r", "g", "a"):
            await pilot.press(key)
            await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert len(messages) == 3, messages
        assert all("finished" in m and "completed" in m for m in messages), messages


def _split(lines: list[str]) -> str:
    text = " ".join(" ".join(lines).split())
    found = re.search(r"(\d+\.\d+\.\d+) (\d+ %) serving", text)
    return f"{found[1]} {found[2]}" if found else ""


def test_the_headless_log_reads_as_words(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "bad-canary", tmp_path=tmp_path)
    assert result.returncode == 3
    assert not RAW.findall(result.stdout), sorted(set(RAW.findall(result.stdout)))
    assert "ROLLBACK (automatic) error rate:" in result.stdout
    # the headless demo signs its gates itself, and says so; nothing was passed on a command line
    assert "approved on the command line" not in result.stdout
    assert "signed by the headless demo" in result.stdout


def test_the_health_limit_reads_as_a_limit(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "flaky-health", tmp_path=tmp_path)
    assert "of 2 allowed" not in result.stdout
    assert re.search(r"health: 2 consecutive failed checks, rolls back at 2", result.stdout), result.stdout[
        -3000:
    ]


def test_readme_documents_what_a_user_meets() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\(([^)]+)\)", readme):
        if "://" not in link:
            target = (ROOT / link.split("#")[0]).resolve()
            assert target.is_relative_to(ROOT) and target.exists(), link
    assert "`subtle-latency`" in readme
    assert re.search(r"`watch` adds 6: a trigger fired or a new alert", readme), "watch's exit 6"


async def test_the_verification_view_has_one_error_rate_limit(tmp_path: Path) -> None:
    from tui.screens.verification import VerificationScreen
    from tui.screenshots import verifying
    from tui.widgets.chart import BrailleChart

    until = verifying(3)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, VerificationScreen)
        screen.refresh_panels(frozenset({"verify"}))
        await pilot.pause()
        sample = app.model.verify_samples[-1]
        expected = min(sample.baseline_error_rate + 0.25, 1.0)  # the plan: +0.25 pp, SLO 1 %
        table = "\n".join(screen_lines(app))
        assert f"{expected:.2f} % (baseline +0.25 pp)" in table or f"{expected:.2f} % (SLO)" in table, table
        chart = screen.query_one("#verify-err", BrailleChart)
        limit = next(s for s in chart._series if s.name == "limit")
        assert limit.points[-1][1] == pytest.approx(expected)
