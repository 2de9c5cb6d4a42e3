"""The history index: one row per deploy, beside the append-only journal, so `log`, `log dora` and
`log show ID` read a few kilobytes instead of parsing every line ever written.

The journal stays the source of truth. The index (`<journal>.index`, JSON) records how much of
the journal it covers (size, and a hash of the bytes just before that point); on open:
- same size and hash: used as is;
- the journal grew and the covered part is unchanged (appends only): the new lines are indexed and
  the deploys they touch re-summarized from their own lines;
- anything else (missing, unreadable, edited, truncated, another file at that path): rebuilt.
A reader that cannot write the index (read-only directory) uses it in memory.
An edit in place in the middle of the journal (same file, same size, outside the hashed tail) is not
seen here: the hash chain is what proves the journal, and `log verify` reads all of it.

Stdlib only on the fast path; pydantic and the event models load only to (re)build rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.duration_text import format_duration

VERSION = 1
_TAIL = 4096  # bytes hashed just before the covered end: an edit there forces a rebuild
_SUMMARY_TYPES = frozenset(
    {
        "deploy_started",
        "gate_signed_off",
        "traffic_changed",
        "rollback_triggered",
        "phase_changed",
        "finished",
    }
)
_MAX_PROBLEMS = 50


def default_journal_path() -> Path:
    """As core.adapters.journal.default_journal_path (tested equal), without importing the event
    models: `deploydeck log` starts in a fraction of the time."""
    state_dir = os.environ.get("DEPLOYDECK_STATE_DIR")
    if state_dir:
        return Path(state_dir).expanduser() / "deployments.jsonl"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "deploydeck" / "deployments.jsonl"


def simulated_journal_path() -> Path:
    """Where simulated runs (demos, `--sim`) are journaled: beside the real log, never in it, so a
    demo never counts as a deploy in `log` or DORA. Their incident records go beside it too."""
    return default_journal_path().parent / "simulated" / "deployments.jsonl"


# the one duration formatter, stdlib only (log must not import pydantic)
duration_text = format_duration


def format_table(rows: Iterable[Iterable[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_dora_rows(figures: dict[str, dict[str, Any]]) -> str:
    if not figures:
        return "no finished deploys in the window"
    header = ("service", "deploys", "ok", "rolled back", "per week", "per day", "CFR", "MTTR", "lead time")
    rows: list[Iterable[str]] = [header]
    for f in figures.values():
        cfr, mttr, lead = f["change_failure_rate"], f["mttr_s"], f["lead_time_s"]
        rows.append(
            (
                f["service"],
                str(f["deploys"]),
                str(f["completed"]),
                str(f["rolled_back"]),
                f"{f['per_week']:.2f}",
                f"{f['per_day']:.2f}",
                "-" if cfr is None else f"{cfr * 100:.1f} %",
                "-" if mttr is None else duration_text(mttr),
                "-" if lead is None else duration_text(lead),
            )
        )
    return format_table(rows)


def index_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".index")


@dataclass
class HistoryIndex:
    journal: Path
    size: int = 0
    lines: int = 0
    tail: str = ""
    inode: int = 0
    problems: list[list[Any]] = field(default_factory=list)  # [line, text], the first few
    problem_count: int = 0
    #: deploy id → [first byte, end byte, lines]: the range of the journal its lines are in
    spans: dict[str, list[int]] = field(default_factory=dict)
    #: deploy id → its summary as JSON (core.history.DeploySummary); None: no deploy_started line
    summaries: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    has_rows: bool = True  # False: loaded for `show`, the summaries left on disk

    # --- reading ---------------------------------------------------------------------

    def rows(self, *, simulated: bool | None = None) -> list[dict[str, Any]]:
        """Summaries oldest first; simulated False: real deploys only, True: simulated runs only."""
        out = [r for r in self.summaries.values() if r is not None]
        if simulated is not None:
            out = [r for r in out if (r.get("scenario") is not None) == simulated]
        return sorted(out, key=lambda r: r["started"])

    def resolve(self, wanted: str) -> str | None:
        """The id `wanted` names (the id or a unique prefix); None: no such deploy. Raises on ambiguity."""
        if wanted in self.spans:
            return wanted
        matches = [i for i in self.spans if i.startswith(wanted)] if wanted else []
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5])
            raise LookupError(f"'{wanted}' matches {len(matches)} deploys ({shown}); give more of the id")
        return matches[0] if matches else None

    def deploy_lines(self, deploy_id: str) -> list[bytes]:
        """The raw journal lines of one deploy: a read of its byte range, not of the journal."""
        first, end, _ = self.spans[deploy_id]
        with self.journal.open("rb") as f:
            f.seek(first)
            data = f.read(end - first)
        marker = f'"deploy_id":"{deploy_id}"'.encode()
        spaced = f'"deploy_id": "{deploy_id}"'.encode()
        return [line for line in data.split(b"\n") if marker in line or spaced in line]

    # --- persistence ------------------------------------------------------------------

    def _dump(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Two JSON lines: where each deploy's lines are (all `log show ID` reads), then the rows."""
        head = {
            "version": VERSION,
            "journal": {"size": self.size, "lines": self.lines, "tail": self.tail, "inode": self.inode},
            "problems": self.problems,
            "problem_count": self.problem_count,
            "spans": self.spans,
        }
        return head, self.summaries

    def save(self) -> None:
        import tempfile

        target = index_path(self.journal)
        with contextlib.suppress(OSError):  # read-only: the index lives in memory for this run
            fd, tmp = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
            try:
                head, rows = self._dump()
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(json.dumps(head, separators=(",", ":")) + "\n")
                    out.write(json.dumps(rows, separators=(",", ":")) + "\n")
                os.replace(tmp, target)  # readers see the old index or the new one, never half
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


def _tail_hash(f: Any, end: int) -> str:
    start = max(0, end - _TAIL)
    f.seek(start)
    return hashlib.sha256(f.read(end - start)).hexdigest()


def _load(journal: Path, *, rows: bool) -> HistoryIndex | None:
    try:
        with index_path(journal).open("rb") as f:
            data = json.loads(f.readline())
            if data.get("version") != VERSION:
                return None
            summaries = json.loads(f.readline()) if rows else {}
        j = data["journal"]
        return HistoryIndex(
            journal=journal,
            size=int(j["size"]),
            lines=int(j["lines"]),
            tail=str(j["tail"]),
            inode=int(j.get("inode", 0)),
            problems=list(data.get("problems", [])),
            problem_count=int(data.get("problem_count", 0)),
            spans=data["spans"],
            summaries=summaries,
            has_rows=rows,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: rebuilt from the journal


def open_index(journal: Path, *, rows: bool = True) -> HistoryIndex:
    """The index of `journal`, brought up to date (see the module docstring).

    rows False: only where each deploy's lines are (`log show ID`), unless it had to be updated.
    """
    try:
        stat = journal.stat()
    except FileNotFoundError:
        return HistoryIndex(journal=journal)
    index = _load(journal, rows=rows)
    with journal.open("rb") as f:
        if index is not None and index.inode == stat.st_ino and index.size <= stat.st_size:
            if _tail_hash(f, index.size) == index.tail:
                if index.size == stat.st_size:
                    return index
                if not index.has_rows:
                    index = _load(journal, rows=True) or HistoryIndex(journal=journal, inode=stat.st_ino)
                _extend(index, f, stat.st_size)
                index.tail = _tail_hash(f, index.size)
                index.save()
                return index
        fresh = HistoryIndex(journal=journal, inode=stat.st_ino)
        _extend(fresh, f, stat.st_size)
        fresh.tail = _tail_hash(f, fresh.size)
    fresh.save()
    return fresh


def _lines_from(f: Any, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each complete line in [start, end); a partial last line waits."""
    f.seek(start)
    offset = start
    while offset < end:
        line = f.readline(end - offset)
        if not line.endswith(b"\n"):
            return  # being written, or cut: indexed once complete (or reported by log verify)
        yield offset, line[:-1]
        offset += len(line)


def _extend(index: HistoryIndex, f: Any, end: int) -> None:
    touched: dict[str, list[dict[str, Any]]] = {}
    covered = index.size
    for offset, raw in _lines_from(f, index.size, end):
        covered = offset + len(raw) + 1
        index.lines += 1
        problem = None
        record: Any = None
        if not raw.strip():
            problem = "empty line"
        else:
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                problem = "not valid JSON"
            else:
                if not isinstance(record, dict):
                    problem = "not a JSON object"
        if problem is not None:
            index.problem_count += 1
            if len(index.problems) < _MAX_PROBLEMS:
                index.problems.append([index.lines, problem])
            continue
        deploy_id = record.get("deploy_id")
        if not isinstance(deploy_id, str) or not deploy_id:
            continue
        span = index.spans.setdefault(deploy_id, [offset, covered, 0])
        span[1] = covered
        span[2] += 1
        if record.get("type") in _SUMMARY_TYPES:
            touched.setdefault(deploy_id, []).append(record)
        else:
            touched.setdefault(deploy_id, [])
    index.size = covered
    if touched:
        _summarize(index, f, touched)


def _summarize(index: HistoryIndex, f: Any, touched: dict[str, list[dict[str, Any]]]) -> None:
    """Rows for the deploys the new lines belong to. A deploy seen before is re-read from its own
    byte range (its earlier summary-bearing lines); a new one uses the records just parsed."""
    from pydantic import ValidationError

    from core.adapters.journal import parse_event
    from core.history import summarize

    for deploy_id, records in touched.items():
        if index.summaries.get(deploy_id) is not None:
            records = []
            for raw in index.deploy_lines(deploy_id):
                with contextlib.suppress(ValueError):
                    record = json.loads(raw)
                    if isinstance(record, dict) and record.get("type") in _SUMMARY_TYPES:
                        records.append(record)
        events = []
        for record in records:
            with contextlib.suppress(ValidationError, ValueError):
                events.append(parse_event(record))
        summary = summarize(events)
        if summary is None:
            continue  # its deploy_started line is missing (damaged journal): no row, not listed
        summary.events = index.spans[deploy_id][2]
        index.summaries[deploy_id] = summary.model_dump(mode="json") | {"restore_s": summary.restore_s}


# --- DORA on rows (stdlib: `log dora` never loads the event models) ---------------------


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def dora_rows(
    rows: Iterable[dict[str, Any]], now: datetime, *, window_days: float = 28.0
) -> dict[str, dict[str, Any]]:
    """DORA-style figures per service from summary rows; see core.history.DoraFigures for the fields."""
    import statistics

    since = now - timedelta(days=window_days)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("outcome") is not None and since <= _ts(row["started"]) <= now:
            by_service.setdefault(row["service"], []).append(row)
    figures: dict[str, dict[str, Any]] = {}
    for service in sorted(by_service):
        items = by_service[service]
        count: dict[str, int] = {}
        for r in items:
            count[r["outcome"]] = count.get(r["outcome"], 0) + 1
        completed, rolled_back = count.get("completed", 0), count.get("rolled_back", 0)
        shipped = completed + rolled_back
        restores = [r["restore_s"] for r in items if r.get("restore_s") is not None]
        leads = [
            r["duration_s"] for r in items if r["outcome"] == "completed" and r.get("duration_s") is not None
        ]
        figures[service] = {
            "service": service,
            "window_days": window_days,
            "deploys": len(items),
            "completed": completed,
            "rolled_back": rolled_back,
            "blocked": count.get("blocked", 0),
            "aborted": count.get("aborted", 0) + count.get("error", 0),
            "per_week": completed / (window_days / 7.0),
            "per_day": completed / window_days,
            "change_failure_rate": (rolled_back / shipped) if shipped else None,
            "mttr_s": statistics.fmean(restores) if restores else None,
            "lead_time_s": statistics.median(leads) if leads else None,
        }
    return figures
