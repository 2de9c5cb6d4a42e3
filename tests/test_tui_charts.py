"""Charts (issue 15, section 3): canary, baseline and limit differ in colour AND shape, a line under
another stays visible, the moment a rule fired is marked, and the newest samples are never at the edge."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tui.screenshots import demo_app, drive, rolled_back
from tui.widgets.chart import BrailleChart, Marker, Series, render_chart
from tui.widgets.charts import chart_series, compared
from tui.widgets.glyphs import BASELINE_STYLE, BASELINE_UNDER, CANARY_STYLE
from tui.widgets.model import ChartPoint


def _cells(text: Text) -> list[tuple[str, str]]:
    """(character, style) for every cell of the rendered chart."""
    out = []
    for line in text.split("\n"):
        for span_text, style in _spans(line):
            out += [(ch, style) for ch in span_text]
    return out


def _spans(line: Text) -> list[tuple[str, str]]:
    plain = line.plain
    styles = [""] * len(plain)
    for span in line.spans:
        for i in range(span.start, min(span.end, len(plain))):
            styles[i] = str(span.style)
    return [(plain[i], styles[i]) for i in range(len(plain))]


def _flat(value: float) -> list[tuple[float, float | None]]:
    return [(float(t), value) for t in range(0, 300, 30)]


def test_the_three_lines_differ_in_shape_not_only_in_colour() -> None:
    points = [ChartPoint(float(t), 0.4, 0.4, 0.9) for t in range(0, 300, 30)]
    limit, baseline, canary = compared(points)
    assert {limit.shape, baseline.shape, canary.shape} == {"dashed", "dotted", "solid"}
    legend = render_chart([limit, baseline, canary], 60, 10).plain.splitlines()[0]
    assert "╌╌ limit" in legend and "·· baseline" in legend and "━━ canary" in legend
    # drawn alone, the same flat line leaves different dots: the shape is in the plot, not the legend
    alone = {
        s.name: {ch for ch, _ in _cells(render_chart([s], 60, 10)) if 0x2800 < ord(ch) <= 0x28FF}
        for s in (limit, baseline, canary)
    }
    assert alone["limit"] != alone["baseline"] != alone["canary"] != alone["limit"]


def test_the_baseline_under_the_canary_stays_visible() -> None:
    """Equal values put both lines in the same cells: the cells keep the baseline's colour behind."""
    points = [ChartPoint(float(t), 0.4, 0.4, 0.9) for t in range(0, 300, 30)]
    cells = _cells(render_chart(compared(points), 60, 10))
    shared = [style for ch, style in cells if CANARY_STYLE in style and BASELINE_UNDER in style]
    assert shared, "the covered baseline left no trace"
    assert all("on" in style for style in shared)
    assert BASELINE_STYLE not in CANARY_STYLE


def test_a_marker_shows_when_a_rule_fired() -> None:
    chart = render_chart(
        [Series("canary", _flat(1.0), CANARY_STYLE)],
        60,
        10,
        markers=[Marker(150.0, "✘", "bold red", "error rate fired 10:22:25")],
    )
    lines = chart.plain.splitlines()
    assert "✘ error rate fired 10:22:25" in lines[0]
    column = lines[1].index("✘")
    assert all(line[column] in "┊✘" or 0x2800 <= ord(line[column]) <= 0x28FF for line in lines[1:-1])


async def test_after_a_rollback_the_error_chart_marks_the_moment_and_keeps_the_spike_inside(
    tmp_path: Path,
) -> None:
    async with demo_app("bad-canary", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, rolled_back)
        app.refresh_now()
        await pilot.pause()
        chart = app.screen.query_one("#chart-errors", BrailleChart)
        text = chart.render().plain
        assert "✘ error rate fired" in text.splitlines()[0]
        _, _, _, (t0, t1) = chart_series(app.model)
        last = app.model.errors[-1].t
        assert last < t1 - (t1 - t0) * 0.04  # the spike that fired sits inside, not on the right edge
        plot = text.splitlines()[1:-1]
        spike_cols = [
            max((i for i, ch in enumerate(row) if 0x2800 < ord(ch) <= 0x28FF), default=-1) for row in plot
        ]
        assert max(spike_cols) < len(plot[0]) - 2
