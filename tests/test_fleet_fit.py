"""The fleet table's columns in a narrow terminal (tui/screens/fleet.py `fit`): cut visibly, in order."""

from __future__ import annotations

from rich.text import Text

from tui.screens.fleet import COLUMNS, NARROW, PAD, fit, short_holder


def test_the_holder_is_named_by_its_pod_or_its_identity() -> None:
    pod = "deploydeck-agent-5f7c9-x2k4p"
    assert short_holder(f"deploydeck-agent/{pod}@{pod}:1") == pod  # in a cluster: the default identity
    assert short_holder("agent-a@vm:12455") == "agent-a"  # --identity agent-a, on a laptop
    assert short_holder("plain") == "plain"


def _row(service: str, attached: str, holder: str) -> tuple[Text, ...]:
    return tuple(Text(c) for c in (service, "1.4.2 → 1.5.0", "canary", "25 %", "5m50s", attached, holder))


def test_wide_enough_nothing_is_cut() -> None:
    rows = [_row("checkout", "bob, carol", "deploydeck-agent-5f7c9-x2k4p")]
    labels, _, cells = fit(rows, 200)
    assert labels == COLUMNS and [c.plain for c in cells[0]] == [c.plain for c in rows[0]]


def test_narrow_the_holder_then_the_attached_then_the_service_give_way_visibly() -> None:
    rows = [_row("checkout-frontend-eu", "bob, carol, dave", "deploydeck-agent-5f7c9-x2k4p")]
    labels, widths, cells = fit(rows, 76)
    assert labels == NARROW and sum(widths) + PAD * len(widths) <= 76
    plain = [c.plain for c in cells[0]]
    assert plain[1] == "1.4.2→1.5.0" and plain[6] == "…x2k4p"  # the holder keeps its distinguishing end
    assert plain[5] == "bob +2"  # who else: the names that fit, and how many more
    assert plain[0].endswith("…") and plain[0].startswith("checkout")  # the service last, and marked
    assert all(c.cell_len <= w for c, w in zip(cells[0], widths, strict=True))
