"""The command runner (E2E suites, migrations, CI): what it reports, what it masks, how it stops a
command (issue 16; written against the survivors of `make mutate MUTATE_MODULES=core.adapters.command`).

Real subprocesses, with waits of a fraction of a second: the runner's timeout is wall time.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from core.adapters.command import MASK, SubprocessRunner, redact, secret_values

pytestmark = pytest.mark.timeout(30)


def test_secret_values_need_a_secret_looking_name_and_four_characters_longest_first() -> None:
    env = {
        "GH_TOKEN": "tok1",
        "db_password": "hunter2-long",
        "SIGNING_KEY": "abc",  # too short to mask: it would mask ordinary words
        "SLACK_WEBHOOK": "https://hooks/x",
        "APP_SECRET": "tok1",  # the same value twice is listed once
        "HOME": "/home/alice",
    }
    assert secret_values(env) == ["https://hooks/x", "hunter2-long", "tok1"]


def test_redact_masks_every_occurrence_longest_first() -> None:
    assert MASK == "***"
    assert redact("a abcd-efgh b abcd", ["abcd-efgh", "abcd"]) == "a *** b ***"
    assert redact("nothing", ["abcd"]) == "nothing"


async def test_output_lines_reach_the_callback_and_the_tail_in_order(tmp_path: Path) -> None:
    seen: list[str] = []
    runner = SubprocessRunner(cwd=str(tmp_path), tail_lines=2)
    outcome = await runner.run("printf 'one\\r\\ntwo\\nthree\\n'; pwd", timeout_s=10, on_line=seen.append)
    assert seen == ["one", "two", "three", str(tmp_path)]  # CR LF stripped; the cwd is the runner's
    assert outcome.output == f"three\n{tmp_path}"  # only the last `tail_lines` are kept
    assert (outcome.exit_code, outcome.detail) == (0, "exit 0")
    assert outcome.command == "printf 'one\\r\\ntwo\\nthree\\n'; pwd"


async def test_an_async_callback_is_awaited_for_each_line() -> None:
    seen: list[str] = []

    async def on_line(line: str) -> None:
        await asyncio.sleep(0)
        seen.append(line)

    outcome = await SubprocessRunner().run("echo a; echo b", timeout_s=10, on_line=on_line)
    assert seen == ["a", "b"] and outcome.output == "a\nb"


async def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    outcome = await SubprocessRunner().run("printf 'ok \\377\\n'", timeout_s=10)
    assert outcome.output == "ok \ufffd" and outcome.exit_code == 0


async def test_exit_code_and_signal_are_reported_as_such() -> None:
    failed = await SubprocessRunner().run("exit 3", timeout_s=10)
    assert (failed.exit_code, failed.detail) == (3, "exit 3")
    killed = await SubprocessRunner().run("kill -9 $$", timeout_s=10)
    assert (killed.exit_code, killed.detail) == (-9, "killed by signal 9")


async def test_env_layers_plan_values_then_per_call_values_over_the_process_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DD_LAYER", "process")
    monkeypatch.setenv("DD_ONLY_PROCESS", "kept")
    runner = SubprocessRunner(env={"DD_LAYER": "plan", "DD_PLAN": "p"})
    cmd = 'echo "$DD_LAYER $DD_PLAN $DD_ONLY_PROCESS $DD_CALL"'
    assert (await runner.run(cmd, timeout_s=10)).output == "plan p kept "
    assert (await runner.run(cmd, timeout_s=10, env={"DD_LAYER": "call", "DD_CALL": "c"})).output == (
        "call p kept c"
    )


async def test_secrets_from_the_plan_and_from_secret_env_names_are_masked_in_command_and_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DD_TEST_TOKEN", "envtok-1234")
    runner = SubprocessRunner(env={"DD_API_KEY": "plankey-5678"}, secrets={"plan-secret", "abc"})
    outcome = await runner.run(
        "echo plan-secret $DD_TEST_TOKEN $DD_API_KEY abc",
        timeout_s=10,
        env={"DD_CALL_PASSWORD": "callpw-9999"},
    )
    assert outcome.command == "echo *** $DD_TEST_TOKEN $DD_API_KEY abc"
    assert outcome.output == "*** *** *** abc"  # "abc" is too short to be treated as a secret
    call = await runner.run("echo $DD_CALL_PASSWORD", timeout_s=10, env={"DD_CALL_PASSWORD": "callpw-9999"})
    assert call.output == "***"


async def test_a_command_that_cannot_start_says_why(tmp_path: Path) -> None:
    outcome = await SubprocessRunner(cwd=str(tmp_path / "missing")).run("echo hi", timeout_s=10)
    assert outcome.exit_code is None
    assert outcome.detail == "could not start: No such file or directory"
    assert outcome.command == "echo hi"


async def test_a_timeout_reports_the_limit_the_tail_and_a_duration_near_it() -> None:
    started = time.monotonic()
    outcome = await SubprocessRunner(kill_grace_s=0.5).run("echo before; sleep 20", timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert outcome.exit_code is None
    assert outcome.detail == "timed out after 0.5s; process group killed"
    assert outcome.output == "before"
    assert 0.5 <= outcome.duration_s <= elapsed < 5


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    # the shell traps TERM; only the KILL after the grace period ends it
    started = time.monotonic()
    outcome = await SubprocessRunner(kill_grace_s=0.3).run(
        "trap '' TERM; echo armed; while :; do sleep 0.05; done", timeout_s=0.5
    )
    elapsed = time.monotonic() - started
    assert outcome.exit_code is None and outcome.output == "armed"
    assert 0.8 <= elapsed < 5  # the timeout, then the whole grace, then KILL


async def test_a_command_that_exits_on_sigterm_does_not_wait_out_the_grace() -> None:
    started = time.monotonic()
    await SubprocessRunner(kill_grace_s=10).run("sleep 20", timeout_s=0.3)
    assert time.monotonic() - started < 5


async def test_cancelling_the_run_kills_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    started = asyncio.Event()
    task = asyncio.create_task(
        SubprocessRunner(kill_grace_s=0.2).run(
            f"echo started; sleep 1; touch {marker}", timeout_s=30, on_line=lambda _: started.set()
        )
    )
    await asyncio.wait_for(started.wait(), 10)  # the command is running (not merely being spawned)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.5)
    assert not marker.exists()


async def test_the_default_tail_keeps_the_last_200_lines() -> None:
    outcome = await SubprocessRunner().run("seq 1 205", timeout_s=10)
    lines = outcome.output.splitlines()
    assert (len(lines), lines[0], lines[-1]) == (200, "6", "205")


async def test_stderr_is_captured_with_stdout_and_stdin_is_empty() -> None:
    outcome = await SubprocessRunner().run(
        "echo out; echo err >&2; if read -r x; then echo got; else echo eof; fi", timeout_s=10
    )
    assert outcome.output == "out\nerr\neof"


async def test_only_line_ends_are_stripped_and_the_run_is_timed() -> None:
    outcome = await SubprocessRunner().run("printf 'boX \\nXX\\r\\n'; sleep 0.2", timeout_s=10)
    assert outcome.output == "boX \nXX"
    assert outcome.duration_s >= 0.2


async def test_secrets_are_masked_longest_first_even_when_one_is_inside_another() -> None:
    # "efgh" sorts after "abcd-efgh" alphabetically: only ordering by length masks the long one whole
    runner = SubprocessRunner(secrets={"abcd-efgh", "efgh", "wxyz"})  # four characters is enough
    outcome = await runner.run("echo abcd-efgh wxyz", timeout_s=10)
    assert outcome.output == "*** ***"


async def test_the_default_grace_between_term_and_kill_is_two_seconds() -> None:
    started = time.monotonic()
    await SubprocessRunner().run("trap '' TERM; echo armed; while :; do sleep 0.05; done", timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert 2.2 <= elapsed < 3.15  # 0.2 s timeout + 2 s grace, with room for a loaded machine


async def test_a_timeout_after_the_shell_has_exited_still_reports_a_timeout() -> None:
    # the shell exits at once, but a child in a session of its own keeps the output pipe open: at
    # the timeout the process group is already gone, which must not turn into an error
    outcome = await SubprocessRunner(kill_grace_s=0.2).run("setsid sleep 1.2 & exit 0", timeout_s=0.5)
    assert (outcome.exit_code, outcome.detail) == (None, "timed out after 0.5s; process group killed")
    # the runner leaves the pipe to that child; let it end so the transport closes in this loop
    await asyncio.sleep(1.2)


async def test_the_command_never_reads_the_runners_own_stdin() -> None:
    # make and mutmut give the test run an empty stdin already: put data on fd 0 for this test, so a
    # command that inherited it (instead of /dev/null) would read it
    read_end, write_end = os.pipe()
    os.write(write_end, b"typed into the driver's terminal\n")
    os.close(write_end)
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        outcome = await SubprocessRunner().run("cat; echo done", timeout_s=10)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read_end)
    assert outcome.output == "done"


class _GoneAfterTheGrace:
    """A process that ignores SIGTERM for the whole grace and whose group is gone by the SIGKILL
    (it exited in between): the race `_kill` must survive. Its pid is one that no longer exists."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.waits = 0

    async def wait(self) -> int:
        self.waits += 1
        if self.waits == 1:
            await asyncio.sleep(30)  # still running when the grace ends
        return -9


async def test_a_process_group_gone_between_term_and_kill_is_not_an_error() -> None:
    child = await asyncio.create_subprocess_exec("true")
    await child.wait()  # reaped: its pid (and process group) no longer exist
    proc = _GoneAfterTheGrace(child.pid)
    await SubprocessRunner(kill_grace_s=0.05)._kill(proc)  # type: ignore[arg-type]
    assert proc.waits == 2  # waited out the grace, sent KILL into the void, then collected it
