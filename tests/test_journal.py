"""The deployment log: hash chain, tamper detection with line numbers, damaged lines skipped."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path

import pytest

from core.adapters.journal import GENESIS, FileJournal, default_journal_path, read_journal, verify_journal
from core.events import DeployStarted, Finished
from tests.test_history import make_deploy, write_journal_sync


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "nested" / "deployments.jsonl"  # parents are created
    write_journal_sync(path, [make_deploy("d1"), make_deploy("d2")])
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_lines_carry_prev_hash_and_parse_back(journal: Path) -> None:
    raw = lines_of(journal)
    first = json.loads(raw[0])
    assert first["prev"] == GENESIS and first["seq"] == 1
    for before, line in itertools.pairwise(raw):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()
    check = verify_journal(journal)
    assert check.ok and check.lines == len(raw) and check.first_bad_line is None
    read = read_journal(journal)
    assert read.problems == [] and len(read.events) == len(raw)
    assert isinstance(read.events[0], DeployStarted) and isinstance(read.events[-1], Finished)
    assert read.events == make_deploy("d1") + make_deploy("d2")


def test_append_continues_chain_across_writers(journal: Path) -> None:
    before = len(lines_of(journal))
    # A fresh writer (a new process) must pick up the chain from the file's last line.
    asyncio.run(FileJournal(journal).append(make_deploy("d3")[0].model_dump(mode="json")))
    assert verify_journal(journal).ok
    assert json.loads(lines_of(journal)[-1])["seq"] == before + 1


def test_edited_line_is_reported_with_its_number(journal: Path) -> None:
    raw = lines_of(journal)
    raw[4] = raw[4].replace(b'"actor":"alice"', b'"actor":"mallory"')
    journal.write_bytes(b"\n".join(raw) + b"\n")
    check = verify_journal(journal)
    assert not check.ok
    assert check.first_bad_line == 5
    assert "edited" in check.problem
    assert check.message().startswith("line 5: edited")


def test_edit_with_recomputed_line_hash_still_breaks_the_chain(journal: Path) -> None:
    raw = lines_of(journal)
    record = json.loads(raw[6])
    record["actor"] = "mallory"
    record.pop("h")
    body = json.dumps(record, separators=(",", ":"))[:-1].encode()
    raw[6] = body + b',"h":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'
    journal.write_bytes(b"\n".join(raw) + b"\n")
    check = verify_journal(journal)
    assert not check.ok and check.first_bad_line == 8 and "chain broken" in check.problem


def test_edited_last_line_is_detected(journal: Path) -> None:
    raw = lines_of(journal)
    raw[-1] = raw[-1].replace(b'"outcome":"completed"', b'"outcome":"aborted"')
    journal.write_bytes(b"\n".join(raw) + b"\n")
    check = verify_journal(journal)
    assert not check.ok and check.first_bad_line == len(raw)


def test_removed_line_is_reported_where_it_was(journal: Path) -> None:
    raw = lines_of(journal)
    del raw[3]
    journal.write_bytes(b"\n".join(raw) + b"\n")
    check = verify_journal(journal)
    assert not check.ok
    assert check.first_bad_line == 4
    assert "removed" in check.problem
    assert len(check.problems) == 1  # reported once, not on every later line


def test_truncated_last_line_is_reported(journal: Path) -> None:
    data = journal.read_bytes()
    journal.write_bytes(data[:-40])
    check = verify_journal(journal)
    total = len(lines_of(journal)) + 1
    assert not check.ok and check.first_bad_line == total and "truncated" in check.problem


def test_corrupt_line_reported_rest_readable(journal: Path) -> None:
    raw = lines_of(journal)
    total = len(raw)
    raw[2] = b'{"ts": "garbage'
    raw[9] = b'{"type": "no_such_event", "seq": 10}'
    journal.write_bytes(b"\n".join(raw) + b"\n")
    read = read_journal(journal)
    assert [n for n, _ in read.problems] == [3, 10]
    assert "not valid JSON" in read.problems[0][1]
    assert "not a deploydeck event" in read.problems[1][1]
    assert len(read.events) == total - 2
    check = verify_journal(journal)
    assert check.first_bad_line == 3 and "corrupt" in check.problem


def test_a_cut_anchored_line_is_quarantined_and_reported_as_tampering(tmp_path: Path) -> None:
    # Cutting the end off a line the anchor recorded whole looks like a crash, but is not one:
    # the next writer still moves the fragment aside and goes on, and says it was cut.
    path = tmp_path / "j.jsonl"
    write_journal_sync(path, [make_deploy("d1")[:3]])
    path.write_bytes(path.read_bytes()[:-15])
    asyncio.run(FileJournal(path).append(make_deploy("d2")[0].model_dump(mode="json")))
    read = read_journal(path)
    assert read.problems == [] and read.events[-1].deploy_id == "d2"
    check = verify_journal(path)
    assert not check.ok and check.first_bad_line == 3 and "tampered" in check.problem


def test_missing_journal(tmp_path: Path) -> None:
    read = read_journal(tmp_path / "none.jsonl")
    assert not read.exists and read.events == []
    check = verify_journal(tmp_path / "none.jsonl")
    assert not check.ok and "no such file" in check.problem


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path / "s"))
    assert default_journal_path() == tmp_path / "s" / "deployments.jsonl"
    monkeypatch.delenv("DEPLOYDECK_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert default_journal_path() == tmp_path / "x" / "deploydeck" / "deployments.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert (
        default_journal_path() == tmp_path / "home" / ".local" / "state" / "deploydeck" / "deployments.jsonl"
    )
