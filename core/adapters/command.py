"""Runs E2E suites, migrations and CI commands (the CommandRunner port) as subprocesses.

Output is streamed line by line and a bounded tail is kept as evidence; values
of secret-looking environment variables are masked before anyone sees a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from core.domain import CommandOutcome

_SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "KEY", "WEBHOOK")
#: short values ("1", "yes") would mask ordinary words everywhere
_MIN_SECRET_LEN = 4
MASK = "***"


def secret_values(env: Mapping[str, str]) -> list[str]:
    vals = {
        v
        for k, v in env.items()
        if any(m in k.upper() for m in _SECRET_MARKERS) and len(v) >= _MIN_SECRET_LEN
    }
    return sorted(vals, key=len, reverse=True)  # longest first so a secret containing another is fully masked


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, MASK)
    return text


class SubprocessRunner:
    """CommandRunner port. The timeout is wall time: it bounds a real process, not simulated time."""

    def __init__(
        self,
        *,
        cwd: str | None = None,
        tail_lines: int = 200,
        kill_grace_s: float = 2.0,
        env: Mapping[str, str] | None = None,
        secrets: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        # env: the plan's command variables (Plan.command_env). The command text keeps ``${VAR}``
        # and the shell expands it from the child's environment, so a value is data, never code.
        self._env = dict(env or {})
        self._secrets = {v for v in secrets if len(v) >= _MIN_SECRET_LEN}
        self._cwd = cwd
        self._tail_lines = tail_lines
        self._grace = kill_grace_s

    async def run(
        self,
        command: str,
        *,
        timeout_s: float,
        on_line: Callable[[str], Awaitable[None] | None] | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandOutcome:
        full_env = {**os.environ, **self._env, **(env or {})}
        secrets = sorted(set(secret_values(full_env)) | self._secrets, key=len, reverse=True)
        shown = redact(command, secrets)
        tail: deque[str] = deque(maxlen=self._tail_lines)
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_shell(
                command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=full_env,
                cwd=self._cwd,
                start_new_session=True,  # own process group, so a timeout kills the whole tree
            )
        except OSError as exc:
            return CommandOutcome(
                command=shown, exit_code=None, detail=f"could not start: {exc.strerror or exc}"
            )

        async def pump() -> None:
            assert proc.stdout is not None
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = redact(raw.decode("utf-8", "replace").rstrip("\r\n"), secrets)
                tail.append(line)
                if on_line is not None:
                    out = on_line(line)
                    if inspect.isawaitable(out):
                        await out
            await proc.wait()

        timed_out = False
        try:
            # asyncio.timeout, not wait_for: in 3.11 wait_for drops a cancellation that lands as the
            # command ends, and a signalled deploy went on to its next step
            async with asyncio.timeout(timeout_s):
                await pump()
        except TimeoutError:
            timed_out = True
            await self._kill(proc)
        except asyncio.CancelledError:
            await self._kill(proc)
            raise
        duration = time.monotonic() - started
        output = "\n".join(tail)
        if timed_out:
            return CommandOutcome(
                command=shown,
                exit_code=None,
                output=output,
                duration_s=duration,
                detail=f"timed out after {timeout_s:g}s; process group killed",
            )
        code = proc.returncode
        detail = f"exit {code}" if code is not None and code >= 0 else f"killed by signal {-(code or 0)}"
        return CommandOutcome(
            command=shown, exit_code=code, output=output, duration_s=duration, detail=detail
        )

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self._grace):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
