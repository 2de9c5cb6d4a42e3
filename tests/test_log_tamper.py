"""Issue 13 item 3 and issue 11 item 7: `log verify` proves the log's end, and survives a crash.

Each tamper a person with write access to the journal would try, and the anchor that must
catch it: the anchor file beside the journal, the HMAC key (DEPLOYDECK_LOG_KEY), or a head
quoted in a notification (`log verify --head`). A torn last line from a crash mid-write is
quarantined on the next append and reported as a recovered crash, not corruption.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from core.adapters.journal import GENESIS, FileJournal, encode_line, read_journal, verify_journal
from core.adapters.journal_anchor import anchor_path
from tests.test_history import make_deploy
from tui.commands import log_cmd

KEY = b"k3y-for-tests-only"


def write(path: Path, deploy_ids: list[str]) -> FileJournal:
    journal = FileJournal(path, fsync=False)

    async def go() -> None:
        for deploy_id in deploy_ids:
            for event in make_deploy(deploy_id):
                await journal.append(event.model_dump(mode="json"))

    asyncio.run(go())
    return journal


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def put(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def rechain(records: list[dict[str, object]], key: bytes | None = None) -> list[bytes]:
    """What a forger does: a fresh, internally perfect chain from genesis."""
    out: list[bytes] = []
    prev = GENESIS
    for seq, record in enumerate(records, start=1):
        line = encode_line(record, prev, seq, key)
        out.append(line)
        import hashlib

        prev = hashlib.sha256(line).hexdigest()
    return out


def verify_cli(path: Path, *extra: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="deploydeck")
    log_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["log", "verify", "--journal", str(path), *extra])
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = int(args.func(args))
    return code, buf.getvalue()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "deployments.jsonl"
    write(path, ["d1", "d2"])
    return path


def test_an_untouched_log_verifies_and_says_the_anchor_proves_its_end(journal: Path) -> None:
    check = verify_journal(journal)
    assert check.ok, check.problems
    assert any("end proven by the anchor file" in note for note in check.notes)
    code, out = verify_cli(journal)
    assert code == 0 and "end proven by the anchor file" in out


def test_tail_truncation_is_caught_by_the_anchor(journal: Path) -> None:
    lines = lines_of(journal)
    put(journal, lines[:-2])
    check = verify_journal(journal)
    assert not check.ok
    assert check.problem.startswith("anchor file: truncated: 2 line(s) removed from the end")
    assert check.first_bad_line == len(lines) - 1
    code, out = verify_cli(journal)
    assert code == 1 and "anchor file: truncated" in out


def test_a_whole_deploy_removed_at_the_end_is_caught_and_named(journal: Path) -> None:
    lines = lines_of(journal)
    kept = [raw for raw in lines if json.loads(raw)["deploy_id"] != "d2"]
    assert len(kept) < len(lines)
    put(journal, kept)
    check = verify_journal(journal)
    assert not check.ok
    assert "anchor file: truncated" in check.problem and "the whole deploy d2 is gone" in check.problem


def test_a_forged_append_is_caught_by_the_anchor(journal: Path) -> None:
    lines = lines_of(journal)
    import hashlib

    last = json.loads(lines[-1])
    forged = dict(last, message="all good", type="log", level="info", source="engine")
    forged = {k: v for k, v in forged.items() if k not in {"outcome", "reason", "duration_s"}}
    line = encode_line(forged, hashlib.sha256(lines[-1]).hexdigest(), int(last["seq"]) + 1)
    put(journal, [*lines, line])
    check = verify_journal(journal)
    assert not check.ok
    assert check.first_bad_line == len(lines) + 1
    assert check.problem.startswith("anchor file: 1 line(s) appended after the anchored end")


def test_a_log_rechained_from_scratch_is_caught_by_the_anchor(journal: Path) -> None:
    records = [json.loads(raw) for raw in lines_of(journal)]
    for record in records:
        if record.get("actor") == "alice":
            record["actor"] = "mallory"  # the edit the forger wanted
    put(journal, rechain(records))
    check = verify_journal(journal)
    assert not check.ok
    assert all(not p.startswith(("edited", "chain broken", "missing")) for _, p in check.problems)
    assert check.problem.startswith("anchor file: re-chained")


def test_with_the_key_a_forger_who_also_rewrites_the_anchor_is_caught(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEPLOYDECK_LOG_KEY", KEY.decode())
    path = tmp_path / "j.jsonl"
    write(path, ["d1", "d2"])
    assert verify_journal(path).ok
    records = [json.loads(raw) for raw in lines_of(path)]
    forged = rechain(records[:-3])  # drop the end, re-chain without the key
    put(path, forged)
    import hashlib

    last = json.loads(forged[-1])
    anchor = {
        "seq": last["seq"],
        "hash": hashlib.sha256(forged[-1]).hexdigest(),
        "deploy_id": last["deploy_id"],
    }
    anchor_path(path).write_text(json.dumps(anchor), encoding="utf-8")
    check = verify_journal(path)
    assert not check.ok
    caught = [p for _, p in check.problems]
    assert any(p.startswith("HMAC key: no line is signed") for p in caught), caught
    assert any(p.startswith("HMAC key:") and ".anchor is not signed" in p for p in caught), caught
    # without the key the same forgery would pass: that is what the key is for
    monkeypatch.delenv("DEPLOYDECK_LOG_KEY")
    assert verify_journal(path).ok


def test_with_the_key_a_forged_line_is_caught_even_mid_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEPLOYDECK_LOG_KEY", KEY.decode())
    path = tmp_path / "j.jsonl"
    write(path, ["d1"])
    lines = lines_of(path)
    records = [json.loads(raw) for raw in lines]
    records[3]["note"] = "forged"
    # the forger re-chains from line 4 on with the right hashes, signs with a guessed key
    head = rechain(records, key=b"wrong-key")
    put(path, head)
    check = verify_journal(path)
    assert not check.ok
    assert check.first_bad_line == 1 and "HMAC key: forged" in check.problem


def test_a_head_quoted_in_a_notification_catches_what_the_anchor_cannot(journal: Path) -> None:
    # the forger cut the last deploy and rewrote the anchor to match: no key in use
    quoted = FileJournal(journal)  # a new writer learns the head only by writing
    lines = lines_of(journal)
    import hashlib

    head = f"{json.loads(lines[-1])['seq']}:{hashlib.sha256(lines[-1]).hexdigest()[:16]}"
    kept = lines[: len(lines) // 2]
    put(journal, kept)
    last = json.loads(kept[-1])
    anchor_path(journal).write_text(
        json.dumps(
            {"seq": last["seq"], "hash": hashlib.sha256(kept[-1]).hexdigest(), "deploy_id": last["deploy_id"]}
        ),
        encoding="utf-8",
    )
    assert verify_journal(journal).ok  # the anchor alone is fooled
    check = verify_journal(journal, expect_head=head)
    assert not check.ok and check.problem.startswith("--head: truncated")
    code, out = verify_cli(journal, "--head", head)
    assert code == 1 and "--head: truncated" in out
    assert verify_cli(journal, "--head", "nonsense")[0] == 2
    del quoted


async def test_every_notification_quotes_the_journal_head(tmp_path: Path) -> None:
    from core.clock import VirtualClock
    from core.session import demo_plan, open_session

    path = tmp_path / "j.jsonl"
    session = await open_session(
        demo_plan("bad-canary"),
        actor="alice",
        clock=VirtualClock(),
        journal_path=path,
        interactive=False,
        approvals=["rollback-plan", "dashboards-reviewed"],
    )
    try:
        await session.rollout.run()
    finally:
        await session.close()
    sent = session.world.notifier.sent  # type: ignore[attr-defined]
    assert sent
    for message in sent:
        head = message.fields.get("journal head")
        assert head, message
        assert verify_journal(path, expect_head=head).ok


def test_a_missing_anchor_is_reported(journal: Path) -> None:
    anchor_path(journal).unlink()
    check = verify_journal(journal)
    assert not check.ok and "anchor file:" in check.problem and "missing" in check.problem


# --- torn last line (issue 11 item 7) ---------------------------------------------------------


def crash_mid_write(path: Path) -> bytes:
    """What a crash mid-append leaves: part of a line, no newline, the anchor not yet moved."""
    partial = b'{"ts":"2026-11-24T10:00:00Z","phase":"canary","deploy_id":"d2","step":1,"type":"analy'
    with path.open("ab") as fh:
        fh.write(partial)
    return partial


def test_a_torn_last_line_is_a_crash_not_corruption(journal: Path) -> None:
    crash_mid_write(journal)
    check = verify_journal(journal)
    assert check.ok, check.problems
    assert any("torn (a crash mid-write)" in note for note in check.notes)


def test_a_torn_line_is_quarantined_on_the_next_append_and_appends_continue(journal: Path) -> None:
    before = len(lines_of(journal))
    partial = crash_mid_write(journal)
    write(journal, ["d3"])
    torn_file = journal.with_name(journal.name + ".torn")
    assert torn_file.read_bytes() == partial + b"\n"
    read = read_journal(journal)
    assert read.problems == []
    recovery = read.events[before]
    assert recovery.type == "log" and recovery.source == "journal" and recovery.level == "warning"  # type: ignore[union-attr]
    assert recovery.message.startswith("recovered from a crash: line") and ".torn" in recovery.message  # type: ignore[union-attr]
    assert recovery.deploy_id == "d2"  # the deploy the torn line belonged to
    assert read.events[-1].deploy_id == "d3"
    check = verify_journal(journal)
    assert check.ok, check.problems
    assert any("recovered from a crash" in note for note in check.notes)
    code, out = verify_cli(journal)
    assert code == 0 and "recovered from a crash" in out


# --- the evidence outlives the next append --------------------------------------------------------


def _forge_append(path: Path) -> None:
    import hashlib

    lines = lines_of(path)
    last = json.loads(lines[-1])
    forged = {
        "ts": last["ts"],
        "phase": last["phase"],
        "deploy_id": last["deploy_id"],
        "step": None,
        "type": "log",
        "level": "info",
        "source": "engine",
        "message": "all good",
    }
    put(path, [*lines, encode_line(forged, hashlib.sha256(lines[-1]).hexdigest(), int(last["seq"]) + 1)])


def test_a_forged_append_is_still_caught_after_deploydeck_appends_again(journal: Path) -> None:
    forged_at = len(lines_of(journal)) + 1
    _forge_append(journal)
    write(journal, ["d3"])  # the next deploy moves the anchor on
    check = verify_journal(journal)
    assert not check.ok
    assert check.first_bad_line == forged_at + 1  # the line the writer journaled about it
    assert check.problem.startswith(
        "journal: tampered: found before appending: anchor file: 1 line(s) appended"
    )


def test_a_truncation_is_still_caught_after_deploydeck_appends_again(journal: Path) -> None:
    lines = lines_of(journal)
    put(journal, lines[:-3])
    write(journal, ["d3"])
    check = verify_journal(journal)
    assert (
        not check.ok
        and "tampered: found before appending: anchor file: truncated: 3 line(s)" in check.problem
    )


def test_with_the_key_a_kill_between_line_and_anchor_is_a_recovered_crash(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    monkeypatch.setenv("DEPLOYDECK_LOG_KEY", KEY.decode())
    path = tmp_path / "j.jsonl"
    write(path, ["d1"])
    lines = lines_of(path)
    last = json.loads(lines[-1])
    record = {k: v for k, v in last.items() if k not in {"prev", "seq", "mac", "h"}}
    # the line made it to the file, its anchor did not (the process died in between)
    put(path, [*lines, encode_line(record, hashlib.sha256(lines[-1]).hexdigest(), int(last["seq"]) + 1, KEY)])
    assert not verify_journal(path).ok  # before anyone appends: one line past the anchor
    write(path, ["d2"])
    check = verify_journal(path)
    assert check.ok, check.problems
    assert any("were written but not anchored" in note for note in check.notes)
