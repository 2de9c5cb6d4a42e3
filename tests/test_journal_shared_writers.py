"""Many writers on one log in one process (the agent: one writer per DeployRun, one log).

Each writer audits the file's end before appending when someone else wrote since its last line. It read
the whole file to do so: with 50 runs taking turns that was quadratic, and the agent spent 56 of its 103
CPU seconds in it (bench_agent_fleet.py under cProfile). Now it reads only the lines after its own, when
they chain on from it and the anchor is among them; the findings are the same.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.adapters import journal as J
from core.adapters.journal import FileJournal, verify_journal
from core.adapters.journal_anchor import KEY_ENV, anchor_path


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def rec(n: int, deploy_id: str = "d1") -> dict[str, object]:
    return {
        "ts": f"2026-03-01T00:00:{n % 60:02d}+00:00",
        "deploy_id": deploy_id,
        "type": "log",
        "message": f"m{n}",
    }


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many lines each audit parsed."""
    counts: list[int] = []
    real = J._whole_lines
    monkeypatch.setattr(J, "_whole_lines", lambda data: (r := real(data), counts.append(len(r)))[0])
    return counts


def test_writers_taking_turns_read_only_the_lines_written_since_their_own(
    tmp_path: Path, parsed: list[int]
) -> None:
    path = tmp_path / "j.jsonl"
    writers = [FileJournal(path, fsync=False) for _ in range(5)]

    async def go() -> None:
        for n in range(200):  # each turn: another writer wrote the line before
            await writers[n % 5].append(rec(n, deploy_id=f"d{n % 5}"))

    asyncio.run(go())
    assert verify_journal(path).ok
    # each writer's first append reads the file whole (0..4 lines); afterwards 4 lines per turn, not 200
    assert parsed[:5] == [0, 1, 2, 3, 4]
    assert set(parsed[5:]) == {4}
    assert J._read_tail(path).next_seq == 201


def test_an_anchored_line_edited_after_another_writer_is_still_found(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    first, second = FileJournal(path, fsync=False), FileJournal(path, fsync=False)

    async def go() -> None:
        await first.append(rec(1))
        await second.append(rec(2))
        # someone edits the line the anchor records (the same length, so only a re-read can tell)
        data = path.read_bytes()
        path.write_bytes(data.replace(b'"m2"', b'"mX"'))
        await first.append(rec(3))

    asyncio.run(go())
    messages = [line for line in path.read_text().splitlines() if "tampered" in line]
    assert len(messages) == 1 and "found before appending" in messages[0]


def test_lines_that_do_not_chain_on_from_the_writers_own_make_it_read_the_whole_file(
    tmp_path: Path, parsed: list[int]
) -> None:
    path = tmp_path / "j.jsonl"
    first = FileJournal(path, fsync=False)
    asyncio.run(first.append(rec(1)))
    # the log replaced by a longer one written from scratch (another chain), anchor and all
    other = tmp_path / "other.jsonl"

    async def other_log() -> None:
        journal = FileJournal(other, fsync=False)
        for n in range(3):
            await journal.append(rec(10 + n, deploy_id="z"))

    asyncio.run(other_log())
    path.write_bytes(other.read_bytes())
    anchor_path(path).write_bytes(anchor_path(other).read_bytes())
    parsed.clear()
    asyncio.run(first.append(rec(2)))
    assert parsed == [2, 3]  # the 2 lines past its old size do not chain on: then the whole file
    assert verify_journal(path).ok
