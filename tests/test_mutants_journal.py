"""core.adapters.journal, the hash-chained deployment log (issue 16; written against `make mutate`'s
survivors): the exact bytes of a line, the tail a writer continues from, a torn tail moved aside, the
end checked before appending. Verification and reading: tests/test_mutants_journal_verify.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from core.adapters import journal as J
from core.adapters.journal import (
    GENESIS,
    RECOVERED,
    FileJournal,
    encode_line,
    verify_journal,
    verify_lines,
)
from core.adapters.journal_anchor import KEY_ENV, Anchor, Line, anchor_path, read_anchor

KEY = b"k3y-for-mutants"
TS = "2026-03-01T10:00:00Z"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rec(n: int, deploy_id: str = "d1", **extra: object) -> dict[str, object]:
    """A journal record that parses as a deploydeck event (a log line)."""
    return {
        "ts": TS,
        "phase": "canary",
        "deploy_id": deploy_id,
        "step": None,
        "type": "log",
        "level": "info",
        "source": "engine",
        "message": f"m{n}",
        **extra,
    }


def chain(records: list[dict[str, object]], key: bytes | None = None) -> list[bytes]:
    out: list[bytes] = []
    prev = GENESIS
    for seq, record in enumerate(records, start=1):
        line = encode_line(record, prev, seq, key)
        out.append(line)
        prev = sha(line)
    return out


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def records_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines_of(path)]


def write(path: Path, records: list[dict[str, object]], key: bytes | None = None) -> FileJournal:
    journal = FileJournal(path, fsync=False)
    journal._key = key

    async def go() -> None:
        for record in records:
            await journal.append(record)

    asyncio.run(go())
    return journal


def append(path: Path, record: dict[str, object], key: bytes | None = None) -> FileJournal:
    return write(path, [record], key)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# --- the bytes of a line -------------------------------------------------------------------------


def test_a_line_is_the_record_then_prev_seq_and_its_own_hash_in_that_order() -> None:
    # the old fields first: dropped, not kept in their place
    record = {"h": "old", "mac": "old", "seq": 99, "prev": "old", "a": 1, "é": "ü"}
    line = encode_line(record, "p" * 64, 7)
    head = ('{"a":1,"é":"ü","prev":"' + "p" * 64 + '","seq":7').encode()
    assert line == head + b',"h":"' + sha(head).encode() + b'"}'
    assert J._sha(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_a_signed_line_carries_the_mac_of_everything_before_it() -> None:
    line = encode_line({"a": 1}, GENESIS, 1, KEY)
    head = b'{"a":1,"prev":"' + GENESIS.encode() + b'","seq":1'
    import hmac

    signed = head + b',"mac":"' + hmac.new(KEY, head, hashlib.sha256).hexdigest().encode() + b'"'
    assert line == signed + b',"h":"' + sha(signed).encode() + b'"}'


def test_dates_and_sets_are_stored_and_other_objects_refused() -> None:
    line = encode_line(
        {"t": datetime(2026, 1, 2, 3, 4, 5), "d": date(2026, 1, 2), "s": {1}, "f": frozenset({2})}, GENESIS, 1
    )
    assert line.startswith(b'{"t":"2026-01-02T03:04:05","d":"2026-01-02","s":[1],"f":[2],"prev":')
    assert J._json_default((1, 2)) == [1, 2]
    with pytest.raises(TypeError, match=r"^cannot store object in the journal$"):
        encode_line({"x": object()}, GENESIS, 1)


# --- the default path -----------------------------------------------------------------------------


def test_default_path_expands_a_home_relative_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", "~/s")
    assert J.default_journal_path() == tmp_path / "s" / "deployments.jsonl"
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", "")  # empty: as if unset
    monkeypatch.setenv("XDG_STATE_HOME", "~/x")
    assert J.default_journal_path() == tmp_path / "x" / "deploydeck" / "deployments.jsonl"
    monkeypatch.setenv("XDG_STATE_HOME", "")
    assert J.default_journal_path() == tmp_path / ".local" / "state" / "deploydeck" / "deployments.jsonl"


def test_a_writer_expands_its_path_and_defaults_to_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert FileJournal("~/j.jsonl").path == tmp_path / "j.jsonl"
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path / "st"))
    assert FileJournal().path == tmp_path / "st" / "deployments.jsonl"
    assert FileJournal(None).head is None
    monkeypatch.setenv(KEY_ENV, "from-env")
    assert FileJournal(tmp_path / "k.jsonl")._key == b"from-env"


# --- the tail a writer continues from -------------------------------------------------------------


def test_tail_of_a_missing_an_empty_and_a_one_line_file(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    assert J._read_tail(path) == J._Tail(0, GENESIS, 1, None)
    path.write_bytes(b"")
    assert J._read_tail(path) == J._Tail(0, GENESIS, 1, None)
    (line,) = chain([rec(1)])
    path.write_bytes(line + b"\n")
    assert J._read_tail(path) == J._Tail(len(line) + 1, sha(line), 2, None)


def test_tail_of_a_file_whose_last_line_spans_several_read_blocks(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = chain([rec(1), rec(2, message="x" * 150_000), rec(3, message="y" * 70_000)])
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(data)
    assert J._read_tail(path) == J._Tail(len(data), sha(lines[2]), 4, None)


def test_a_torn_tail_is_found_where_its_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = chain([rec(1), rec(2)])
    whole = lines[0] + b"\n" + lines[1] + b"\n"
    path.write_bytes(whole + b'{"ts":"2026')
    assert J._read_tail(path) == J._Tail(len(whole) + 11, GENESIS, 1, torn_at=len(whole))
    path.write_bytes(b'{"ts":"2026')
    assert J._read_tail(path) == J._Tail(11, GENESIS, 1, torn_at=0)


@pytest.mark.parametrize("last", [b"not json", b"{}", b"[1, 2]", b'{"seq": null}', b'{"seq": "x"}'], ids=str)
def test_a_damaged_last_line_is_numbered_by_counting_lines(tmp_path: Path, last: bytes) -> None:
    path = tmp_path / "j.jsonl"
    # an empty first line: counting must start at the top of the file
    path.write_bytes(b"\n" + b"a\n" * 3 + last + b"\n")
    assert J._read_tail(path) == J._Tail(len(path.read_bytes()), sha(last), 6, None)


def test_a_last_line_number_written_as_text_still_counts(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"seq": "41"}\n')
    assert J._read_tail(path).next_seq == 42


@pytest.mark.parametrize(
    ("data", "end", "start"),
    [
        (b"ab\ncd", 5, 3),
        (b"abcd", 4, 0),
        (b"\nabc", 4, 1),
        (b"ab\ncd\nef", 5, 3),  # only newlines before `end` count
        (b"a\n" + b"x" * 70_000, 70_002, 2),  # across read blocks
        (b"x" * 70_000, 70_000, 0),
        (b"\n" + b"x" * 65_536, 65_537, 1),  # the newline in the very first byte of a second block
    ],
)
def test_line_start(data: bytes, end: int, start: int) -> None:
    assert J._line_start(io.BytesIO(data), end) == start


# --- appending --------------------------------------------------------------------------------------


def test_appends_chain_number_and_anchor_each_line(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "j.jsonl"
    journal = write(path, [rec(1), rec(2, deploy_id="d2"), {"type": "bare"}])
    assert lines_of(path) == chain([rec(1), rec(2, deploy_id="d2"), {"type": "bare"}])
    last = lines_of(path)[-1]
    assert journal.head == Anchor(3, sha(last), "")
    assert read_anchor(path) == Anchor(3, sha(last), "")
    # the writer's cached tail is exactly what reading the file again gives
    assert journal._tail == J._read_tail(path)
    assert verify_journal(path).ok


def test_a_signed_writer_signs_lines_and_anchor(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = write(path, [rec(1), rec(2)], key=KEY)
    assert lines_of(path) == chain([rec(1), rec(2)], KEY)
    anchor = read_anchor(path)
    assert isinstance(anchor, Anchor) and anchor.mac is not None
    assert journal.head == Anchor(2, sha(lines_of(path)[-1]), "d1")
    assert verify_journal(path, key=KEY).ok


def test_two_writers_take_turns_without_breaking_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    first, second = FileJournal(path, fsync=False), FileJournal(path, fsync=False)

    async def go() -> None:
        await first.append(rec(1))
        await second.append(rec(2))
        await first.append(rec(3))  # must notice the file grew under it

    asyncio.run(go())
    assert lines_of(path) == chain([rec(1), rec(2), rec(3)])
    check = verify_journal(path)
    assert check.ok, check.message()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("fdatasync"), real_fdatasync(fd))[1])
    yield calls


def test_a_durable_line_is_synced_with_its_anchor_and_an_observation_is_not(
    tmp_path: Path, syncs: list[str]
) -> None:
    path = tmp_path / "j.jsonl"
    journal = FileJournal(path)
    asyncio.run(journal.append(rec(1)))  # durable by default
    assert syncs == ["fsync", "fdatasync"]
    syncs.clear()
    asyncio.run(journal.append(rec(2), durable=False))
    assert syncs == []
    journal._append_sync(rec(3))  # durable by default here too
    assert syncs == ["fsync", "fdatasync"]
    syncs.clear()
    asyncio.run(FileJournal(tmp_path / "nosync.jsonl", fsync=False).append(rec(1)))
    assert syncs == []


def test_the_file_lock_is_held_while_writing_and_released_after(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "j.jsonl"
    append(path, rec(1))
    with path.open("ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        writer = threading.Thread(target=FileJournal(path, fsync=False)._append_sync, args=(rec(2),))
        writer.start()
        writer.join(0.2)
        assert writer.is_alive() and len(lines_of(path)) == 1  # waits for the other process's lock
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        writer.join(5)
    assert len(lines_of(path)) == 2
    journal = FileJournal(path, fsync=False)
    journal._append_sync(rec(3))
    with path.open("ab") as other:  # our lock is gone once append returns
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# --- a torn tail ------------------------------------------------------------------------------------


def tear(path: Path, fragment: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(fragment)


def test_a_torn_line_is_moved_aside_and_the_recovery_journaled(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2)])
    fragment = b'{"ts":"2026-03-01","deploy_id":"d-7_X","type":"lo'
    tear(path, fragment)
    append(path, rec(3, deploy_id="d3", phase="done"))
    assert (tmp_path / "j.jsonl.torn").read_bytes() == fragment + b"\n"
    records = records_of(path)
    assert len(records) == 4
    recovery = {k: v for k, v in records[2].items() if k not in {"prev", "seq", "h"}}
    assert (
        recovery
        == {
            "ts": TS,
            "phase": "done",
            "deploy_id": "d-7_X",  # whose line it was, read from the fragment
            "step": None,
            "type": "log",
            "level": "warning",
            "source": "journal",
            "message": f"{RECOVERED}: line 3 was torn ({len(fragment)} bytes, sha256 {sha(fragment)[:16]}); "
            "moved to j.jsonl.torn",
        }
    )
    assert records[3]["message"] == "m3" and records[3]["seq"] == 4
    check = verify_journal(path)
    assert check.ok, check.message()
    assert check.notes[0] == f"line 3: {recovery['message']}"
    # a second crash: the fragment joins the first in the .torn file
    tear(path, b'{"ts"')
    append(path, {"type": "bare"})
    assert (tmp_path / "j.jsonl.torn").read_bytes() == fragment + b"\n" + b'{"ts"\n'
    recovery = records_of(path)[4]
    assert (recovery["deploy_id"], recovery["phase"], recovery["ts"]) == ("", "pending", None)
    assert verify_journal(path).ok


def test_a_fragment_without_a_whole_deploy_id_gets_the_records(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1)])
    tear(path, b'{"deploy_id":"abc')
    append(path, rec(2, deploy_id="mine"))
    assert records_of(path)[1]["deploy_id"] == "mine"


def test_a_torn_first_line_of_a_new_log_is_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    fragment = b'{"ts":"20'
    path.write_bytes(fragment)
    append(path, rec(1))
    records = records_of(path)
    assert [r["seq"] for r in records] == [1, 2]
    assert records[0]["message"] == (
        f"{RECOVERED}: line 1 was torn (9 bytes, sha256 {sha(fragment)[:16]}); moved to j.jsonl.torn"
    )
    assert verify_journal(path).ok


def test_cutting_the_anchored_last_line_is_tampering_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2), rec(3)])
    path.write_bytes(path.read_bytes()[:-20])  # the anchor recorded line 3 whole
    append(path, rec(4))
    records = records_of(path)
    assert records[2]["level"] == "error"
    assert str(records[2]["message"]).startswith(
        "tampered: a line the anchor recorded whole was cut: line 3 was torn ("
    )
    check = verify_journal(path)
    assert not check.ok and check.first_bad_line == 3
    assert check.problem.startswith("journal: tampered: a line the anchor recorded whole was cut")


def test_a_torn_line_past_an_unreadable_anchor_is_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1)])
    anchor_path(path).write_text("{not json")
    tear(path, b'{"ts"')
    append(path, rec(2))
    messages = [r["message"] for r in records_of(path)]
    assert messages[1].startswith(f"{RECOVERED}: line 2 was torn")


# --- the end checked before appending ---------------------------------------------------------------


def test_lines_appended_by_hand_are_journaled_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1)])
    lines = chain([rec(1), rec(2)])
    path.write_bytes(b"".join(line + b"\n" for line in lines))  # line 2 not written by deploydeck
    append(path, rec(3, deploy_id="d3", phase="done"))
    records = records_of(path)
    assert len(records) == 4
    found = {k: v for k, v in records[2].items() if k not in {"prev", "seq", "h"}}
    assert found == {
        "ts": TS,
        "phase": "done",
        "deploy_id": "d3",
        "step": None,
        "type": "log",
        "level": "error",
        "source": "journal",
        "message": "tampered: found before appending: anchor file: 1 line(s) appended after the anchored end "
        "(line 1) outside deploydeck (or a process killed between writing a line and its anchor)",
    }
    assert records[3]["message"] == "m3"
    check = verify_journal(path)
    assert check.first_bad_line == 3 and check.problem == f"journal: {found['message']}"


def test_a_log_without_an_anchor_is_reported_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in chain([rec(1)])))
    append(path, rec(2))
    assert records_of(path)[1]["message"] == (
        "tampered: found before appending: anchor file: j.jsonl.anchor is missing, so the end of the log "
        "is not proven (deleted, or the log predates anchors)"
    )


def test_a_new_log_and_an_anchored_log_have_nothing_to_report(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"")
    assert J._audit(path, None, None) == []
    path.write_bytes(b'{"ts')  # only a torn fragment, no anchor: a crash in the first write
    assert J._audit(path, None, 0) == []
    write(path.with_name("k.jsonl"), [rec(1)])
    assert J._audit(path.with_name("k.jsonl"), None, None) == []


def test_an_anchor_over_a_file_cut_to_one_fragment_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2)])
    path.write_bytes(b'{"ts')
    assert J._audit(path, None, 0) == [
        "tampered: found before appending: anchor file: truncated: 2 line(s) removed from the end "
        "(it records line 2, the file ends at 0); the whole deploy d1 is gone"
    ]


def test_an_empty_first_line_without_an_anchor_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"\n" + b'{"ts')
    assert J._audit(path, None, 1) == [
        "tampered: found before appending: anchor file: j.jsonl.anchor is missing, so the end of the log "
        "is not proven (deleted, or the log predates anchors)"
    ]


def killed_before_anchoring(path: Path, key: bytes | None, last: bytes | None = None) -> None:
    """Two lines anchored, a third written but its anchor not (a process killed in between)."""
    write(path, [rec(1), rec(2)], key)
    anchor = anchor_path(path).read_bytes()
    if last is None:
        write(path, [rec(3)], key)
    else:
        tear(path, last + b"\n")
    anchor_path(path).write_bytes(anchor)


def test_signed_lines_past_the_anchor_are_a_recovered_crash_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    killed_before_anchoring(path, KEY)
    assert J._audit(path, KEY, None) == [
        f"{RECOVERED}: 1 signed line(s) after line 2 were written but not anchored"
    ]
    append(path, rec(4), KEY)
    records = records_of(path)
    assert records[3]["level"] == "warning" and records[3]["message"].startswith(RECOVERED)
    check = verify_journal(path, key=KEY)
    assert check.ok, check.message()


def test_lines_past_the_anchor_are_tampering_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    killed_before_anchoring(path, KEY)
    assert J._audit(path, None, None) == [
        "tampered: found before appending: anchor file: 1 line(s) appended after the anchored end (line 2) "
        "outside deploydeck (or a process killed between writing a line and its anchor)"
    ]


def test_an_unsigned_or_forged_line_past_the_anchor_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = chain([rec(1), rec(2), rec(3)], KEY)
    unsigned = encode_line(rec(3), sha(lines[1]), 3)
    killed_before_anchoring(path, KEY, last=unsigned)
    (finding,) = J._audit(path, KEY, None)
    assert finding.startswith("tampered: found before appending: anchor file: 1 line(s) appended after")
    forged = encode_line(rec(3), sha(lines[1]), 3, b"not-the-key")
    path2 = tmp_path / "k.jsonl"
    killed_before_anchoring(path2, KEY, last=forged)
    (finding,) = J._audit(path2, KEY, None)
    assert finding.startswith("tampered: found before appending: anchor file: 1 line(s) appended after")
    # one good signed line and one bad one past the anchor: all of them must be signed
    path3 = tmp_path / "m.jsonl"
    killed_before_anchoring(path3, KEY)
    good = lines_of(path3)[2]
    tear(path3, encode_line(rec(4), sha(good), 4) + b"\n")
    (finding,) = J._audit(path3, KEY, None)
    assert finding.startswith("tampered: found before appending: anchor file: 2 line(s) appended after")


def test_signed_lines_past_an_anchor_that_does_not_match_its_line_are_tampering(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    killed_before_anchoring(path, KEY)
    lines = lines_of(path)
    # line 2 re-signed with other content: the anchor's hash of line 2 no longer matches
    other = chain([rec(1), rec(22), rec(3)], KEY)
    path.write_bytes(b"".join(line + b"\n" for line in [lines[0], other[1], other[2]]))
    findings = J._audit(path, KEY, None)
    assert findings and all(f.startswith("tampered: found before appending: ") for f in findings)
    assert not any(f.startswith(RECOVERED) for f in findings)


def test_a_line_past_the_anchor_with_no_anchored_line_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    killed_before_anchoring(path, KEY)
    lines = lines_of(path)
    del lines[1]  # the anchored line 2 is gone, line 3 (signed) remains
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    findings = J._audit(path, KEY, None)
    assert findings == [
        "tampered: found before appending: anchor file: line 2 is not in the file",
    ]


def test_whole_lines_describe_each_complete_line(tmp_path: Path) -> None:
    good = encode_line(rec(1, deploy_id="dx"), GENESIS, 1)
    data = (
        good
        + b"\n"
        + b'{"seq": true, "deploy_id": 5}\n'
        + b"[1]\n"
        + b"\xff\xfe\n"
        + b'{"seq": 9}\n'
        + b'{"seq": 10, "deploy_id": "to'
    )
    assert J._whole_lines(data) == [
        (good, Line(1, 1, sha(good), "dx")),
        (b'{"seq": true, "deploy_id": 5}', Line(2, None, sha(b'{"seq": true, "deploy_id": 5}'), "5")),
        (b"[1]", Line(3, None, sha(b"[1]"), "")),
        (b"\xff\xfe", Line(4, None, sha(b"\xff\xfe"), "")),
        (b'{"seq": 9}', Line(5, 9, sha(b'{"seq": 9}'), "")),
    ]
    assert J._whole_lines(b'{"seq": 1}\n')[-1][1] == Line(1, 1, sha(b'{"seq": 1}'), "")


# --- what a writer reads, and what it syncs -----------------------------------------------------------


class _CountingPath(type(Path())):  # type: ignore[misc]
    """A path whose files count the bytes read through them."""

    read = 0

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = super().open(*args, **kwargs)
        real_read = fh.read

        def read(n: int = -1) -> bytes:
            data = real_read(n)
            _CountingPath.read += len(data)
            return data

        fh.read = read
        return fh


def test_the_tail_of_a_big_journal_is_read_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = chain([rec(n, message="x" * 1000) for n in range(1, 2001)])
    path.write_bytes(b"".join(line + b"\n" for line in lines))  # 2 MB
    _CountingPath.read = 0
    assert J._read_tail(_CountingPath(path)) == J._Tail(path.stat().st_size, sha(lines[-1]), 2001, None)
    assert _CountingPath.read <= 2 * 65_536


def test_a_one_line_journal_a_byte_longer_than_a_block_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    line = b'{"seq":1,"pad":"' + b"x" * (65_537 - 18) + b'"}'
    assert len(line) == 65_537
    path.write_bytes(line + b"\n")
    assert J._read_tail(path) == J._Tail(65_538, sha(line), 2, None)


def test_a_writer_reads_and_audits_the_file_once_until_another_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jsonl"
    audits: list[Path] = []
    real = J._audit
    monkeypatch.setattr(J, "_audit", lambda *a, **k: (audits.append(a[0]), real(*a, **k))[1])
    first = write(path, [rec(1), rec(2), rec(3)])
    assert len(audits) == 1  # the audit reads the whole file: once per writer, not per line
    append(path, rec(4))  # another writer
    assert len(audits) == 2
    asyncio.run(first.append(rec(5)))
    assert len(audits) == 3
    asyncio.run(first.append(rec(6)))
    assert len(audits) == 3
    assert verify_journal(path).ok


def test_what_the_writer_finds_is_synced_even_before_an_observation(tmp_path: Path, syncs: list[str]) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in chain([rec(1)])))  # no anchor: a finding
    asyncio.run(FileJournal(path).append(rec(2), durable=False))
    assert syncs == ["fsync", "fdatasync"]  # the finding's line, not the observation's
    assert records_of(path)[1]["source"] == "journal"


def test_a_recovery_is_synced_even_before_an_observation(tmp_path: Path, syncs: list[str]) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1)])
    tear(path, b'{"ts"')
    syncs.clear()
    asyncio.run(FileJournal(path).append(rec(2), durable=False))
    assert syncs == ["fsync", "fsync", "fdatasync"]  # the .torn file, then the recovery line
    assert str(records_of(path)[1]["message"]).startswith(RECOVERED)


# --- the key, everywhere it is checked -----------------------------------------------------------------


def unsign_anchor(path: Path) -> None:
    anchor = read_anchor(path)
    assert isinstance(anchor, Anchor)
    J.write_anchor(path, anchor, None, durable=False)


def test_an_anchor_rewritten_without_the_key_is_found_before_appending_and_by_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2)], KEY)
    unsign_anchor(path)
    problem = f"HMAC key: j.jsonl.anchor is not signed with {KEY_ENV}: rewritten by someone without the key"
    assert J._audit(path, KEY, None) == [f"tampered: found before appending: {problem}"]
    assert verify_journal(path, key=KEY).problems == [(2, problem)]
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert verify_journal(path).problems == [(2, problem)]


def test_a_nested_h_field_does_not_hide_a_line_signature(tmp_path: Path) -> None:
    # a record with its own "h" key inside: the line's hash is the last ,"h": of the line
    nested = rec(3, fields={"x": "1", "h": "2"})
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2)], KEY)
    anchor = anchor_path(path).read_bytes()
    write(path, [nested], KEY)
    anchor_path(path).write_bytes(anchor)
    assert J._audit(path, KEY, None) == [
        f"{RECOVERED}: 1 signed line(s) after line 2 were written but not anchored"
    ]
    signed = chain([rec(1), nested], KEY)
    assert verify_lines(signed).notes == [
        f"lines are signed, but {KEY_ENV} is not set here: signatures not checked"
    ]
