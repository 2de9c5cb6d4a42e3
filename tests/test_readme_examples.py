"""The first hour of a new user: the examples' plans on the simulated world, and bad input said plainly."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import deploydeck


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
    empty = deploydeck("log", "show", tmp_path=tmp_path)
    assert empty.returncode == 2 and "no deploys recorded yet" in empty.stderr
    ran = deploydeck("demo", "--headless", "--scenario", "bad-canary", tmp_path=tmp_path)
    assert ran.returncode == 3
    shown = deploydeck("log", "show", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "usage:" not in shown.stderr and "error rate above baseline" in shown.stdout
