"""A small braille line chart: several series on ONE shared scale, plus threshold lines.

Canary and baseline have to be read against each other and against the rollback
limit, so they share the y axis; Textual's Sparkline scales each series alone.
Rendering is a pure function of (series, size), cached until either changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

BRAILLE_BASE = 0x2800
# dot bit for (x % 2, y % 4) inside one braille cell
_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))

Point = tuple[float, float | None]


#: line patterns, so series differ in shape as well as colour (light theme, colour-blind readers):
#: on/off runs in braille pixels, and the legend's sample of each
PATTERNS: dict[str, tuple[int, int, str]] = {
    "solid": (1, 0, "━━"),
    "dotted": (1, 1, "··"),
    "dashed": (3, 3, "╌╌"),
}


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    style: str
    dashed: bool = False
    legend: bool = True
    pattern: str = ""  # solid | dotted | dashed; default: dashed if `dashed`, else solid
    #: where another series' dots share a cell with this one's, the cell takes this background,
    #: so a line drawn under another stays visible (the baseline under the canary)
    under: str = ""

    @property
    def shape(self) -> str:
        return self.pattern or ("dashed" if self.dashed else "solid")


@dataclass(frozen=True)
class Marker:
    """A moment on the time axis: a thin column and a glyph on the top row (a rule that fired)."""

    t: float
    glyph: str
    style: str
    label: str = ""


def nice_ceiling(value: float) -> float:
    """Round up to 1, 2, 2.5 or 5 × 10^n so axis labels stay short."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    base = 10**exp
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * base + 1e-12:
            return m * base
    return 10 * base


def fmt_axis(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_elapsed(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m" if s == 0 else f"{m}m{s:02d}"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}"


def render_chart(
    series: Sequence[Series],
    width: int,
    height: int,
    *,
    unit: str = "",
    y_floor: float = 0.0,
    y_ceiling: float | None = None,
    x_span: tuple[float, float] | None = None,
    empty_text: str = "no data yet",
    markers: Sequence[Marker] = (),
) -> Text:
    """Render the chart into a block of `height` lines, each `width` cells wide."""
    out = Text(no_wrap=True, overflow="crop")
    if width < 12 or height < 3:
        return out
    legend = Text(no_wrap=True, overflow="crop")
    for s in series:
        if s.legend:
            if legend:
                legend.append("  ")
            legend.append(PATTERNS[s.shape][2] + " ", style=s.style)
            legend.append(s.name, style="dim" if s.dashed else "")
    for m in markers:
        if m.label:
            legend.append(f"  {m.glyph} {m.label}", style=m.style)
    values = [v for s in series for _, v in s.points if v is not None and math.isfinite(v)]
    xs = [t for s in series for t, v in s.points if v is not None]
    plot_rows = height - 2  # legend on top, time axis below
    if not values or not xs:
        out.append_text(legend)
        for row in range(height - 1):
            out.append("\n")
            if row == plot_rows // 2:
                out.append(empty_text.center(width)[:width], style="dim italic")
        return out
    top = y_ceiling if y_ceiling is not None else nice_ceiling(max(max(values), y_floor + 1e-9) * 1.1)
    bottom = y_floor
    labels = [fmt_axis(top), fmt_axis((top + bottom) / 2), fmt_axis(bottom)]
    label_w = max(len(x) for x in labels) + len(unit)
    plot_cols = width - label_w - 1
    if plot_cols < 4:
        return out
    x0, x1 = x_span if x_span else (min(xs), max(xs))
    if x1 - x0 < 1e-9:
        x1 = x0 + 1.0
    px_w, px_h = plot_cols * 2, plot_rows * 4
    bits = [[0] * plot_cols for _ in range(plot_rows)]
    owner: list[list[str | None]] = [[None] * plot_cols for _ in range(plot_rows)]
    below: list[list[str | None]] = [[None] * plot_cols for _ in range(plot_rows)]

    def to_px(t: float, v: float) -> tuple[int, int]:
        x = round((t - x0) / (x1 - x0) * (px_w - 1))
        frac = (min(max(v, bottom), top) - bottom) / (top - bottom)
        y = round((1 - frac) * (px_h - 1))
        return min(max(x, 0), px_w - 1), min(max(y, 0), px_h - 1)

    for s in series:
        on, off, _ = PATTERNS[s.shape]
        prev: tuple[int, int] | None = None
        for t, v in s.points:
            if v is None or not math.isfinite(v) or t < x0 or t > x1:
                prev = None  # a gap is drawn as a gap: no data is not a value
                continue
            cur = to_px(t, v)
            for x, y in _line(prev or cur, cur):
                if off and x % (on + off) >= on:
                    continue
                cx, cy = x // 2, y // 4
                if owner[cy][cx] is not None and owner[cy][cx] != s.style:
                    # drawn over another line: keep that one visible as this cell's background
                    below[cy][cx] = below[cy][cx] or _under(series, owner[cy][cx])
                bits[cy][cx] |= _DOT[x % 2][y % 4]
                owner[cy][cx] = s.style
            prev = cur
    marks: dict[int, Marker] = {}
    for m in markers:
        if x0 <= m.t <= x1:
            marks[to_px(m.t, bottom)[0] // 2] = m

    out.append(" " * (label_w + 1))
    out.append_text(legend)
    for row in range(plot_rows):
        out.append("\n")
        if row == 0:
            label = labels[0] + unit
        elif row == plot_rows // 2 and plot_rows > 2:
            label = labels[1] + unit
        elif row == plot_rows - 1:
            label = labels[2] + unit
        else:
            label = ""
        out.append(label.rjust(label_w) + "┤", style="dim")
        run_style: str | None = None
        run = []
        for col in range(plot_cols):
            b = bits[row][col]
            style = owner[row][col] if b else None
            if style and below[row][col]:
                style = f"{style} on {below[row][col]}"
            char = chr(BRAILLE_BASE + b) if b else " "
            mark = marks.get(col)
            if mark is not None and (row == 0 or not b):
                char, style = (mark.glyph if row == 0 else "┊"), mark.style
            if style != run_style and run:
                out.append("".join(run), style=run_style or "")
                run = []
            run_style = style
            run.append(char)
        if run:
            out.append("".join(run), style=run_style or "")
    out.append("\n")
    left, mid, right = fmt_elapsed(0), "+" + fmt_elapsed((x1 - x0) / 2), "+" + fmt_elapsed(x1 - x0)
    axis = [" "] * plot_cols
    for pos, text in ((0, left), ((plot_cols - len(mid)) // 2, mid), (plot_cols - len(right), right)):
        for i, ch in enumerate(text):
            if 0 <= pos + i < plot_cols:
                axis[pos + i] = ch
    out.append(" " * label_w + "└", style="dim")
    out.append("".join(axis), style="dim")
    return out


def _under(series: Sequence[Series], style: str | None) -> str | None:
    for s in series:
        if s.style == style:
            return s.under or None
    return None


def _line(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Bresenham: every pixel between two points, so steep moves stay connected."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    pts = []
    while True:
        pts.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return pts
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


class BrailleChart(Widget):
    """A titled line chart; call :meth:`set_series` with new data, it redraws once per refresh."""

    DEFAULT_CSS = """
    BrailleChart { height: 8; min-height: 4; }
    """

    def __init__(
        self,
        *,
        unit: str = "",
        y_ceiling: float | None = None,
        empty_text: str = "no data yet",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.unit = unit
        self.y_ceiling = y_ceiling
        self.empty_text = empty_text
        self._series: list[Series] = []
        self._markers: list[Marker] = []
        self._x_span: tuple[float, float] | None = None
        self._cache_key: tuple[int, int, int] | None = None
        self._cache: Text | None = None
        self._version = 0

    def set_series(
        self,
        series: list[Series],
        x_span: tuple[float, float] | None = None,
        markers: list[Marker] | None = None,
    ) -> None:
        self._series = series
        self._markers = markers or []
        self._x_span = x_span
        self._version += 1
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        key = (size.width, size.height, self._version)
        if key != self._cache_key or self._cache is None:
            self._cache = render_chart(
                self._series,
                size.width,
                size.height,
                unit=self.unit,
                y_ceiling=self.y_ceiling,
                x_span=self._x_span,
                empty_text=self.empty_text,
                markers=self._markers,
            )
            self._cache_key = key
        return self._cache
