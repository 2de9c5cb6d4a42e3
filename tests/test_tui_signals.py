"""The dashboard on SIGTERM or a closed terminal (SIGHUP): the rollout stops where it stands, as the
headless mode's does (tests/test_signals.py), journaled and resumable, exit 128+N, nothing left behind.
Before, SIGTERM killed the dashboard on the spot: no journal line, the lease held until it expired."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.pty_helpers import Terminal, alive, descendants
from tests.test_readme_examples import ROOT, _env, kill_all


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_dashboards_rollout_where_it_stands(tmp_path: Path, name: str) -> None:
    journal = tmp_path / "j.jsonl"
    argv = [sys.executable, "-m", "tui.cli", "demo", "--speed", "300", "--journal", str(journal)]
    # the demo's lease runs on its scaled clock: 600 s simulated is 2 s real (see test_signals)
    term = Terminal(argv, cwd=ROOT, env={**_env(tmp_path), "DEPLOYDECK_LEASE_TTL": "600"})
    children: list[int] = []
    try:
        term.wait_for(lambda: "Rollback" in term.text, 60, "the dashboard")
        term.wait_for(
            lambda: any(r["type"] == "gate_evaluated" for r in _lines(journal)), 60, "the gates to run"
        )
        children = descendants(term.proc.pid)
        if name == "SIGHUP":
            term.hang_up()
        else:
            term.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while term.proc.poll() is None and time.monotonic() < deadline:
            if name == "SIGTERM":
                term.pump(0.1)  # keep reading the terminal, or a full pty stalls the exit
            else:
                time.sleep(0.1)
        assert term.proc.poll() == {"SIGTERM": 143, "SIGHUP": 129}[name], term.text[-800:]
        records = _lines(journal)
        stopped = [r for r in records if r["type"] == "run_interrupted"]
        assert len(stopped) == 1 and stopped[0]["signal"] == name, [r["type"] for r in records][-8:]
        assert not any(r["type"] in {"finished", "rollback_triggered"} for r in records)
        assert not [pid for pid in children if alive(pid)]
        files = [p for p in (tmp_path / "tmp").rglob("*") if not p.is_dir() or any(p.iterdir())]
        assert not files, f"left behind: {files}"
    finally:
        term.close()
        kill_all(children)
