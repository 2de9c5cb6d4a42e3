"""The deployment log: one append-only JSON Lines file for every deploy, hash-chained.

Each line is an event's ``model_dump(mode="json")`` plus three fields:

* ``prev``: SHA-256 hex of the previous line's exact bytes (64 zeros on line 1), so an
  edited or removed line breaks the chain at the line after it;
* ``seq``: the 1-based line number, so a removed line shows as a gap where it was;
* ``h``: SHA-256 hex of this line's bytes up to (not including) ``,"h":``, so an edit of
  the *last* line, which no following ``prev`` covers, is still caught.

Nothing here is a secret-keyed MAC: the chain catches accidents and casual edits, not a
forger who rewrites every later line. A removed final line is only detectable against a
copy kept elsewhere; a truncated final line (crash mid-write) is detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pydantic import ValidationError

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


def encode_line(record: dict[str, object], prev: str, seq: int) -> bytes:
    """The exact bytes of one journal line (without its newline)."""
    body = {k: v for k, v in record.items() if k not in {"prev", "seq", "h"}}
    body["prev"] = prev
    body["seq"] = seq
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    head = text[:-1].encode("utf-8")  # without the closing brace
    return head + b',"h":"' + _sha(head).encode() + b'"}'


@dataclass
class _Tail:
    size: int  # file size this tail was read at
    last_hash: str
    next_seq: int
    needs_newline: bool


def _read_tail(path: Path) -> _Tail:
    """Hash and seq of the last line, reading backwards so a big journal costs little."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return _Tail(0, GENESIS, 1, False)
    if size == 0:
        return _Tail(0, GENESIS, 1, False)
    with path.open("rb") as fh:
        fh.seek(size - 1)
        ends_with_newline = fh.read(1) == b"\n"
        end = size - 1 if ends_with_newline else size
        buf = b""
        pos = end
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
    return _Tail(size, _sha(last), seq + 1, not ends_with_newline)


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
                if tail is None or tail.size != size:
                    tail = _read_tail(self.path)
                line = encode_line(record, tail.last_hash, tail.next_seq)
                data = (b"\n" if tail.needs_newline else b"") + line + b"\n"
                fh.write(data)
                fh.flush()
                if self._fsync and durable:
                    os.fsync(fh.fileno())
                self._tail = _Tail(size + len(data), _sha(line), tail.next_seq + 1, False)
            finally:
                _unlock_file(fh)


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

    def message(self) -> str:
        if self.ok:
            return f"ok: {self.lines} lines, hash chain intact"
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


def _check_line(
    raw: bytes, expected_seq: int, expected_prev: str, last: bool, truncated: bool
) -> tuple[list[str], int | None]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        if last and truncated:
            return ["truncated: the last line is incomplete (no newline, not valid JSON)"], None
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
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        problems.append("corrupt: no line number ('seq')")
        seq = None
    elif seq > expected_seq:
        gap = seq - expected_seq
        problems.append(f"missing: {gap} line(s) removed before this one (it says it is line {seq})")
    elif seq < expected_seq:
        problems.append(f"out of order: it says it is line {seq}, expected {expected_seq}")
    if record.get("prev") != expected_prev:
        if not problems:
            problems.append("chain broken: 'prev' does not match the hash of the line before it")
    if last and truncated and not problems:
        problems.append("truncated: the last line has no newline")
    return problems, seq


def verify_journal(path: str | Path) -> JournalCheck:
    """Walk the hash chain; the first bad line is the earliest line that was edited or removed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalCheck(ok=False, lines=0, first_bad_line=None, problem=f"{path}: no such file")
    except OSError as exc:
        return JournalCheck(ok=False, lines=0, problem=f"{path}: cannot read: {exc.strerror or exc}")
    lines, truncated = _split_lines(data)
    return verify_lines(lines, truncated)


def verify_lines(lines: list[bytes], truncated: bool = False) -> JournalCheck:
    """The chain check over lines from any store (the file, PostgreSQL): each line's exact bytes,
    in order, without newlines; ``truncated``: the store ends in the middle of the last line."""
    findings: list[tuple[int, str]] = []
    prev = GENESIS
    expected_seq = 1
    for index, raw in enumerate(lines):
        number = index + 1
        is_last = number == len(lines)
        problems, seq = _check_line(raw, expected_seq, prev, is_last, truncated)
        findings.extend((number, problem) for problem in problems)
        prev = _sha(raw)
        # Follow the line's own numbering so one removed line is reported once, not on every later line.
        expected_seq = (seq if seq is not None else expected_seq) + 1
    # An edit of line N leaves line N's own hash wrong and line N+1's prev wrong; the
    # self-hash finding on N comes first, so the report points at the edited line.
    if not findings:
        return JournalCheck(ok=True, lines=len(lines))
    first_line, first_problem = findings[0]
    return JournalCheck(
        ok=False, lines=len(lines), first_bad_line=first_line, problem=first_problem, problems=findings
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
