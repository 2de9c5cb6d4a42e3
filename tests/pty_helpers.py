"""A command on a pseudo-terminal, as a person at a terminal runs it: for the dashboard examples of
the README and for "closing the terminal" (SIGHUP) and "killing the parent" tests."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

_ANSI = re.compile(
    r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMNOZc])"
)


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children_of()
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has finished all it will ever do)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Terminal:
    """`argv` in its own session on a pty of `cols`×`rows`; `text` is all it printed, escapes removed."""

    def __init__(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], cols: int = 120, rows: int = 40
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)},
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        return " ".join(_ANSI.sub(" ", self.raw.decode(errors="replace")).split())

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the other side closed
                    return
                if not chunk:
                    return
                self.raw += chunk

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.2)
            if check():
                return
            if self.proc.poll() is not None:
                self.pump(0.2)
                raise AssertionError(f"exited {self.proc.returncode} before {what}: {self.text[-1500:]}")
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: {self.text[-1500:]}")

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def hang_up(self) -> None:
        """What closing the terminal window does: SIGHUP to the terminal's processes, then no terminal."""
        try:
            os.killpg(self.proc.pid, signal.SIGHUP)
        except ProcessLookupError:
            pass
        self.pump(0.3)
        os.close(self.master)
        self.master = -1

    def close_window(self) -> None:
        """What closing a terminal emulator's window does: the terminal is gone at once (its master
        side closed) and its processes are hung up; nothing the app writes afterwards is read."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGHUP)
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        """Kill whatever is left (test cleanup: the test has already asserted what it wanted)."""
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
