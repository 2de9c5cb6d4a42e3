"""Start `deploydeck sim serve` and `deploydeck run` as real child processes (tests of issue 11)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.real_servers import ALERTMANAGER_BIN, PROMETHEUS_BIN, require_binary

REPO = Path(__file__).resolve().parent.parent
APPROVE = ["--approve", "rollback-plan", "--approve", "dashboards-reviewed"]
START_DEADLINE_S = 60.0


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "DEPLOYDECK_DEBUG": "1", **extra}


def deploydeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", *args]


class Serve:
    def __init__(self, proc: subprocess.Popen[str], directory: Path, lines: list[str]) -> None:
        self.proc, self.directory, self.lines = proc, directory, lines

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.directory / "sim-env.json").read_text()))

    def printed(self, key: str) -> str:
        return next(line.split(": ", 1)[1] for line in self.lines if line.startswith(f"{key}: "))

    def control(self, path: str) -> Any:
        return httpx.get(f"{self.state['control']}/control/{path}", timeout=5).json()


@contextmanager
def sim_serve(directory: Path, *args: str, real_servers: bool = True) -> Iterator[Serve]:
    """`deploydeck sim serve --dir DIR ARGS` until it has printed its plan; SIGTERM after.

    ``real_servers=False`` hides Prometheus and Alertmanager from it (an empty PATH).
    """
    extra: dict[str, str] = {}
    if real_servers:
        require_binary(PROMETHEUS_BIN)
        require_binary(ALERTMANAGER_BIN)
    else:
        extra["PATH"] = str(directory.parent)
    proc = subprocess.Popen(
        deploydeck("sim", "serve", "--dir", str(directory), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(**extra),
        cwd=REPO,
    )
    lines: list[str] = []
    deadline = time.monotonic() + START_DEADLINE_S
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"sim serve exited {proc.wait()}:\n" + "".join(lines))
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        else:
            raise AssertionError("sim serve did not start in time:\n" + "\n".join(lines))
        yield Serve(proc, directory, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_plan(plan: str, *extra: str, timeout_s: float = 150.0) -> tuple[int, list[dict[str, Any]], float]:
    started = time.monotonic()
    done = subprocess.run(
        deploydeck("run", plan, "--headless", "--json", *APPROVE, "--as", "alice", *extra),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=timeout_s,
    )
    wall = time.monotonic() - started
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events, f"no JSON lines; exit {done.returncode}; stderr:\n{done.stderr}"
    return done.returncode, events, wall


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child not yet reaped by its (dead) parent is a zombie: gone for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not [p for p in pids if alive(p)]:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


class Driver:
    """`deploydeck run PLAN --headless --json` as a child whose JSON lines arrive as they are printed."""

    def __init__(self, plan: Path | str, actor: str, journal: Path, **env: str) -> None:
        self.actor = actor
        self.proc = subprocess.Popen(
            deploydeck(
                "run", str(plan), "--headless", "--json", *APPROVE, "--as", actor, "--journal", str(journal)
            ),
            stdout=subprocess.PIPE,
            # a file, not a pipe: nobody reads stderr while the run goes on, and a full pipe would
            # block the driver on its next log line
            stderr=self._stderr_file(journal),
            text=True,
            env=child_env(**env),
            cwd=REPO,
        )
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def wait_for(self, predicate: Any, timeout_s: float, what: str) -> dict[str, Any]:
        """The first event (from now on) that satisfies `predicate`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                tail = [
                    e for e in self.events if e["type"] in {"rollback_triggered", "finished", "lease_lost"}
                ]
                raise AssertionError(
                    f"{self.actor}'s run exited {self.proc.wait()} before {what}: {tail} {self.stderr()}"
                )
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"{self.actor}'s run: no {what} within {timeout_s:g}s")

    def finish(self, timeout_s: float) -> int:
        """Exit code, after reading every remaining line (AssertionError if it does not end in time)."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self._reader.join(timeout=10)
            while not self._queue.empty():
                if (event := self._queue.get_nowait()) is not None:
                    self.events.append(event)
            tail = [
                (e["type"], e.get("phase"), e.get("reason") or e.get("message") or "")
                for e in self.events[-8:]
            ]
            raise AssertionError(
                f"{self.actor}'s run did not end within {timeout_s:g}s; last events {tail}; {self.stderr()}"
            ) from None
        self._reader.join(timeout=10)
        while (event := self._queue.get_nowait() if not self._queue.empty() else None) is not None:
            self.events.append(event)
        return code

    def _stderr_file(self, journal: Path) -> Any:
        self.stderr_path = journal.with_suffix(".stderr")
        return self.stderr_path.open("w")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGKILL's cleanup
            self.proc.kill()
            self.proc.wait()


def traffic_at(weight: int) -> Any:
    return lambda e: e["type"] == "traffic_changed" and e.get("applied", True) and e["effective"] == weight


def epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts).timestamp()
