"""The three live charts: traffic weight, error rate and p99, on one shared time axis."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container

from tui.widgets.chart import BrailleChart, Point, Series
from tui.widgets.glyphs import BASELINE_STYLE, CANARY_STYLE, LIMIT_STYLE, STABLE_STYLE
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
    span = (t0, max(max(ends, default=t0), t0 + 60.0))
    if traffic and traffic[0][0] < t0:
        traffic = [(t0, traffic[0][1])] + [(t, w) for t, w in traffic if t >= t0]
    weight = [
        Series("canary %", [(t, float(w)) for t, w in traffic], CANARY_STYLE),
        Series("stable %", [(t, float(100 - w)) for t, w in traffic], STABLE_STYLE),
    ]
    err = [
        Series("limit", _pts(errors, "limit"), LIMIT_STYLE, dashed=True),
        Series("baseline", _pts(errors, "baseline"), BASELINE_STYLE),
        Series("canary", _pts(errors, "canary"), CANARY_STYLE),
    ]
    p99 = [
        Series("limit", _pts(latency, "limit"), LIMIT_STYLE, dashed=True),
        Series("baseline", _pts(latency, "baseline"), BASELINE_STYLE),
        Series("canary", _pts(latency, "canary"), CANARY_STYLE),
    ]
    return weight, err, p99, span


class ChartsPanel(Container):
    """Redraws at most when asked; the screen asks at 1 Hz, not per event."""

    def __init__(self, model: DeckModel, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._seen: tuple[int, int, int, float] | None = None

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
        seen = (len(m.traffic), len(m.errors), len(m.latency), m.errors[-1].t if m.errors else 0.0)
        if seen == self._seen:
            return
        self._seen = seen
        weight, err, p99, span = chart_series(m)
        self.query_one("#chart-traffic", BrailleChart).set_series(weight, span)
        self.query_one("#chart-errors", BrailleChart).set_series(err, span)
        self.query_one("#chart-p99", BrailleChart).set_series(p99, span)
