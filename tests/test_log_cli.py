"""`deploydeck log` through argparse, as tui/cli.py wires it."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.domain import Outcome
from tests.test_history import make_deploy, write_journal_sync
from tui.commands import log_cmd


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deploydeck")
    log_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "deployments.jsonl"
    now = datetime.now(UTC).replace(microsecond=0)
    write_journal_sync(
        path,
        [
            make_deploy("1111aaaa2222", start=now - timedelta(days=3)),
            make_deploy(
                "3333bbbb4444", start=now - timedelta(days=2), outcome=Outcome.ROLLED_BACK, restore_s=100
            ),
            make_deploy("5555cccc6666", start=now - timedelta(days=1), service="search"),
        ],
    )
    return path


def test_list_table(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "id",
        "started",
        "(UTC)",
        "service",
        "versions",
        "outcome",
        "duration",
        "sign-offs",
    ]
    assert len(out) == 2 + 3
    assert (
        "1111aaaa2222" in out[2]
        and "completed" in out[2]
        and "20m14s" in out[2]
        and "alice:rollback-plan" in out[2]
    )
    assert "rolled_back" in out[3] and "1.4.0 → 1.5.0" in out[3]


def test_list_json(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "--journal", str(journal), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["deploy_id"] for r in rows] == ["1111aaaa2222", "3333bbbb4444", "5555cccc6666"]
    assert rows[1]["outcome"] == "rolled_back" and rows[1]["restore_s"] == pytest.approx(100)


def test_show_by_prefix(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "show", "3333", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "deploy started by rm-bob" in out
    assert "ROLLBACK triggered (automatic, rule error_rate)" in out
    assert "finished: rolled_back" in out


def test_show_unknown_id_is_bad_input(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "--journal", str(journal), "show", "nope"]) == 2  # --journal before the sub-command
    assert "no deploy with id 'nope'" in capsys.readouterr().err


def test_export_md_to_file(journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "audit.md"
    assert (
        run(["log", "export", "3333bb", "--format", "md", "-o", str(target), "--journal", str(journal)]) == 0
    )
    text = target.read_text(encoding="utf-8")
    assert "# Deploy audit record: checkout 1.4.0 → 1.5.0" in text
    assert "- Journal integrity: ok:" in text
    assert "## Trigger evaluations" in text and "## Rollback" in text


def test_export_json_stdout(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "export", "1111", "--format", "json", "--journal", str(journal)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"]["outcome"] == "completed"
    assert [t["effective"] for t in data["traffic_changes"]] == [5, 25, 50, 100]


def test_verify_ok_then_edited_line(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "verify", "--journal", str(journal)]) == 0
    assert "hash chain intact" in capsys.readouterr().out
    lines = journal.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b'"effective":5', b'"effective":50')
    journal.write_bytes(b"\n".join(lines))
    assert run(["log", "verify", "--journal", str(journal)]) == 1
    out = capsys.readouterr().out
    assert f"{journal}: line 7: edited" in out


def test_verify_missing_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "verify", "--journal", str(tmp_path / "none.jsonl")]) == 2
    assert "no such journal" in capsys.readouterr().err


def test_dora_table_and_json(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["log", "dora", "--days", "7", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    checkout = next(line for line in out.splitlines() if line.startswith("checkout"))
    assert checkout.split()[:7] == ["checkout", "2", "1", "1", "1.00", "0.14", "50.0"]
    assert run(["log", "dora", "--json", "--journal", str(journal)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["search"]["change_failure_rate"] == 0.0 and data["checkout"]["mttr_s"] == pytest.approx(100)


def test_damaged_line_warned_rest_listed(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = journal.read_bytes().split(b"\n")
    lines[3] = b"{broken"
    journal.write_bytes(b"\n".join(lines))
    assert run(["log", "--journal", str(journal)]) == 0
    captured = capsys.readouterr()
    assert "line 4: not valid JSON (skipped)" in captured.err
    assert "3333bbbb4444" in captured.out


def test_empty_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path))
    assert run(["log"]) == 0
    assert "no deploys recorded yet" in capsys.readouterr().out
