"""The three live charts: traffic weight, error rate and p99, on one shared time axis."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container

from tui.widgets import words
from tui.widgets.chart import BrailleChart, Marker, Point, Series
from tui.widgets.glyphs import BASELINE_STYLE, BASELINE_UNDER, CANARY_STYLE, LIMIT_STYLE, STABLE_STYLE
from tui.widgets.model import ChartPoint, DeckModel


def _pts(points: list[ChartPoint], attr: str) -> list[Point]:
    return [(p.t, getattr(p, attr)) for p in points]


def chart_series(model: DeckModel) -> tuple[list[Series], list[Series], list[Series], tuple[float, float]]:
    traffic = list(model.traffic)
    errors = list(model.errors)
    latency = list(model.latency)
    ends = [t for t, _ in traffic[-1:]] + [p.t for p in errors[-1:]] + [p.t for p in latency[-1:]]
    # the x axis starts where the canary does: gates and staging would squeeze it to a sliver
    shifted = [t for t, w in traffic if w > 0]
    starts = shifted[:1] + [p.t for p in errors[:1]] + [p.t for p in latency[:1]]
    t0 = min(starts, default=0.0)
    end = max(max(ends, default=t0), t0 + 60.0)
    # a margin on the right: the newest samples (the spike that fired) are never cut by the edge
    span = (t0, end + (end - t0) * 0.06)
    if traffic and traffic[0][0] < t0:
        traffic = [(t0, traffic[0][1])] + [(t, w) for t, w in traffic if t >= t0]
    weight = [
        Series("canary %", [(t, float(w)) for t, w in traffic], CANARY_STYLE),
        Series("stable %", [(t, float(100 - w)) for t, w in traffic], STABLE_STYLE),
    ]
    err = compared(errors)
    p99 = compared(latency)
    return weight, err, p99, span


def compared(points: list[ChartPoint]) -> list[Series]:
    """Limit, baseline and canary: each its own colour AND line (dashed, dotted, solid); where the
    canary covers the baseline the cell keeps the baseline's colour as its background."""
    return [
        Series("limit", _pts(points, "limit"), LIMIT_STYLE, dashed=True),
        Series("baseline", _pts(points, "baseline"), BASELINE_STYLE, pattern="dotted", under=BASELINE_UNDER),
        Series("canary", _pts(points, "canary"), CANARY_STYLE),
    ]


def fired_markers(model: DeckModel) -> tuple[list[Marker], list[Marker]]:
    """The moment a rule fired, on both comparison charts; named on the chart of its rule."""
    rb = model.rollback
    if rb is None or model.started is None:
        return [], []
    t = model.seconds(rb.ts)
    label = f"{words.rule(rb.rule)} fired {rb.ts.strftime('%H:%M:%S')}"
    glyph, style = "✘", "bold red"
    named = Marker(t, glyph, style, label)
    bare = Marker(t, glyph, style)
    if rb.rule == "p99_latency":
        return [bare], [named]
    return [named], [bare]


class ChartsPanel(Container):
    """Redraws at most when asked; the screen asks at 1 Hz, not per event."""

    def __init__(self, model: DeckModel, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._seen: tuple[int, int, int, float, bool] | None = None

    def compose(self) -> ComposeResult:
        traffic = BrailleChart(
            unit="%", y_ceiling=100.0, empty_text="no traffic shifted yet", id="chart-traffic"
        )
        traffic.border_title = "traffic weight"
        errors = BrailleChart(unit="%", empty_text="no error-rate samples yet", id="chart-errors")
        errors.border_title = "error rate · limit = baseline + Δ"
        p99 = BrailleChart(unit="ms", empty_text="no latency samples yet", id="chart-p99")
        p99.border_title = "p99 latency · limit = baseline × ratio"
        yield traffic
        yield errors
        yield p99

    def on_mount(self) -> None:
        self.update_from_model()

    def update_from_model(self) -> None:
        m = self.model
        seen = (
            len(m.traffic),
            len(m.errors),
            len(m.latency),
            m.errors[-1].t if m.errors else 0.0,
            m.rollback is not None,
        )
        if seen == self._seen:
            return
        self._seen = seen
        weight, err, p99, span = chart_series(m)
        err_marks, p99_marks = fired_markers(m)
        self.query_one("#chart-traffic", BrailleChart).set_series(weight, span)
        self.query_one("#chart-errors", BrailleChart).set_series(err, span, err_marks)
        self.query_one("#chart-p99", BrailleChart).set_series(p99, span, p99_marks)
