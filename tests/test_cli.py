"""The CLI as a person (or CI) uses it: real processes, exit codes, JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def deploydeck(
    *args: str, tmp_path: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEPLOYDECK_STATE_DIR": str(tmp_path / "state"),
        "DEPLOYDECK_ACTOR": "ci-bot",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_headless_bad_canary_rolls_back_with_exit_3_and_says_why(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "bad-canary", "--json", tmp_path=tmp_path)
    assert result.returncode == 3, result.stderr
    events = json_lines(result.stdout)
    assert all({"ts", "type", "phase"} <= e.keys() for e in events)
    assert events[-1]["type"] == "finished" and events[-1]["outcome"] == "rolled_back"
    trigger = next(e for e in events if e["type"] == "rollback_triggered")
    assert trigger["rule"] == "error_rate" and trigger["automatic"] is True
    fired = [r for r in trigger["readings"] if r["fired"]]
    assert fired[0]["value"] > fired[0]["limit"] == 0.5
    assert "pp" in trigger["reason"]


def test_headless_healthy_completes_with_exit_0(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "healthy", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    last = json_lines(result.stdout)[-1]
    assert (last["type"], last["outcome"]) == ("finished", "completed")


def test_headless_readable_log_has_countdowns(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "slow-canary", tmp_path=tmp_path)
    assert result.returncode == 3
    assert "left]" in result.stdout and "⏱ canary 5 %: 5m window" in result.stdout
    assert "ROLLBACK (automatic) p99 latency" in result.stdout


def test_malformed_plan_exits_2_naming_file_line_field(tmp_path: Path) -> None:
    result = deploydeck("run", "examples/bad-weights.yaml", "--headless", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "examples/bad-weights.yaml:12: canary.steps[2]: weights must increase" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_scenario_is_bad_input(tmp_path: Path) -> None:
    result = deploydeck("demo", "--headless", "--scenario", "nope", tmp_path=tmp_path)
    assert result.returncode == 2 and "unknown scenario 'nope'" in result.stderr


def test_blocked_plan_exits_4(tmp_path: Path) -> None:
    # the demo plan without its manual sign-offs, headless: nobody can sign, so it is blocked at the gate
    plan = (ROOT / "core" / "sim" / "demo.yaml").read_text()
    path = tmp_path / "plan.yaml"
    path.write_text(plan)
    result = deploydeck("run", str(path), "--headless", "--json", tmp_path=tmp_path)
    assert result.returncode == 4, result.stderr
    last = json_lines(result.stdout)[-1]
    assert last["outcome"] == "blocked" and "rollback-plan" in last["reason"]


def test_log_verify_catches_an_edited_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    assert (
        deploydeck("demo", "--headless", "--journal", str(journal), "--json", tmp_path=tmp_path).returncode
        == 0
    )
    assert deploydeck("log", "verify", "--journal", str(journal), tmp_path=tmp_path).returncode == 0
    listing = deploydeck("log", "--journal", str(journal), tmp_path=tmp_path)
    assert listing.returncode == 0 and "completed" in listing.stdout and "checkout" in listing.stdout
    lines = journal.read_text().splitlines()
    lines[5] = lines[5].replace('"preflight"', '"staging"', 1)
    journal.write_text("\n".join(lines) + "\n")
    result = deploydeck("log", "verify", "--journal", str(journal), tmp_path=tmp_path)
    assert result.returncode != 0
    assert "line 6" in (result.stdout + result.stderr)


def test_every_command_has_help(tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["run", "--help"],
        ["check", "--help"],
        ["log", "--help"],
        ["sim", "serve", "--help"],
    ):
        result = deploydeck(*args, tmp_path=tmp_path)
        assert result.returncode == 0 and "usage: deploydeck" in result.stdout, args


@pytest.mark.slow  # 55 s; the same verdict through a real Prometheus runs fast in test_verdicts_scenarios
def test_demo_with_real_prometheus_rolls_back_bad_canary_through_promql(tmp_path: Path) -> None:
    from tests.real_servers import require_binary

    require_binary("/usr/bin/prometheus")
    result = deploydeck(
        "demo",
        "--headless",
        "--json",
        "--prometheus",  # at 30x: faster, windows would span too few scrapes (exit 2, issue 14)
        "--scenario",
        "bad-canary",
        tmp_path=tmp_path,
        timeout=240,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    events = json_lines(result.stdout)
    trigger = next(e for e in events if e["type"] == "rollback_triggered")
    assert trigger["rule"] == "error_rate" and trigger["weight_at_trigger"] == 25, trigger["reason"]
    # the numbers came from PromQL over the scraped workload, not from the in-process model
    source = next(e for e in events if e["type"] == "log" and e["source"] == "session")
    assert source["message"].startswith("real Prometheus at http://127.0.0.1:")
    restored = next(e for e in events if e["type"] == "rollback_step" and e["action"] == "verify")
    assert restored["ok"], restored
