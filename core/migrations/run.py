"""Run a migration command (staging first, then production) with a timeout, streaming its output."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.domain import CommandOutcome
from core.ports import CommandRunner

LineSink = Callable[[str], Awaitable[None] | None]


async def run_migration(
    command: str,
    *,
    runner: CommandRunner,
    timeout_s: float,
    on_line: LineSink | None = None,
    env: dict[str, str] | None = None,
) -> CommandOutcome:
    """Never raises for a failing migration: exit code None means timed out or could not start."""
    if not command.strip():
        return CommandOutcome(command=command, exit_code=None, detail="no migration command configured")
    return await runner.run(command, timeout_s=timeout_s, on_line=on_line, env=env)


def describe(outcome: CommandOutcome) -> str:
    """One line for evidence and logs: how it ended, how long it took, its last output line."""
    last = next((ln for ln in reversed(outcome.output.splitlines()) if ln.strip()), "")
    how = f"exit {outcome.exit_code}" if outcome.exit_code is not None else outcome.detail
    return f"{how} after {outcome.duration_s:.1f}s" + (f"; {last.strip()}" if last else "")
