"""core.adapters.journal, verifying and reading the deployment log (issue 16; written against `make
mutate`'s survivors): each kind of tampering is reported with its line number and its exact reason, findings
in line order with the first one as the problem, the key's checks, torn lines as notes, parse errors by line.
The writer's side (bytes of a line, tail, torn-tail recovery, the audit before appending) is in
tests/test_mutants_journal.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.adapters import journal as J
from core.adapters.journal import (
    GENESIS,
    RECOVERED,
    JournalCheck,
    JournalRead,
    encode_line,
    parse_lines,
    read_journal,
    verify_journal,
    verify_lines,
)
from core.adapters.journal_anchor import KEY_ENV, Line
from tests.test_mutants_journal import KEY, chain, rec, sha, tear, write


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# --- verifying: each line ---------------------------------------------------------------------------


def check(raw: bytes, seq: int = 1, prev: str = GENESIS, signing: J._Signing | None = None) -> list[str]:
    return J._check_line(raw, seq, prev, signing)[0]


def test_a_good_line_has_no_problem_and_gives_back_its_record() -> None:
    line = encode_line(rec(1), GENESIS, 1)
    assert J._check_line(line, 1, GENESIS, None) == ([], json.loads(line))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "corrupt: not valid JSON"),
        (b"\xff\xfe", "corrupt: not valid JSON"),
        (b"[1, 2]", "corrupt: not a JSON object"),
        (b'"text"', "corrupt: not a JSON object"),
    ],
)
def test_a_line_that_is_no_json_object(raw: bytes, problem: str) -> None:
    assert J._check_line(raw, 1, GENESIS, None) == ([problem], None)


def test_a_line_without_its_hash() -> None:
    raw = b'{"prev":"' + GENESIS.encode() + b'","seq":1}'
    assert check(raw) == ["corrupt: no line hash ('h') at the end of the line"]
    # with a key, a line without a hash is not also checked for its signature
    assert check(raw, signing=J._Signing(KEY)) == ["corrupt: no line hash ('h') at the end of the line"]


def test_a_line_whose_hash_moved_was_rewritten() -> None:
    record = json.loads(encode_line(rec(1), GENESIS, 1))
    moved = json.dumps({"h": record.pop("h"), **record}, separators=(",", ":")).encode()
    assert check(moved) == ["edited: the line was rewritten (its hash is not where deploydeck puts it)"]
    spaced = encode_line(rec(1), GENESIS, 1).replace(b',"h":"', b', "h": "')
    assert check(spaced) == ["edited: the line was rewritten (its hash is not where deploydeck puts it)"]


def test_an_edited_line_does_not_match_its_hash() -> None:
    line = encode_line(rec(1), GENESIS, 1).replace(b'"m1"', b'"m2"')
    assert check(line) == ["edited: the line's content does not match its hash"]


def test_signatures_forged_missing_after_signed_ones_and_right() -> None:
    signing = J._Signing(KEY)
    lines = chain([rec(1), rec(2), rec(3)], KEY)
    unsigned = chain([rec(1), rec(2)])
    forged = encode_line(rec(1), GENESIS, 1, b"other-key")
    assert check(unsigned[0], signing=signing) == []  # unsigned before any signed line: nothing to say
    assert not signing.seen_signed
    assert check(forged, signing=signing) == [
        f"HMAC key: forged: the line's signature does not match {KEY_ENV}"
    ]
    assert not signing.seen_signed
    assert check(lines[0], signing=signing) == []
    assert signing.seen_signed
    assert check(unsigned[1], 2, sha(unsigned[0]), signing) == [
        "HMAC key: forged: an unsigned line after signed ones"
    ]
    assert signing.seen_signed  # stays set: every later unsigned line is reported too
    assert check(encode_line(rec(3), sha(lines[1]), 3), 3, sha(lines[1]), signing) == [
        "HMAC key: forged: an unsigned line after signed ones"
    ]
    assert check(lines[2], 3, sha(lines[1]), signing) == []


@pytest.mark.parametrize("seq", [None, True, "3", 2.0])
def test_a_line_without_a_usable_number(seq: object) -> None:
    fields = {"a": 1, "prev": GENESIS} | ({} if seq is None else {"seq": seq})
    body = json.dumps(fields, separators=(",", ":"))[:-1].encode()
    line = body + b',"h":"' + sha(body).encode() + b'"}'
    assert check(line) == ["corrupt: no line number ('seq')"]


def test_removed_lines_and_lines_out_of_order_name_the_numbers() -> None:
    line = encode_line(rec(5), GENESIS, 5)
    assert check(line, 2) == ["missing: 3 line(s) removed before this one (it says it is line 5)"]
    assert check(line, 4) == ["missing: 1 line(s) removed before this one (it says it is line 5)"]
    assert check(line, 5) == []
    assert check(line, 6) == ["out of order: it says it is line 5, expected 6"]


def test_a_broken_chain_is_reported_only_when_nothing_else_is_wrong() -> None:
    line = encode_line(rec(1), "a" * 64, 1)
    assert check(line) == ["chain broken: 'prev' does not match the hash of the line before it"]
    assert check(line, 2) == ["out of order: it says it is line 1, expected 2"]
    assert check(line, prev="a" * 64) == []


# --- verifying: the whole log -----------------------------------------------------------------------


def test_a_good_log_verifies_with_its_line_count() -> None:
    result = verify_lines(chain([rec(1), rec(2), rec(3)]))
    assert result == JournalCheck(ok=True, lines=3)
    assert result.message() == "ok: 3 lines, hash chain intact"


def test_the_message_of_a_check_lists_its_notes_or_names_the_first_bad_line() -> None:
    assert (
        JournalCheck(ok=True, lines=2, notes=["a", "b"]).message() == "ok: 2 lines, hash chain intact; a; b"
    )
    assert JournalCheck(ok=False, lines=2, first_bad_line=2, problem="x").message() == "line 2: x"


def test_every_finding_is_listed_in_line_order_and_the_first_is_the_problem() -> None:
    lines = chain([rec(n) for n in range(1, 7)])
    lines[1] = lines[1].replace(b'"m2"', b'"mX"')  # edited: its own hash, then line 3's prev
    del lines[3]  # line 4 removed: line 5 is now at position 4
    lines[4] = b"{oops"  # line 6 corrupt (at position 5)
    result = verify_lines(lines)
    assert result == JournalCheck(
        ok=False,
        lines=5,
        first_bad_line=2,
        problem="edited: the line's content does not match its hash",
        problems=[
            (2, "edited: the line's content does not match its hash"),
            (3, "chain broken: 'prev' does not match the hash of the line before it"),
            (4, "missing: 1 line(s) removed before this one (it says it is line 5)"),
            (5, "corrupt: not valid JSON"),
        ],
    )
    assert result.message() == "line 2: edited: the line's content does not match its hash"


def test_a_line_that_lost_its_number_keeps_the_count_going() -> None:
    lines = chain([rec(1), {"seq": "gone"}, rec(3)])
    lines[1] = b"{broken"
    result = verify_lines(lines)
    # line 3 says 3 where 3 is expected (no "missing", no "out of order"); its prev was the old line 2
    assert result.problems == [
        (2, "corrupt: not valid JSON"),
        (3, "chain broken: 'prev' does not match the hash of the line before it"),
    ]


def test_a_torn_last_line_is_a_note_and_is_not_checked() -> None:
    lines = [*chain([rec(1), rec(2)]), b'{"ts":"20']
    result = verify_lines(lines, True)
    assert result == JournalCheck(
        ok=True, lines=2, notes=["line 3 is torn (a crash mid-write); the next writer moves it aside"]
    )
    # not torn: the same bytes are a corrupt last line
    assert verify_lines(lines).problems == [(3, "corrupt: not valid JSON")]


def test_journal_lines_about_recovery_are_notes_and_about_tampering_are_findings() -> None:
    recovered = {
        **rec(2),
        "source": "journal",
        "level": "warning",
        "message": f"{RECOVERED}: line 2 was torn",
    }
    tampered = {
        **rec(3),
        "source": "journal",
        "level": "error",
        "message": "tampered: found before appending: x",
    }
    other = {**rec(4), "source": "journal", "message": "something else"}
    not_ours = {**rec(5), "source": "engine", "message": "tampered: says the engine"}
    not_log = {"type": "analysis", "source": "journal", "message": "tampered: not a log line"}
    result = verify_lines(chain([rec(1), recovered, tampered, other, not_ours, not_log]))
    assert result.notes == [f"line 2: {RECOVERED}: line 2 was torn"]
    assert result.problems == [(3, "journal: tampered: found before appending: x")]
    assert result.lines == 6


def test_a_signed_log_needs_the_key_to_check_its_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    signed = chain([rec(1), rec(2)], KEY)
    note = f"lines are signed, but {KEY_ENV} is not set here: signatures not checked"
    assert verify_lines(signed).notes == [note]
    assert verify_lines(signed, key=KEY) == JournalCheck(ok=True, lines=2)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert verify_lines(signed) == JournalCheck(ok=True, lines=2)  # the key from the environment
    assert verify_lines(chain([rec(1)], b"other")).problem == (
        f"HMAC key: forged: the line's signature does not match {KEY_ENV}"
    )


def test_only_the_last_line_decides_whether_the_log_is_signed() -> None:
    first_signed = [chain([rec(1)], KEY)[0]]
    first_signed.append(encode_line(rec(2), sha(first_signed[0]), 2))
    assert verify_lines(first_signed).notes == []
    assert verify_lines([]).notes == []


def test_a_log_with_no_signed_line_fails_with_the_key() -> None:
    result = verify_lines(chain([rec(1), rec(2)]), key=KEY)
    assert result.problems == [
        (1, f"HMAC key: no line is signed with {KEY_ENV}: written without it, or re-chained")
    ]
    assert verify_lines([], key=KEY) == JournalCheck(ok=True, lines=0)


def test_the_end_check_sees_every_whole_line_and_adds_its_findings_and_notes() -> None:
    lines = chain([rec(1, deploy_id="a"), rec(2, deploy_id="b")])
    lines.append(b'{"seq": true}')
    seen: list[list[Line]] = []

    def end(whole: list[Line]) -> tuple[list[tuple[int, str]], list[str]]:
        seen.append(whole)
        return [(1, "end: late finding")], ["end note"]

    result = verify_lines([*lines, b"{torn"], True, end=end)
    assert seen == [
        [
            Line(1, 1, sha(lines[0]), "a"),
            Line(2, 2, sha(lines[1]), "b"),
            Line(3, None, sha(lines[2]), ""),
        ]
    ]
    assert result.problems[0] == (1, "end: late finding")  # sorted by line, ahead of line 3's
    assert result.first_bad_line == 1 and result.problem == "end: late finding"
    assert result.notes == ["line 4 is torn (a crash mid-write); the next writer moves it aside", "end note"]


def test_verify_journal_reads_the_key_and_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.jsonl"
    journal = write(path, [rec(1), rec(2)], KEY)
    assert verify_journal(path, key=KEY).ok
    assert not verify_journal(path, key=b"wrong").ok
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert verify_journal(path).ok
    assert journal.head is not None
    good = verify_journal(path, expect_head=journal.head.head)
    assert good.ok and good.notes[-1] == f"line 2 matches the head given with --head ({journal.head.head})"
    bad = verify_journal(path, expect_head="2:" + "0" * 16)
    assert not bad.ok and bad.problem.startswith("--head: re-chained")


def test_verify_journal_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    assert verify_journal(missing) == JournalCheck(ok=False, lines=0, problem=f"{missing}: no such file")
    assert verify_journal(tmp_path) == JournalCheck(
        ok=False, lines=0, problem=f"{tmp_path}: cannot read: Is a directory"
    )


# --- reading ----------------------------------------------------------------------------------------


def test_read_journal_of_a_missing_file_and_of_a_directory(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none") == JournalRead(events=[], problems=[], lines=0, exists=False)
    assert read_journal(tmp_path) == JournalRead(
        events=[], problems=[(0, f"cannot read {tmp_path}: Is a directory")], lines=0, exists=True
    )


def test_read_journal_reads_events_and_names_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1), rec(2)])
    tear(path, b'{"ts":"20')
    read = read_journal(path)
    assert [e.message for e in read.events] == ["m1", "m2"]  # type: ignore[union-attr]
    assert read.problems == [(3, "truncated line")] and read.lines == 3 and read.exists


def test_parse_lines_names_each_damaged_line() -> None:
    good = encode_line(rec(1), GENESIS, 1)
    read = parse_lines(
        [b"", good, b"  ", b"{bad", b"[1]", b'{"type": "log"}', b"{}", b"\xff", b"{cut"], truncated=True
    )
    assert len(read.events) == 1 and read.events[0].message == "m1"  # type: ignore[union-attr]
    assert read.problems == [
        (1, "empty line"),
        (3, "empty line"),
        (4, "not valid JSON"),
        (5, "not a JSON object"),
        (6, "not a deploydeck event: log.ts: Field required"),
        (7, "not a deploydeck event: (event): Unable to extract tag using discriminator 'type'"),
        (8, "not valid JSON"),
        (9, "truncated line"),
    ]
    assert read.lines == 9 and read.exists
    assert parse_lines([b"{cut"]).problems == [(1, "not valid JSON")]  # not torn: just bad


def test_verify_journal_checks_the_lines_with_the_key_given(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write(path, [rec(1)], KEY)
    wrong = verify_journal(path, key=b"wrong")
    assert (1, f"HMAC key: forged: the line's signature does not match {KEY_ENV}") in wrong.problems


def test_the_signature_note_looks_at_the_last_line_only() -> None:
    note = f"lines are signed, but {KEY_ENV} is not set here: signatures not checked"
    signed = chain([rec(1), rec(2)], KEY)
    assert verify_lines(signed[:1]).notes == [note]
    unsigned_last = [*signed, encode_line(rec(3), sha(signed[1]), 3)]
    assert verify_lines(unsigned_last).notes == []


def test_an_edited_signed_line_reports_the_edit_first() -> None:
    (line,) = chain([rec(1)], KEY)
    edited = line.replace(b'"m1"', b'"m9"')
    result = verify_lines([edited], key=KEY)
    assert result.problems == [
        (1, "edited: the line's content does not match its hash"),
        (1, f"HMAC key: forged: the line's signature does not match {KEY_ENV}"),
        (1, f"HMAC key: no line is signed with {KEY_ENV}: written without it, or re-chained"),
    ]
    assert result.problem == "edited: the line's content does not match its hash"


def test_split_lines() -> None:
    assert J._split_lines(b"") == ([], False)
    assert J._split_lines(b"a\nb\n") == ([b"a", b"b"], False)
    assert J._split_lines(b"a\nb") == ([b"a", b"b"], True)
    assert J._split_lines(b"\n") == ([b""], False)


def test_an_empty_journal_verifies_with_nothing_to_note(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"")
    assert verify_journal(path) == JournalCheck(ok=True, lines=0)
