"""The 24-hour hand-off: triggers stay armed after completion; notify by default, roll back on request."""

from __future__ import annotations

from pathlib import Path

from core.adapters.journal import read_journal
from core.history import group_by_deploy
from core.sim.world import SimNotifier
from core.watch import Watch, last_completed, reference_baseline
from tests.engine_helpers import sim_session


async def _reference(tmp_path: Path) -> object:
    session = await sim_session(tmp_path, "healthy")
    await session.rollout.run()
    deploy = last_completed(group_by_deploy(read_journal(tmp_path / "deployments.jsonl").events), "checkout")
    assert deploy is not None
    reference = reference_baseline(deploy)
    assert reference is not None and 0.002 < reference.error_rate < 0.006  # type: ignore[operator]
    return reference


async def _watch(tmp_path: Path, scenario: str, rollback: bool) -> tuple[object, list[str], object]:
    reference = await _reference(tmp_path)
    session = await sim_session(tmp_path, scenario)
    await session.world.production.deploy(session.plan.version.image, "stable")
    lines: list[str] = []
    report = await Watch(
        session.plan,
        session.world,
        duration_s=3600,
        reference=reference,
        rollback=rollback,
        say=lines.append,  # type: ignore[arg-type]
    ).run()
    return report, lines, session


async def test_quiet_watch_reports_no_trigger(tmp_path: Path) -> None:
    report, lines, session = await _watch(tmp_path, "healthy", rollback=False)
    assert report.outcome == "quiet" and report.intervals == 120 and not report.fired  # type: ignore[attr-defined]
    assert session.world.notifier.sent == []  # type: ignore[attr-defined]
    assert lines[-1].startswith("watch over: 120 intervals")


async def test_regression_after_completion_notifies_but_does_not_roll_back(tmp_path: Path) -> None:
    report, lines, session = await _watch(tmp_path, "late-regression", rollback=False)
    assert report.outcome == "notified" and report.fired  # type: ignore[attr-defined]
    notifier = session.world.notifier
    assert isinstance(notifier, SimNotifier) and "rollback trigger fired" in notifier.sent[0].title
    assert session.world.production.inner.stable_image.endswith(":1.5.0")  # type: ignore[attr-defined]
    assert any(line.startswith("TRIGGER: canary") for line in lines)


async def test_regression_with_rollback_rolls_back(tmp_path: Path) -> None:
    report, _, session = await _watch(tmp_path, "late-regression", rollback=True)
    assert report.outcome == "rolled_back"  # type: ignore[attr-defined]
    assert session.world.production.inner.stable_image.endswith(":1.4.2")  # type: ignore[attr-defined]
