"""The deployment log: one append-only JSON Lines file for every deploy, hash-chained.

Each line is an event's ``model_dump(mode="json")`` plus three fields:

* ``prev``: SHA-256 hex of the previous line's exact bytes (64 zeros on line 1), so an
  edited or removed line breaks the chain at the line after it;
* ``seq``: the 1-based line number, so a removed line shows as a gap where it was;
* ``h``: SHA-256 hex of this line's bytes up to (not including) ``,"h":``, so an edit of
  the *last* line, which no following ``prev`` covers, is still caught.

With ``DEPLOYDECK_LOG_KEY`` set, a fourth field ``mac`` (HMAC-SHA256 of the line up to it)
sits before ``h``. The chain proves the middle; core.adapters.journal_anchor proves the end
(an anchor file beside the journal, the key, a head quoted in notifications).

A crash mid-write leaves a torn last line (no newline). The next writer moves it to
``<journal>.torn``, cuts the file back to the last whole line and journals that it did, so
the chain goes on and ``log verify`` reports a recovered crash, not corruption. A torn line
the anchor had recorded whole was cut by someone, not by a crash; the recovery line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from core.adapters.journal_anchor import (
    KEY_ENV,
    Anchor,
    Line,
    check_end,
    check_mac,
    is_signed,
    log_key,
    read_anchor,
    sign_head,
    sync_anchor,
    write_anchor,
)
from core.events import Event, parse_event

GENESIS = "0" * 64
_SELF_HASH = re.compile(rb',"h":"([0-9a-f]{64})"}$')


def default_journal_path() -> Path:
    """$DEPLOYDECK_STATE_DIR, else $XDG_STATE_HOME/deploydeck, else ~/.local/state/deploydeck."""
    state_dir = os.environ.get("DEPLOYDECK_STATE_DIR")
    if state_dir:
        return Path(state_dir).expanduser() / "deployments.jsonl"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "deploydeck" / "deployments.jsonl"


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in the journal")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_line(record: dict[str, object], prev: str, seq: int, key: bytes | None = None) -> bytes:
    """The exact bytes of one journal line (without its newline); signed when a key is given."""
    body = {k: v for k, v in record.items() if k not in {"prev", "seq", "mac", "h"}}
    body["prev"] = prev
    body["seq"] = seq
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    head = sign_head(text[:-1].encode("utf-8"), key)  # without the closing brace
    return head + b',"h":"' + _sha(head).encode() + b'"}'


@dataclass
class _Tail:
    size: int  # file size this tail was read at
    last_hash: str
    next_seq: int
    torn_at: int | None = None  # where a torn last line (no newline: a crash mid-write) starts


def _read_tail(path: Path) -> _Tail:
    """Hash and seq of the last line, reading backwards so a big journal costs little."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return _Tail(0, GENESIS, 1)
    if size == 0:
        return _Tail(0, GENESIS, 1)
    with path.open("rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            # torn: the whole lines end at the last newline; the writer quarantines the rest
            start = _line_start(fh, size)
            return _Tail(size, GENESIS, 1, torn_at=start)
        buf = b""
        pos = size - 1
        while pos > 0 and b"\n" not in buf:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
        last = buf[buf.rfind(b"\n") + 1 :]
        seq: int | None = None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            seq = int(json.loads(last)["seq"])
        if seq is None:
            # The last line is damaged: count lines instead so numbering stays true.
            fh.seek(0)
            seq = sum(1 for _ in fh)
    return _Tail(size, _sha(last), seq + 1)


def _line_start(fh: BinaryIO, end: int) -> int:
    """Offset just after the last newline before `end` (0 if there is none)."""
    pos = end
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return pos + cut + 1
    return 0


class FileJournal:
    """Appends events to the deployment log; fsyncs each line before returning.

    Writes are small and synchronous on purpose: the engine must know a state change
    is on disk before it acts on it, and a thread hop would let a VirtualClock run
    ahead while the write is in flight. An asyncio lock keeps one writer per process;
    an advisory file lock (where available) keeps separate processes from interleaving.
    """

    def __init__(self, path: str | Path | None = None, *, fsync: bool = True) -> None:
        self.path = Path(path).expanduser() if path else default_journal_path()
        self._fsync = fsync
        self._lock = asyncio.Lock()
        self._tail: _Tail | None = None
        self._key = log_key()
        self.head: Anchor | None = None  # the last line written by this writer (for notifications)

    async def append(self, record: dict[str, object], *, durable: bool = True) -> None:
        """Write one line. ``durable=False`` (observations, not state changes) skips the fsync;
        the next durable line's fsync covers it."""
        async with self._lock:
            self._append_sync(record, durable)

    def _append_sync(self, record: dict[str, object], durable: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            _lock_file(fh)
            try:
                size = fh.seek(0, os.SEEK_END)
                tail = self._tail
                found: list[str] = []
                if tail is None or tail.size != size:
                    seen, tail = tail, _read_tail(self.path)
                    # first write of this process (or after another's): does the file still end
                    # where the anchor says? If not, say so in the log itself before the anchor
                    # moves on, so the evidence outlives this append. After another writer's lines
                    # only those are read: an agent's runs each write the one log, and re-reading
                    # all of it on every turn was quadratic (most of the agent's CPU at 50 runs)
                    grew = seen if seen is not None and tail.torn_at is None and size > seen.size else None
                    found = _audit(self.path, self._key, tail.torn_at, since=grew)
                if tail.torn_at is not None:
                    tail = self._quarantine(fh, tail, record)
                for message in found:
                    tail = self._write(fh, tail, _journal_line(record, message), durable=True)
                self._tail = self._write(fh, tail, record, durable)
            finally:
                _unlock_file(fh)

    def _write(self, fh: BinaryIO, tail: _Tail, record: dict[str, object], durable: bool) -> _Tail:
        line = encode_line(record, tail.last_hash, tail.next_seq, self._key)
        fh.write(line + b"\n")
        fh.flush()
        # the anchor follows the line at once, before the (slow) fsyncs: a process killed between
        # the two leaves one line past the anchor, and that window is two syscalls wide
        self.head = Anchor(tail.next_seq, _sha(line), str(record.get("deploy_id", "")))
        write_anchor(self.path, self.head, self._key, durable=False)
        if self._fsync and durable:
            os.fsync(fh.fileno())
            sync_anchor(self.path)
        return _Tail(tail.size + len(line) + 1, _sha(line), tail.next_seq + 1)

    def _quarantine(self, fh: BinaryIO, tail: _Tail, record: dict[str, object]) -> _Tail:
        """Move a torn last line aside, cut the file back to whole lines, journal that."""
        assert tail.torn_at is not None
        with self.path.open("rb") as reader:
            reader.seek(tail.torn_at)
            torn = reader.read()
        torn_file = self.path.with_name(self.path.name + ".torn")
        with torn_file.open("ab") as out:
            out.write(torn + b"\n")
            out.flush()
            os.fsync(out.fileno())
        fh.truncate(tail.torn_at)
        fh.flush()
        clean = _read_tail(self.path)
        anchor = read_anchor(self.path)
        # a line the anchor had recorded whole did not tear in a crash: someone cut it
        cut = isinstance(anchor, Anchor) and anchor.seq >= clean.next_seq
        owner = re.search(rb'"deploy_id":"([0-9A-Za-z_-]{1,64})"', torn)
        note = (
            f"{'tampered: a line the anchor recorded whole was cut' if cut else RECOVERED}: "
            f"line {clean.next_seq} was torn ({len(torn)} bytes, sha256 {_sha(torn)[:16]}); "
            f"moved to {torn_file.name}"
        )
        recovery = _journal_line(record, note, deploy_id=owner.group(1).decode() if owner else None)
        return self._write(fh, clean, recovery, durable=True)


def _journal_line(record: dict[str, object], message: str, deploy_id: str | None = None) -> dict[str, object]:
    """A line the journal writes about itself, stamped with the time of the record it precedes."""
    return {
        "ts": record.get("ts"),
        "phase": record.get("phase", "pending"),
        "deploy_id": deploy_id if deploy_id is not None else record.get("deploy_id", ""),
        "step": None,
        "type": "log",
        "level": "warning" if message.startswith(RECOVERED) else "error",
        "source": "journal",
        "message": message,
    }


def _whole_lines(data: bytes) -> list[tuple[bytes, Line]]:
    """Each complete line with what the end checks need of it (a torn tail left out)."""
    lines, torn = _split_lines(data)
    if torn:
        lines = lines[:-1]
    out: list[tuple[bytes, Line]] = []
    for number, raw in enumerate(lines, start=1):
        record: object = None
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            record = json.loads(raw)
        fields = record if isinstance(record, dict) else {}
        seq = fields.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        out.append((raw, Line(number, seq, _sha(raw), str(fields.get("deploy_id", "")))))
    return out


def _lines_after(path: Path, since: _Tail) -> list[tuple[bytes, Line]] | None:
    """The whole lines written after ``since`` (numbered on from it), or None when the first of them
    does not chain on from its last line (the file was replaced or rewritten: read it all)."""
    with path.open("rb") as fh:
        fh.seek(since.size)
        data = fh.read()
    whole = _whole_lines(data)
    if not whole:
        return None
    first: object = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        first = json.loads(whole[0][0])
    if (
        not isinstance(first, dict)
        or first.get("prev") != since.last_hash
        or first.get("seq") != since.next_seq
    ):
        return None
    offset = since.next_seq - 1
    return [(raw, replace(line, number=line.number + offset)) for raw, line in whole]


def _audit(path: Path, key: bytes | None, torn_at: int | None, since: _Tail | None = None) -> list[str]:
    """What the writer finds wrong with the file's end before appending (journaled as 'tampered').

    ``since``: where this writer's own last line ended, when the file has grown past it; then only
    the lines after it are read, if they chain on from that line and the anchor is among them (else
    the whole file, as on a first write). Every check here is about the end and the anchored line.

    With the key, lines past the anchor that are all signed are a process killed between a
    line and its anchor (a recovered crash); without it nobody can tell that from a forgery.
    """
    anchor = read_anchor(path)
    if anchor is None and torn_at == 0:
        return []
    whole = None
    if since is not None and isinstance(anchor, Anchor) and anchor.seq >= since.next_seq:
        whole = _lines_after(path, since)
    if whole is None:
        whole = _whole_lines(path.read_bytes())
    if not whole and anchor is None:
        return []  # a new log
    if isinstance(anchor, Anchor) and key is not None and whole:
        after = [(raw, line) for raw, line in whole if line.seq is not None and line.seq > anchor.seq]
        at = next((line for _, line in whole if line.seq == anchor.seq), None)
        if (
            after
            and at is not None
            and at.hash == anchor.hash
            and all(check_mac(raw[: raw.rfind(b',"h":')], key) is None for raw, _ in after)
        ):
            return [
                f"{RECOVERED}: {len(after)} signed line(s) after line {anchor.seq} were written but not anchored"
            ]
    findings, _ = check_end(path, [line for _, line in whole], key)
    return [f"tampered: found before appending: {problem}" for _, problem in findings]


#: how a recovery line begins; `log verify` reports such lines as recovered crashes
RECOVERED = "recovered from a crash"


def _lock_file(fh: object) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the documented rule
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # type: ignore[attr-defined]


def _unlock_file(fh: object) -> None:
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)  # type: ignore[attr-defined]


# --- reading and verifying -------------------------------------------------------


@dataclass
class JournalCheck:
    ok: bool
    lines: int
    first_bad_line: int | None = None
    problem: str = ""
    problems: list[tuple[int, str]] = field(default_factory=list)  # every finding, in line order
    notes: list[str] = field(default_factory=list)  # recovered crashes, what proved the end

    def message(self) -> str:
        if self.ok:
            return "; ".join([f"ok: {self.lines} lines, hash chain intact", *self.notes])
        return f"line {self.first_bad_line}: {self.problem}"


@dataclass
class JournalRead:
    events: list[Event]
    problems: list[tuple[int, str]]  # (line number, what is wrong), the rest stays readable
    lines: int
    exists: bool = True


def _split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """Lines without newlines, and whether the file ends in the middle of a line."""
    if not data:
        return [], False
    truncated = not data.endswith(b"\n")
    lines = data.split(b"\n")
    if not truncated:
        lines = lines[:-1]
    return lines, truncated


@dataclass
class _Signing:
    """Per-line HMAC state while walking the file (only when a key is set)."""

    key: bytes
    seen_signed: bool = False


def _check_line(
    raw: bytes, expected_seq: int, expected_prev: str, signing: _Signing | None
) -> tuple[list[str], dict[str, object] | None]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ["corrupt: not valid JSON"], None
    if not isinstance(record, dict):
        return ["corrupt: not a JSON object"], None
    problems: list[str] = []
    match = _SELF_HASH.search(raw)
    if match is None:
        problems.append(
            "edited: the line was rewritten (its hash is not where deploydeck puts it)"
            if "h" in record
            else "corrupt: no line hash ('h') at the end of the line"
        )
    elif _sha(raw[: match.start()]) != match.group(1).decode():
        problems.append("edited: the line's content does not match its hash")
    if signing is not None and match is not None:
        wrong = check_mac(raw[: match.start()], signing.key)
        if wrong == "mismatch":
            problems.append(f"HMAC key: forged: the line's signature does not match {KEY_ENV}")
        elif wrong == "unsigned" and signing.seen_signed:
            problems.append("HMAC key: forged: an unsigned line after signed ones")
        signing.seen_signed |= wrong is None
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        problems.append("corrupt: no line number ('seq')")
    elif seq > expected_seq:
        gap = seq - expected_seq
        problems.append(f"missing: {gap} line(s) removed before this one (it says it is line {seq})")
    elif seq < expected_seq:
        problems.append(f"out of order: it says it is line {seq}, expected {expected_seq}")
    if record.get("prev") != expected_prev:
        if not problems:
            problems.append("chain broken: 'prev' does not match the hash of the line before it")
    return problems, record


def verify_journal(
    path: str | Path, *, key: bytes | None = None, expect_head: str | None = None
) -> JournalCheck:
    """Walk the hash chain, then prove the end against the anchor file (and the key, and a head
    quoted elsewhere). The first bad line is the earliest line that was edited or removed.

    ``key`` defaults to ``$DEPLOYDECK_LOG_KEY``; ``expect_head`` is ``N:HASH`` as notifications
    quote it. A torn last line (a crash mid-write) and lines that record a recovered crash are
    notes, not findings, unless the anchor shows the torn line had been whole.
    """
    path = Path(path)
    key = key if key is not None else log_key()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalCheck(ok=False, lines=0, first_bad_line=None, problem=f"{path}: no such file")
    except OSError as exc:
        return JournalCheck(ok=False, lines=0, problem=f"{path}: cannot read: {exc.strerror or exc}")
    lines, torn = _split_lines(data)
    return verify_lines(lines, torn, key=key, end=lambda whole: check_end(path, whole, key, expect_head))


def verify_lines(
    lines: list[bytes],
    truncated: bool = False,
    *,
    key: bytes | None = None,
    end: Callable[[list[Line]], tuple[list[tuple[int, str]], list[str]]] | None = None,
) -> JournalCheck:
    """The chain check over lines from any store (the file, PostgreSQL): each line's exact bytes,
    in order, without newlines; ``truncated``: the store ends in the middle of the last line (a
    torn write); ``key`` defaults to ``$DEPLOYDECK_LOG_KEY``; ``end`` proves the store's end (the
    file's anchor) from the whole lines."""
    key = key if key is not None else log_key()
    notes: list[str] = []
    if truncated:
        notes.append(f"line {len(lines)} is torn (a crash mid-write); the next writer moves it aside")
        lines = lines[:-1]
    findings: list[tuple[int, str]] = []
    whole: list[Line] = []
    signing = _Signing(key) if key is not None else None
    prev = GENESIS
    expected_seq = 1
    for index, raw in enumerate(lines):
        number = index + 1
        problems, record = _check_line(raw, expected_seq, prev, signing)
        findings.extend((number, problem) for problem in problems)
        seq = record.get("seq") if record else None
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        whole.append(Line(number, seq, _sha(raw), str((record or {}).get("deploy_id", ""))))
        if record and record.get("type") == "log" and record.get("source") == "journal":
            message = str(record.get("message", ""))
            if message.startswith(RECOVERED):
                notes.append(f"line {number}: {message}")
            elif message.startswith("tampered"):
                findings.append((number, f"journal: {message}"))
        prev = _sha(raw)
        # Follow the line's own numbering so one removed line is reported once, not on every later line.
        expected_seq = (seq if seq is not None else expected_seq) + 1
    if signing is not None and whole and not signing.seen_signed:
        findings.append((1, f"HMAC key: no line is signed with {KEY_ENV}: written without it, or re-chained"))
    elif signing is None and any(is_signed(raw[: raw.rfind(b',"h":')]) for raw in lines[-1:]):
        notes.append(f"lines are signed, but {KEY_ENV} is not set here: signatures not checked")
    if end is not None:
        end_findings, end_notes = end(whole)
        findings.extend(end_findings)
        notes.extend(end_notes)
    # An edit of line N leaves line N's own hash wrong and line N+1's prev wrong; the
    # self-hash finding on N comes first, so the report points at the edited line.
    findings.sort(key=lambda f: f[0])
    if not findings:
        return JournalCheck(ok=True, lines=len(lines), notes=notes)
    first_line, first_problem = findings[0]
    return JournalCheck(
        ok=False,
        lines=len(lines),
        first_bad_line=first_line,
        problem=first_problem,
        problems=findings,
        notes=notes,
    )


def read_journal(path: str | Path) -> JournalRead:
    """Every event that parses; damaged lines are listed by number and skipped."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalRead(events=[], problems=[], lines=0, exists=False)
    except OSError as exc:
        return JournalRead(events=[], problems=[(0, f"cannot read {path}: {exc.strerror or exc}")], lines=0)
    lines, truncated = _split_lines(data)
    return parse_lines(lines, truncated)


def parse_lines(lines: list[bytes], truncated: bool = False) -> JournalRead:
    """Every event that parses from lines of any store; damaged lines are listed by number."""
    events: list[Event] = []
    problems: list[tuple[int, str]] = []
    for index, raw in enumerate(lines):
        number = index + 1
        if not raw.strip():
            problems.append((number, "empty line"))
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            last_cut = truncated and number == len(lines)
            problems.append((number, "truncated line" if last_cut else "not valid JSON"))
            continue
        if not isinstance(record, dict):
            problems.append((number, "not a JSON object"))
            continue
        try:
            events.append(parse_event(record))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(event)"
            problems.append((number, f"not a deploydeck event: {where}: {first['msg']}"))
    return JournalRead(events=events, problems=problems, lines=len(lines))
