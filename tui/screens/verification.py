"""Post-deploy verification (POL-008): the observation window after 100 %, against the SLO."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.domain import GateGroup, Phase
from core.events import AnalysisSample
from core.plan import SloSpec
from tui.widgets import words
from tui.widgets.chart import BrailleChart, Series
from tui.widgets.glyphs import (
    BASELINE_STYLE,
    BASELINE_UNDER,
    CANARY_STYLE,
    GATE_GLYPH,
    GATE_LABEL,
    LIMIT_STYLE,
)
from tui.widgets.header import HeaderBar
from tui.widgets.ladder import bar
from tui.widgets.model import DeckModel, countdown


def _check(value: float | None, limit: float | None) -> Text:
    if value is None:
        return Text("▲ no data", style="bold yellow")
    if limit is None:
        return Text("– no SLO", style="dim")
    return Text("✔ within", style="green") if value <= limit else Text("✘ over", style="bold red")


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    return f"{value:.2f} {unit}" if unit == "%" else f"{value:.0f} {unit}"


def error_limit(
    sample: AnalysisSample | None, slo: SloSpec, delta_pp: float | None
) -> tuple[float | None, str]:
    """The one error-rate limit verification judges by: the lower of the pre-deploy baseline plus
    the allowed rise (verification.max_error_delta_pp) and the SLO; and where it comes from."""
    candidates: list[tuple[float, str]] = []
    if delta_pp is not None and sample is not None and sample.baseline_error_rate is not None:
        candidates.append((sample.baseline_error_rate + delta_pp, f"baseline +{delta_pp:.2f} pp"))
    if slo.max_error_rate_pct is not None:
        candidates.append((slo.max_error_rate_pct, "SLO"))
    if not candidates:
        return None, ""
    return min(candidates)


def verification_text(
    model: DeckModel, slo: SloSpec | None, now: datetime, error_delta_pp: float | None = None
) -> Table | Group:
    slo = slo or SloSpec()
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("check", no_wrap=True)
    table.add_column("now", no_wrap=True, justify="right")
    table.add_column("SLO / limit", no_wrap=True, justify="right")
    table.add_column("", no_wrap=True)
    sample = model.verify_samples[-1] if model.verify_samples else None
    err = sample.canary_error_rate if sample else None
    limit, source = error_limit(sample, slo, error_delta_pp)
    table.add_row(
        "error rate",
        _num(err, "%"),
        f"{_num(limit, '%')} ({source})" if limit is not None else "—",
        _check(err, limit),
    )
    for label, attr, limit in (
        ("latency p50", "canary_p50_ms", slo.p50_ms),
        ("latency p95", "canary_p95_ms", slo.p95_ms),
        ("latency p99", "canary_p99_ms", slo.p99_ms),
    ):
        value = getattr(sample, attr) if sample else None
        table.add_row(
            label, _num(value, "ms"), _num(limit, "ms") if limit is not None else "—", _check(value, limit)
        )
    post = [v for v in model.gates.values() if v.result.group == GateGroup.POST_DEPLOY]
    if not post:
        return table
    # the checks get a table of their own: long evidence must not squeeze the numbers above
    checks = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    checks.add_column("", no_wrap=True)
    checks.add_column("post-deploy check", no_wrap=True, max_width=34)
    checks.add_column("policy", no_wrap=True)
    checks.add_column("evidence", ratio=1, overflow="fold")
    for view in post:
        glyph, style = GATE_GLYPH[view.result.status]
        checks.add_row(
            Text(f"{glyph} {GATE_LABEL[view.result.status]}", style=style),
            Text(view.result.title, overflow="ellipsis", no_wrap=True),
            Text(view.result.policy, style="cyan"),
            Text(view.result.evidence or "", style="dim"),
        )
    return Group(table, Text(""), checks)


def window_text(model: DeckModel, now: datetime) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    window = model.window
    if model.phase == Phase.VERIFY and window is not None:
        elapsed = min(max(window.duration_s - (window.ends_at - now).total_seconds(), 0.0), window.duration_s)
        text.append("observation window ", style="bold")
        text.append(f"{countdown(elapsed)} / {countdown(window.duration_s)}  ")
        text.append_text(bar(elapsed / window.duration_s if window.duration_s else 1.0, 24, "cyan"))
        text.append(f"  ◔ {countdown(window.duration_s - elapsed)} left", style="bold")
    elif model.verify_samples:
        state = words.outcome(model.finished.outcome) if model.finished else words.phase(model.phase)
        text.append(f"verification over · {state}", style="bold")
    else:
        text.append("verification starts once the canary holds 100 % of traffic", style="dim italic")
    if model.decision is not None:
        text.append(f"\n▲ decision needed: {model.decision.question} (d to answer)", style="bold red")
    return text


class VerificationScreen(Screen[None]):
    live_commands = True
    BINDINGS = [Binding("escape,v", "app.pop_screen", "Back", id="verify.back")]

    def __init__(
        self,
        model: DeckModel,
        header: HeaderBar,
        now: Callable[[], datetime],
        slo: SloSpec | None,
        error_delta_pp: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self._header = header
        self.now = now
        self.slo = slo
        self.error_delta_pp = error_delta_pp

    def compose(self) -> ComposeResult:
        yield self._header
        with Vertical(id="verify-body"):
            window = Static(id="verify-window")
            window.border_title = "Post-deploy verification · POL-008"
            yield window
            yield Static(id="verify-table")
            with Horizontal(id="verify-charts"):
                err = BrailleChart(unit="%", empty_text="no samples in verification yet", id="verify-err")
                err.border_title = "error rate · limit: lower of baseline + allowed rise and SLO"
                yield err
                p99 = BrailleChart(unit="ms", empty_text="no samples in verification yet", id="verify-p99")
                p99.border_title = "p99 latency"
                yield p99
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_panels(frozenset({"verify", "header"}))

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        if not self.is_mounted or not self.is_attached:
            return  # not composed yet, or being torn down
        if "header" in changed:
            self._header.update_from_model()
        if not changed & {"verify", "gates", "ladder"}:
            return
        now = self.now()
        self.query_one("#verify-window", Static).update(window_text(self.model, now))
        self.query_one("#verify-table", Static).update(
            verification_text(self.model, self.slo, now, self.error_delta_pp)
        )
        samples = list(self.model.verify_samples)
        t0 = self.model.seconds(samples[0].ts) if samples else 0.0
        pts = [(self.model.seconds(s.ts) - t0, s) for s in samples]
        # the same limit as the table's and the verification gate's, not the canary trigger's
        slo = self.slo or SloSpec()
        err_limit = [(t, error_limit(s, slo, self.error_delta_pp)[0]) for t, s in pts]
        p99_limit = [
            (t, s.baseline_p99_ms * _limit(s, "p99_latency", 1.5))
            if s.baseline_p99_ms is not None
            else (t, None)
            for t, s in pts
        ]
        self.query_one("#verify-err", BrailleChart).set_series(
            [
                Series("limit", err_limit, LIMIT_STYLE, dashed=True),
                Series(
                    "baseline",
                    [(t, s.baseline_error_rate) for t, s in pts],
                    BASELINE_STYLE,
                    pattern="dotted",
                    under=BASELINE_UNDER,
                ),
                Series("new version", [(t, s.canary_error_rate) for t, s in pts], CANARY_STYLE),
            ]
        )
        self.query_one("#verify-p99", BrailleChart).set_series(
            [
                Series("limit", p99_limit, LIMIT_STYLE, dashed=True),
                Series(
                    "baseline",
                    [(t, s.baseline_p99_ms) for t, s in pts],
                    BASELINE_STYLE,
                    pattern="dotted",
                    under=BASELINE_UNDER,
                ),
                Series("new version", [(t, s.canary_p99_ms) for t, s in pts], CANARY_STYLE),
            ]
        )

    def tick(self) -> None:
        self.refresh_panels(frozenset({"header", "verify"}))


def _limit(sample: AnalysisSample, rule: str, default: float) -> float:
    for reading in sample.readings:
        if reading.rule == rule:
            return float(reading.limit)
    return default
