"""Issue 15: `r` → Cluster.rollback p99. No repaint that relayouts the screen may stand between the
key and the cluster call: the panels wait until the engine has called Cluster.rollback."""

from __future__ import annotations

from pathlib import Path

from tui.screenshots import canary_at, demo_app, drive, rolled_back
from tui.widgets.header import HeaderBar
from tui.widgets.why import WhyPanel


async def test_panels_repaint_only_after_the_engine_called_the_cluster(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=canary_at(25, samples=1)) as (
        app,
        pilot,
    ):
        await drive(app, pilot, canary_at(25, samples=1))
        why = app.screen.query_one(WhyPanel)
        cluster = app.session.world.production
        seen: list[tuple[bool, str]] = []
        original = cluster.rollback

        async def observed():  # type: ignore[no-untyped-def]
            header = str(app.screen.query_one(HeaderBar).render())
            seen.append((why.has_class("-shown"), header))
            return await original()

        cluster.rollback = observed  # type: ignore[method-assign]
        assert not app.rollout.rollback_started.is_set()
        await pilot.press("r")
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, rolled_back, operate=False)
        assert app.rollout.rollback_started.is_set()
        # at the call: the header already said so (no relayout), the why panel had not been laid out
        assert seen and seen[0][0] is False, seen
        assert "rolling back" in seen[0][1].lower()
        # and the hold ended by itself: the panel is there now without any further event
        await pilot.pause(0.1)
        assert why.has_class("-shown")
