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


async def _three_then_two(path: Path) -> FileJournal:
    """Lines 1-3 by a first writer, 4-5 by a second (which leaves the anchor on line 5); the first."""
    first, second = FileJournal(path, fsync=False), FileJournal(path, fsync=False)
    for n in range(3):
        await first.append(rec(n))
    for n in range(3, 5):
        await second.append(rec(n))
    return first


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


def test_a_finding_on_the_lines_after_the_writers_own_names_the_line_by_its_place_in_the_file(
    tmp_path: Path, parsed: list[int]
) -> None:
    path = tmp_path / "j.jsonl"

    async def go() -> None:
        first = await _three_then_two(path)
        path.write_bytes(path.read_bytes().replace(b'"m4"', b'"mX"'))  # the anchored line, line 5
        parsed.clear()
        await first.append(rec(9))

    asyncio.run(go())
    assert parsed[0] == 2  # only the 2 lines after the first writer's own were read
    messages = [line for line in path.read_text().splitlines() if "tampered" in line]
    assert len(messages) == 1 and "line 5's hash does not match the one recorded" in messages[0], messages


def test_a_line_slipped_in_after_the_writers_own_is_no_crash_and_verify_finds_it(tmp_path: Path) -> None:
    """The append-time audit checks the end and the anchored line; a line slipped in before them is
    `log verify`'s to find. The writer must not crash on it (it is not JSON) and must not take it as
    its own lines' continuation."""
    path = tmp_path / "j.jsonl"
    first, second = FileJournal(path, fsync=False), FileJournal(path, fsync=False)

    async def go() -> None:
        for n in range(3):
            await first.append(rec(n))
        await second.append(rec(3))
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join([*lines[:3], b"not json\n", *lines[3:]]))
        await first.append(rec(9))

    asyncio.run(go())
    assert path.read_text().splitlines()[-1].count('"message":"m9"') == 1  # appended
    check = verify_journal(path)
    assert not check.ok and check.first_bad_line == 4, check


def test_lines_appended_past_another_writers_anchored_line_are_found_on_the_short_read(
    tmp_path: Path, parsed: list[int]
) -> None:
    path = tmp_path / "j.jsonl"

    async def go() -> None:
        first = await _three_then_two(path)
        with path.open("ab") as fh:  # a line added by hand after the anchored end
            fh.write(b'{"seq":6,"note":"added by hand"}\n')
        parsed.clear()
        await first.append(rec(9))

    asyncio.run(go())
    assert parsed[0] == 3  # the short read: the second writer's 2 lines and the one added
    messages = [line for line in path.read_text().splitlines() if "tampered" in line]
    assert len(messages) == 1, messages
    assert "1 line(s) appended after the anchored end (line 5) outside deploydeck" in messages[0]
