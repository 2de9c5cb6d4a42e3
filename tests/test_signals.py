"""Signals (issue 11, item 4): SIGTERM, SIGHUP and SIGINT leave the rollout where it is, journal
why, release the lease and exit 128+N (resumable); a second Ctrl-C within 2 s exits at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from core.events import Event, TrafficChanged
from core.rollout.progress import RolloutStatus
from core.sim.kube import SimKubeServer
from core.sim.kube.resources import BY_PATH
from tests.engine_helpers import sim_session
from tui.headless import SIGNAL_EXIT_CODES, SignalStop, run_headless

ROOT = Path(__file__).resolve().parent.parent


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
async def test_a_signal_leaves_the_canary_where_it_is_and_releases_the_lease(
    tmp_path: Path, name: str
) -> None:
    session = await sim_session(tmp_path, backend="kube")
    server = next(c for c in session.world.closers if isinstance(c, SimKubeServer))
    target = session.plan.targets.production
    sent = False

    def at_25(event: Event) -> None:
        nonlocal sent
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25 and not sent:
            sent = True
            os.kill(os.getpid(), getattr(signal, name))

    code = await run_headless(session, at_25)
    assert code == SIGNAL_EXIT_CODES[name]
    records = _records(session.journal_path)
    last = records[-1]
    assert last["type"] == "run_interrupted" and last["signal"] == name and last["weight"] == 25
    assert not any(r["type"] in {"finished", "rollback_triggered"} for r in records)
    # the rollout is left where it stood: 25 %, unfinished, resumable
    state = RolloutStatus.from_state(await session.world.production.read_state())
    assert state is not None and not state.finished
    assert (state.phase, state.step_index, state.weight) == ("canary", 1, 25)
    assert (await session.world.production.describe()).weight == 25  # the cluster, as it was left
    lease = f"deploydeck-{target.deployment}"
    assert session.lease is not None
    await session.lease.release()  # what Session.close does first
    held = server.store.get(BY_PATH[("coordination.k8s.io", "v1", "leases")], target.namespace, lease)
    assert not (held.get("spec") or {}).get("holderIdentity")
    await session.close()


def test_a_second_ctrl_c_within_two_seconds_exits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class Rollout:
        calls: list[tuple[str, int]] = []

        def interrupt(self, name: str, code: int) -> bool:
            self.calls.append((name, code))
            return True

    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    clock = iter([100.0, 101.5, 200.0, 203.0])
    err = open(os.devnull, "w")
    stop = SignalStop(Rollout(), err=err, now=lambda: next(clock))
    stop.received("SIGINT")  # first: orderly stop
    assert stop.exit_code == 130 and exits == []
    stop.received("SIGINT")  # 1.5 s later: at once
    assert exits == [130]
    other = SignalStop(Rollout(), err=err, now=lambda: next(clock))
    other.received("SIGINT")
    other.received("SIGINT")  # 3 s later: not a double press
    assert exits == [130]
    err.close()


async def _run_cli_until(tmp_path: Path, name: str) -> tuple[int, str, list[dict[str, Any]]]:
    journal = tmp_path / "j.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui.cli",
        "demo",
        "--headless",
        "--json",
        "--backend",
        "kube",
        "--speed",
        "300",
        "--journal",
        str(journal),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # the demo's lease runs on its scaled clock: at 300x a 30 s lease leaves a renewal 67 ms,
        # too little on a loaded machine; 600 s simulated is 2 s real
        env={**os.environ, "PYTHONPATH": str(ROOT), "DEPLOYDECK_LEASE_TTL": "600"},
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    _, err = await proc.communicate()
                    raise AssertionError(f"the run ended before 5 %: {err.decode()[-2000:]}")
                event = json.loads(line)
                if event["type"] == "traffic_changed" and event.get("applied") and event["effective"] == 5:
                    proc.send_signal(getattr(signal, name))
                    break
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode(), _records(journal)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
async def test_the_cli_stops_on_a_signal_with_its_exit_code_and_a_journal_line(
    tmp_path: Path, name: str
) -> None:
    code, err, records = await _run_cli_until(tmp_path, name)
    assert code == SIGNAL_EXIT_CODES[name], err
    assert "releasing the lease" in err and "resume" in err
    interrupted = [r for r in records if r["type"] == "run_interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["signal"] == name
    assert interrupted[0]["exit_code"] == code and interrupted[0]["weight"] >= 5
    assert not any(r["type"] in {"finished", "rollback_triggered"} for r in records)
