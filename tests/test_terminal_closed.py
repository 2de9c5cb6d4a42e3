"""Closing the terminal window ends deploydeck, every time, through its `finally` blocks.

A terminal emulator's window closing hangs up the session and takes the terminal away at the same
moment. Textual's writer thread then dies on its first failed write, and its queue (30 writes) filled
up with the shutdown's own terminal-restoring output: the next write blocked the event loop for
ever. 15 of 15 closes hung the dashboard this way (SIGHUP and the pty closed together); with a
0.3 s gap, as tests/pty_helpers.Terminal.hang_up leaves, 1 in 20 under load. The process, and a
real deploy's lease keeper with it, stayed alive with nobody to see it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pty_helpers import Terminal, alive, descendants

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DEPLOYDECK_STATE_DIR": str(tmp_path / "state"),
        "DEPLOYDECK_ACTOR": "ci-bot",
        "TMPDIR": str(tmp_path / "tmp"),
        "XDG_RUNTIME_DIR": str(tmp_path / "tmp"),
    }


@pytest.mark.parametrize("attempt", range(3))
def test_closing_the_window_of_a_live_dashboard_ends_it_with_129(attempt: int, tmp_path: Path) -> None:
    deploydeck = ROOT / ".venv" / "bin" / "deploydeck"
    if not deploydeck.exists():
        pytest.skip("no .venv/bin/deploydeck: `make test` makes it")
    term = Terminal(["bash", "-c", f"exec {deploydeck} demo"], cwd=ROOT, env=_env(tmp_path))
    children: list[int] = []
    try:
        term.wait_for(
            lambda: "scenario healthy" in term.text and "Rollback" in term.text, 60, "the dashboard"
        )
        children = descendants(term.proc.pid)
        term.close_window()
        # 129: it went through every `finally` (a kill by the signal itself would be -1)
        assert term.proc.wait(timeout=20) == 129
        assert not [pid for pid in children if alive(pid)]
        journal = next((tmp_path / "state").rglob("*.jsonl"), None)
        assert journal is not None and '"run_interrupted"' in journal.read_text(encoding="utf-8")
    finally:
        term.close()
