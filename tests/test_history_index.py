"""The history index beside the journal (issue 15, section 4): what it lists is what a full read of
the journal lists, it follows appends, and it is rebuilt whenever it cannot vouch for the journal."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from core.adapters.journal import default_journal_path as journal_default
from core.durations import format_duration
from core.history import list_deploys
from core.history_index import (
    default_journal_path,
    duration_text,
    index_path,
    open_index,
)
from tests.test_cli import deploydeck


@pytest.fixture(scope="module")
def two_deploys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("journal")
    journal = tmp / "deployments.jsonl"
    for scenario in ("bad-canary", "healthy"):
        ran = deploydeck(
            "demo", "--headless", "--scenario", scenario, "--journal", str(journal), tmp_path=tmp
        )
        assert ran.returncode in (0, 3), ran.stderr
    return journal


def _full_read(journal: Path) -> list[dict]:
    return [d.model_dump(mode="json") | {"restore_s": d.restore_s} for d in list_deploys(journal)]


def _copy(journal: Path, tmp_path: Path) -> Path:
    target = tmp_path / "deployments.jsonl"
    shutil.copy(journal, target)
    return target


def test_the_index_lists_what_a_full_read_lists(two_deploys: Path, tmp_path: Path) -> None:
    journal = _copy(two_deploys, tmp_path)
    index = open_index(journal)
    assert index_path(journal).exists()
    assert index.rows() == _full_read(journal)
    again = open_index(journal)  # from the file this time
    assert again.rows() == index.rows()


def test_the_index_follows_appends_and_a_deploy_written_in_two_halves(
    two_deploys: Path, tmp_path: Path
) -> None:
    lines = two_deploys.read_bytes().splitlines(keepends=True)
    journal = tmp_path / "deployments.jsonl"
    cut = len(lines) - 5  # the second deploy, unfinished
    journal.write_bytes(b"".join(lines[:cut]) + lines[cut][:20])  # and a line being written
    first = open_index(journal)
    assert [r["outcome"] for r in first.rows()] == ["rolled_back", None]
    with journal.open("ab") as f:
        f.write(lines[cut][20:] + b"".join(lines[cut + 1 :]))
    second = open_index(journal)
    assert [r["outcome"] for r in second.rows()] == ["rolled_back", "completed"]
    assert second.rows() == _full_read(journal)


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated journal", "replaced journal"])
def test_the_index_is_rebuilt_when_it_cannot_vouch_for_the_journal(
    damage: str, two_deploys: Path, tmp_path: Path
) -> None:
    journal = _copy(two_deploys, tmp_path)
    open_index(journal)
    if damage == "missing":
        index_path(journal).unlink()
    elif damage == "garbage":
        index_path(journal).write_text("{not json")
    elif damage == "truncated journal":
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(lines[:40]))  # only the first deploy's beginning is left
    else:
        # an editor writes a new file and renames it over the old one: same size, new inode
        edited = journal.read_text().replace('"outcome":"completed"', '"outcome":"aborted"  ')
        replacement = tmp_path / "edited.jsonl"
        replacement.write_text(edited)
        os.replace(replacement, journal)
    assert open_index(journal).rows() == _full_read(journal)


def test_log_show_by_id_reads_only_that_deploys_lines(two_deploys: Path, tmp_path: Path) -> None:
    journal = _copy(two_deploys, tmp_path)
    open_index(journal)  # built once
    index = open_index(journal, rows=False)
    assert index.summaries == {} and len(index.spans) == 2
    deploy_id = next(iter(index.spans))
    lines = index.deploy_lines(deploy_id)
    assert lines and all(json.loads(line)["deploy_id"] == deploy_id for line in lines)
    assert len(lines) == index.spans[deploy_id][2]
    shown = deploydeck("log", "show", deploy_id[:6], "--journal", str(journal), tmp_path=tmp_path)
    assert shown.returncode == 0 and "finished: rolled_back" in shown.stdout


def test_damaged_lines_are_reported_from_the_index(two_deploys: Path, tmp_path: Path) -> None:
    journal = _copy(two_deploys, tmp_path)
    with journal.open("ab") as f:
        f.write(b"{oops\n")
    listed = deploydeck("log", "--journal", str(journal), tmp_path=tmp_path)
    assert listed.returncode == 0
    assert (
        f"{journal}: line {len(journal.read_bytes().splitlines())}: not valid JSON (skipped)" in listed.stderr
    )


def test_the_fast_path_helpers_agree_with_the_originals(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for env in ({"DEPLOYDECK_STATE_DIR": str(tmp_path)}, {"XDG_STATE_HOME": str(tmp_path)}, {}):
        monkeypatch.delenv("DEPLOYDECK_STATE_DIR", raising=False)
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert default_journal_path() == journal_default()
    # one formatter, not a copy to keep in step (core/duration_text.py, stdlib only)
    assert duration_text is format_duration
    shown = [duration_text(s) for s in (0.4, 59, 60, 61, 3600, 3660, 86400 + 5)]
    assert shown == ["0s", "59s", "1m", "1m01s", "1h", "1h01m", "24h"]
