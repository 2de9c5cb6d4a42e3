"""Status glyphs and colours, shared by every panel so a status always looks the same."""

from __future__ import annotations

from core.domain import GateStatus, Outcome, Phase

GATE_GLYPH: dict[GateStatus, tuple[str, str]] = {
    GateStatus.PASS: ("✔", "bold green"),
    GateStatus.FAIL: ("✘", "bold red"),
    GateStatus.PENDING: ("○", "dim"),
    GateStatus.RUNNING: ("◌", "cyan"),
    GateStatus.ERROR: ("⚠", "bold red"),
    GateStatus.NEEDS_SIGN_OFF: ("✎", "bold yellow"),
    GateStatus.SIGNED: ("✔", "bold green"),
    GateStatus.OVERRIDDEN: ("⚑", "bold magenta"),
    GateStatus.SKIPPED: ("–", "dim"),
}

GATE_LABEL: dict[GateStatus, str] = {
    GateStatus.PASS: "pass",
    GateStatus.FAIL: "FAIL",
    GateStatus.PENDING: "pending",
    GateStatus.RUNNING: "running",
    GateStatus.ERROR: "ERROR",
    GateStatus.NEEDS_SIGN_OFF: "sign-off",
    GateStatus.SIGNED: "signed",
    GateStatus.OVERRIDDEN: "override",
    GateStatus.SKIPPED: "skipped",
}

PHASE_STYLE: dict[Phase, str] = {
    Phase.PENDING: "dim",
    Phase.PREFLIGHT: "bold cyan",
    Phase.MIGRATIONS: "bold cyan",
    Phase.STAGING: "bold cyan",
    Phase.CANARY: "bold yellow",
    Phase.VERIFY: "bold blue",
    Phase.COMPLETE: "bold green",
    Phase.PAUSED: "bold magenta",
    Phase.ROLLING_BACK: "bold white on red",
    Phase.ROLLED_BACK: "bold red",
    Phase.ABORTED: "bold red",
    Phase.BLOCKED: "bold red",
}

OUTCOME_STYLE: dict[Outcome, str] = {
    Outcome.COMPLETED: "bold green",
    Outcome.ROLLED_BACK: "bold red",
    Outcome.BLOCKED: "bold red",
    Outcome.ABORTED: "bold red",
    Outcome.ERROR: "bold red",
}

LEVEL_GLYPH: dict[str, tuple[str, str]] = {
    "debug": ("·", "dim"),
    "info": (" ", ""),
    "warning": ("▲", "bold yellow"),
    "error": ("✘", "bold red"),
}

CANARY_STYLE = "bold #ff8c1a"
BASELINE_STYLE = "#3fa7ff"
#: the cell background where the canary's line covers the baseline's (dark and light themes alike)
BASELINE_UNDER = "#1d4f7a"
LIMIT_STYLE = "red"
STABLE_STYLE = "#3fa7ff"
