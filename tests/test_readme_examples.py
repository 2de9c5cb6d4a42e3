"""Every command the README shows runs exactly as written (issue 15, item 1).

The commands are read from the README's code blocks, so an example added there without a test here
fails `test_every_readme_command_is_tested`. Dashboard commands run on a pseudo-terminal: they must
paint the dashboard and then end with the terminal (SIGHUP) leaving no process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pty_helpers import Terminal, alive, command_name, descendants
from tests.test_cli import ROOT, deploydeck

README = ROOT / "README.md"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_COMMENT = re.compile(r"\s{2,}#.*$")


def readme_commands() -> list[str]:
    """Each command line of the README's `sh` blocks, without its trailing comment."""
    commands = []
    for lang, body in _BLOCK.findall(README.read_text(encoding="utf-8")):
        if lang == "sh":
            commands += [_COMMENT.sub("", line).strip() for line in body.splitlines() if line.strip()]
    return commands


def readme_transcripts() -> list[tuple[str, list[str]]]:
    """The README's terminal transcripts: a `$ command` line and the output it shows."""
    out = []
    for lang, body in _BLOCK.findall(README.read_text(encoding="utf-8")):
        lines = body.splitlines()
        if not lang and lines and lines[0].startswith("$ "):
            out.append((lines[0][2:], lines[1:]))
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # this checkout's code, whichever checkout the venv was installed from
        "DEPLOYDECK_STATE_DIR": str(tmp_path / "state"),
        "DEPLOYDECK_ACTOR": "ci-bot",
        # whatever a run leaves in the temp or runtime directory (sim kubeconfig) is seen here
        "TMPDIR": str(tmp_path / "tmp"),
        "XDG_RUNTIME_DIR": str(tmp_path / "tmp"),
    }


def _as_written(command: str) -> str:
    """The command for the shell; `.venv/bin/deploydeck` is this interpreter's when no .venv exists."""
    if not (ROOT / ".venv" / "bin" / "deploydeck").exists():
        command = command.replace(".venv/bin/deploydeck", f"{sys.executable} -m tui.cli")
    if command.startswith("deploydeck "):
        command = f"{sys.executable} -m tui.cli " + command.removeprefix("deploydeck ")
    return command


def shell(command: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", _as_written(command)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


DD = ".venv/bin/deploydeck"
RUN_MINIMAL = (
    f"{DD} run examples/minimal.yaml --sim --headless --json --speed max "
    "--approve rollback-plan --approve dashboards-reviewed --as alice"
)

#: headless commands: exit code and a text the output must show
HEADLESS: dict[str, tuple[int, str]] = {
    f"{DD} demo --headless --scenario slow-canary": (3, "ROLLBACK (automatic) p99 latency"),
    f"{DD} demo --headless --scenario bad-canary --json": (3, '"outcome":"rolled_back"'),
    f"{DD} check examples/minimal.yaml --sim": (0, "sim://checkout-staging/health/ready: HTTP 200"),
    RUN_MINIMAL: (0, '"outcome":"completed"'),
    f"{DD} status": (0, "no unfinished deploy in the journal"),
}
#: dashboard commands: what the screen must show once it is up
DASHBOARD: dict[str, str] = {
    "make demo": "scenario healthy",
    f"{DD} demo": "scenario healthy",
    f"{DD} demo --scenario bad-canary": "scenario bad-canary",
    f"{DD} demo --prometheus --scenario bad-canary": "scenario bad-canary",
}
#: tested one by one below
OTHERS = {
    "make test",
    f"{DD} log",
    f"{DD} log --sim",
    f"{DD} sim serve",
    f"{DD} watch examples/minimal.yaml --sim --speed max --for 24h",
}


#: examples that read a real cluster; tests/test_init.py runs the same command on a simulated one
REAL_CLUSTER = {f"{DD} init checkout -n shop --context prod -o checkout.yaml"}


def test_every_readme_command_is_tested() -> None:
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    assert set(commands) == set(HEADLESS) | set(DASHBOARD) | OTHERS | REAL_CLUSTER


@pytest.mark.parametrize("command", sorted(REAL_CLUSTER))
def test_readme_real_cluster_command(command: str) -> None:
    pytest.skip(
        "reads a real cluster's 'prod' context; test_init.py::test_from_init_to_a_completed_run_in_at_"
        "most_five_commands runs init against `sim serve` instead"
    )


@pytest.mark.parametrize("command", sorted(HEADLESS))
def test_readme_headless_command(command: str, tmp_path: Path) -> None:
    code, shown = HEADLESS[command]
    result = shell(command, tmp_path)
    assert result.returncode == code, result.stdout[-2000:] + result.stderr
    assert shown in result.stdout, result.stdout[-2000:]
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("command", sorted(DASHBOARD))
def test_readme_dashboard_command_paints_and_leaves_nothing_behind(command: str, tmp_path: Path) -> None:
    """Up on a terminal, then the terminal is closed: the process and every child it started end,
    and its temporary files (sim kubeconfig, Prometheus data) go with them."""
    argv = ["bash", "-c", "exec " + _as_written(command)]
    if command == "make demo":
        # `-o`: never rebuild the (shared) venv from a test; everything else as written
        argv = ["make", "-s", "-o", ".venv/.installed", "demo"]
    term = Terminal(argv, cwd=ROOT, env=_env(tmp_path))
    children: list[int] = []
    try:
        term.wait_for(
            lambda: DASHBOARD[command] in term.text and "Rollback" in term.text, 60, "the dashboard"
        )
        if "--prometheus" in command:
            term.wait_for(
                lambda: any(command_name(p) == "prometheus" for p in descendants(term.proc.pid)),
                60,
                "Prometheus to start",
            )
        children = descendants(term.proc.pid)
        assert children or command != "make demo"
        term.hang_up()
        term.proc.wait(timeout=20)
        left = [f"{pid} {command_name(pid)}" for pid in children if alive(pid)]
        assert not left, f"still running after the terminal closed: {left}"
        files = [p for p in (tmp_path / "tmp").rglob("*") if not p.is_dir() or any(p.iterdir())]
        assert not files, f"left behind: {files}"
    finally:
        term.close()
        kill_all(children)


def kill_all(pids: list[int]) -> None:
    """Test cleanup: what a failing run left behind (only processes this test started)."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_readme_make_test_is_the_suite() -> None:
    """`make test` runs this suite; running it from inside the suite would recurse, so the test
    checks what it would run."""
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed-test", "-o", "real-deps", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ruff check core tui tests benchmarks" in result.stdout
    assert 'pytest -q -p no:cacheprovider -m "not slow"' in result.stdout


def test_readme_log_after_a_simulated_run(tmp_path: Path) -> None:
    """Simulated runs are history of their own: `log` lists real deploys only, `log --sim` the demos."""
    assert shell(RUN_MINIMAL, tmp_path).returncode == 0
    real = shell(f"{DD} log", tmp_path)
    assert real.returncode == 0, real.stderr
    assert "no deploys recorded yet" in real.stdout and "log --sim" in real.stdout
    sim = shell(f"{DD} log --sim", tmp_path)
    assert sim.returncode == 0, sim.stderr
    row = next(line for line in sim.stdout.splitlines() if "checkout" in line)
    assert "completed" in row and "(simulated)" in row


def test_readme_watch_after_the_run(tmp_path: Path) -> None:
    assert shell(RUN_MINIMAL, tmp_path).returncode == 0
    result = shell(f"{DD} watch examples/minimal.yaml --sim --speed max --for 24h", tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "watch over: 2880 intervals, 0 trigger(s), 0 new alert(s)" in result.stdout


def test_readme_sim_serve_answers_kubectl_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + _as_written(f"{DD} sim serve")],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        while not (line := proc.stdout.readline()).startswith("kubeconfig: "):
            assert line, "".join(seen) + (proc.stderr.read() if proc.stderr else "")
            seen.append(line)
        kubeconfig = Path(line.removeprefix("kubeconfig: ").strip())
        got = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "deploy", "-n", "shop", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "deployment.apps/checkout" in got.stdout, got.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) in (0, 130)
        assert not kubeconfig.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("transcript", readme_transcripts(), ids=lambda t: t[0])
def test_readme_transcript_is_what_the_command_prints(
    transcript: tuple[str, list[str]], tmp_path: Path
) -> None:
    command, shown = transcript
    result = shell(command, tmp_path)
    assert (result.stdout + result.stderr).splitlines() == shown
    assert result.returncode == 2  # every transcript in the README today is of bad input


def test_minimal_plan_passes_check_on_the_simulated_world(tmp_path: Path) -> None:
    result = deploydeck("check", "examples/minimal.yaml", "--sim", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  error  " not in result.stdout and "  fail  " not in result.stdout
    assert "error, " not in result.stdout.splitlines()[-1]
    assert "sim://checkout-staging/health/ready: HTTP 200" in result.stdout


def test_missing_kubeconfig_is_bad_input_that_says_what_to_do(tmp_path: Path) -> None:
    result = deploydeck(
        "run",
        "examples/full.yaml",
        "--headless",
        "--json",
        "--approve",
        "rollback-plan",
        "--as",
        "alice",
        tmp_path=tmp_path,
        env={"KUBECONFIG": "", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    line = json.loads(result.stdout.splitlines()[-1])
    assert (line["type"], line["exit"]) == ("error", 2)
    assert "no kubeconfig" in line["message"] and "--sim" in line["message"]


def test_unknown_context_names_the_plan_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncontexts: [{name: dev, context: {}}]\n")
    result = deploydeck(
        "run", "examples/full.yaml", "--headless", tmp_path=tmp_path, env={"KUBECONFIG": str(kubeconfig)}
    )
    assert result.returncode == 2
    assert "examples/full.yaml:36: targets.staging.context: 'staging' is not a context" in result.stderr


def test_speed_on_a_real_cluster_is_refused(tmp_path: Path) -> None:
    result = deploydeck("run", "examples/full.yaml", "--headless", "--speed", "60", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--speed works only on the simulated world" in result.stderr


def test_minimal_plan_completes_on_the_simulated_world_at_max_speed(tmp_path: Path) -> None:
    result = deploydeck(
        "run",
        "examples/minimal.yaml",
        "--sim",
        "--headless",
        "--json",
        "--speed",
        "max",
        "--approve",
        "rollback-plan",
        "--approve",
        "dashboards-reviewed",
        "--as",
        "alice",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert (last["type"], last["outcome"]) == ("finished", "completed")


async def test_each_process_writes_its_own_sim_kubeconfig_and_removes_it() -> None:
    import os

    from core.session import demo_plan, open_session

    session = await open_session(demo_plan("healthy"), actor="t", sim_backend="kube", interactive=False)
    path = Path(session.kubeconfig or "")
    try:
        assert path.name == f"sim-kubeconfig-{os.getpid()}.yaml" and path.name in os.listdir(path.parent)
    finally:
        await session.close()
    assert path.name not in os.listdir(path.parent)


def test_log_show_without_an_id_shows_the_latest_deploy(tmp_path: Path) -> None:
    empty = deploydeck("log", "--sim", "show", tmp_path=tmp_path)
    assert empty.returncode == 2 and "no deploys recorded yet" in empty.stderr
    ran = deploydeck("demo", "--headless", "--scenario", "bad-canary", tmp_path=tmp_path)
    assert ran.returncode == 3
    shown = deploydeck("log", "--sim", "show", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "usage:" not in shown.stderr and "error rate above baseline" in shown.stdout
