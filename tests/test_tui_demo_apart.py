"""The demo stays a demo (issue 15, section 2): simulated runs are kept out of real history and
DORA, their durations say they are simulated, and the processes a demo starts end with it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.pty_helpers import Terminal, alive, command_name, descendants
from tests.test_cli import ROOT, deploydeck
from tests.test_readme_examples import _env, kill_all


def test_a_demo_is_journaled_apart_from_real_deploys(tmp_path: Path) -> None:
    ran = deploydeck("demo", "--headless", "--scenario", "bad-canary", tmp_path=tmp_path)
    assert ran.returncode == 3
    state = tmp_path / "state"
    assert not (state / "deployments.jsonl").exists()
    assert not (state / "incidents").exists()
    assert (state / "simulated" / "deployments.jsonl").exists()
    assert len(list((state / "simulated" / "incidents").glob("incident-*.md"))) == 1
    dora = deploydeck("log", "dora", tmp_path=tmp_path)
    assert dora.returncode == 2 and "no such journal" in dora.stderr
    sim = deploydeck("log", "--sim", tmp_path=tmp_path)
    row = next(line for line in sim.stdout.splitlines() if "checkout" in line)
    assert "rolled_back" in row.replace(" ", "_") or "rolled back" in row
    assert "(simulated)" in row


def test_simulated_runs_in_a_shared_log_count_for_nothing(tmp_path: Path) -> None:
    """A log written before the split (or with --journal) mixes demos in: they are marked by their
    scenario and left out of `log`, `log dora` and `log show` unless --sim asks for them."""
    journal = tmp_path / "state" / "deployments.jsonl"
    for scenario in ("bad-canary", "healthy"):
        ran = deploydeck(
            "demo", "--headless", "--scenario", scenario, "--journal", str(journal), tmp_path=tmp_path
        )
        assert ran.returncode in (0, 3)
    listed = deploydeck("log", tmp_path=tmp_path)
    assert "(2 simulated runs in this log are not listed: --sim lists them)" in listed.stdout
    assert "checkout" not in listed.stdout
    dora = deploydeck("log", "dora", "--json", tmp_path=tmp_path)
    assert json.loads(dora.stdout) == {}
    dora_sim = json.loads(
        deploydeck("log", "--sim", "dora", "--json", "--journal", str(journal), tmp_path=tmp_path).stdout
    )
    assert dora_sim["checkout"]["rolled_back"] == 1 and dora_sim["checkout"]["completed"] == 1
    show = deploydeck("log", "show", tmp_path=tmp_path)
    assert show.returncode == 2 and "no deploys recorded yet" in show.stderr
    show_sim = deploydeck("log", "--sim", "show", "--journal", str(journal), tmp_path=tmp_path)
    assert "finished: completed after" in show_sim.stdout and "(simulated time)" in show_sim.stdout


@pytest.mark.real
def test_prometheus_dies_with_a_killed_demo(tmp_path: Path) -> None:
    """SIGKILL leaves no `finally` to run: the kernel ends the child (PR_SET_PDEATHSIG)."""
    term = Terminal(
        [sys.executable, "-m", "tui.cli", "demo", "--prometheus", "--scenario", "bad-canary"],
        cwd=ROOT,
        env=_env(tmp_path),
    )
    children: list[int] = []
    try:
        term.wait_for(
            lambda: any(command_name(p) == "prometheus" for p in descendants(term.proc.pid)),
            60,
            "Prometheus to start",
        )
        children = [p for p in descendants(term.proc.pid) if command_name(p) == "prometheus"]
        os.kill(term.proc.pid, signal.SIGKILL)
        term.proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in children if alive(p)], "Prometheus outlived the demo that started it"
    finally:
        term.close()
        kill_all(children)


def test_the_next_demo_removes_a_killed_demos_prometheus_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from core.sim.prometheus_demo import _sweep_orphaned_workdirs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "deploydeck-prom-999999999-abc"
    mine = tmp_path / f"deploydeck-prom-{os.getpid()}-def"
    for folder in (dead, mine):
        (folder / "data").mkdir(parents=True)
    _sweep_orphaned_workdirs()
    assert not dead.exists() and mine.exists()
