"""Issue 15: at 120×40 the Gates panel keeps the current phase's open gates in view. Passed groups
fold to a line; when the current group alone is taller than the panel, its passed gates fold too."""

from __future__ import annotations

from core.domain import GateGroup, GateResult, GateStatus, Phase
from core.events import GateEvaluated
from tui.screenshots import demo_app, drive
from tui.widgets.gates import GateChecklist


def at_staging(model: object) -> bool:
    return model.phase == Phase.STAGING and "staging-new-errors" in model.gates  # type: ignore[attr-defined]


def visible_ids(gates: GateChecklist) -> list[str]:
    """Gate ids whose two lines are inside the panel's visible rows now."""
    top = round(gates.scroll_y)
    bottom = top + gates.scrollable_content_region.height
    ids, row = [], 0
    for i in range(gates.option_count):
        option = gates.get_option_at_index(i)
        rows = len(str(option.prompt).splitlines()) or 1
        if option.id and top <= row and row + rows <= bottom:
            ids.append(option.id)
        row += rows
    return ids


def _gate(gate_id: str, status: GateStatus, ts: object) -> GateEvaluated:
    result = GateResult(
        gate_id=gate_id,
        title=f"Staging check {gate_id}",
        policy="POL-007",
        group=GateGroup.STAGING,
        status=status,
        evidence="evidence line",
    )
    return GateEvaluated(ts=ts, phase=Phase.STAGING, gate=result)  # type: ignore[arg-type]


async def test_the_current_groups_open_gates_stay_in_view_at_120x40() -> None:
    async with demo_app("healthy", size=(120, 40), freeze_at=at_staging) as (app, pilot):
        await drive(app, pilot, at_staging)
        gates = app.screen.query_one(GateChecklist)
        # the demo's staging gates fit: nothing of the current group folds
        assert all(f"group:{GateGroup.STAGING.value}:passed" != o for o in visible_ids(gates))
        assert {"staging-deploy", "staging-new-errors"} <= set(visible_ids(gates))
        # a plan with many staging checks: twelve more passed, then two still open at the end
        ts = app.model.last_ts
        for i in range(12):
            app._on_event(_gate(f"extra-{i:02d}", GateStatus.PASS, ts))
        app._on_event(_gate("zz-sign-me", GateStatus.NEEDS_SIGN_OFF, ts))
        app._on_event(_gate("zz-running", GateStatus.RUNNING, ts))
        app.refresh_now()
        await pilot.pause()
        shown = visible_ids(gates)
        assert "zz-sign-me" in shown and "zz-running" in shown, shown
        assert f"group:{GateGroup.STAGING.value}:passed" in shown
        assert not any(s.startswith("extra-") for s in shown)  # folded into the one "passed" line
        folded = gates.get_option(f"group:{GateGroup.STAGING.value}:passed")
        assert "17 passed" in str(folded.prompt)
        # the gate waiting for a person is the one selected, so `s` signs it
        assert gates.selected_gate_id == "zz-sign-me"
