"""`deploydeck log`: the deployment history on the terminal (plain text, no Textual).

Exit codes: 0 ok; 1 the journal failed verification; 2 bad input (no such deploy,
unreadable journal, bad arguments).

`log`, `log dora` and `log show` read the history index beside the journal
(core/history_index.py) and load the event models only for the one deploy they show.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.history_index import (
    HistoryIndex,
    default_journal_path,
    dora_rows,
    duration_text,
    format_dora_rows,
    format_table,
    open_index,
    simulated_journal_path,
)

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    log = subparsers.add_parser("log", help="list deploys, show or export one, verify the log, DORA figures")
    log.add_argument(
        "--journal", type=Path, default=None, help="journal file (default: %(default)s → state dir)"
    )
    log.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="the team's log in PostgreSQL (postgresql://USER@HOST/DB; default: $DEPLOYDECK_DATABASE_URL "
        "when no --journal is given; put the password in $PGPASSWORD or that variable, not here)",
    )
    log.add_argument("--json", action="store_true", help="one JSON object per deploy")
    log.add_argument(
        "--sim", action="store_true", help="the simulated runs (demos, --sim), journaled apart from deploys"
    )
    log.set_defaults(func=_guarded(cmd_list))
    sub = log.add_subparsers(dest="log_command", metavar="{show,export,verify,dora}")

    def add(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=description)
        # SUPPRESS: a value given before the sub-command (`log --journal X show`) is kept.
        parser.add_argument("--journal", type=Path, default=argparse.SUPPRESS, help="journal file")
        parser.add_argument("--sim", action="store_true", default=argparse.SUPPRESS, help="simulated runs")
        parser.add_argument("--database", metavar="URL", default=argparse.SUPPRESS, help="PostgreSQL log")
        return parser

    show = add("show", "one deploy's timeline")
    show.add_argument(
        "deploy_id", nargs="?", default=None, help="deploy id or a unique prefix (default: the latest)"
    )
    show.add_argument("--all", action="store_true", help="include every healthy analysis sample")
    show.set_defaults(func=_guarded(cmd_show))

    export = add("export", "audit record of one deploy")
    export.add_argument("deploy_id", help="deploy id or a unique prefix of it")
    export.add_argument("--format", choices=("md", "json"), default="md", dest="fmt")
    export.add_argument(
        "-o", "--output", type=Path, default=None, help="write to this file instead of stdout"
    )
    export.set_defaults(func=_guarded(cmd_export))

    verify = add(
        "verify",
        "check the hash chain and the log's end: exit 1 on an edited, removed, forged or truncated line",
        description="Walk the hash chain, then prove the end against the anchor file beside the journal, "
        "the HMAC signatures (when DEPLOYDECK_LOG_KEY is set) and --head. Each finding names what caught it. "
        "A torn last line from a crash is reported as a crash, not as corruption.",
    )
    verify.add_argument(
        "--head",
        default=None,
        metavar="LINE:HASH",
        help="a head recorded outside this machine (every notification quotes one): the log must contain it",
    )
    verify.set_defaults(func=_guarded(cmd_verify))

    dora_p = add("dora", "deployment frequency, change failure rate, time to restore per service")
    dora_p.add_argument("--days", type=float, default=28.0, help="window ending now (default 28)")
    dora_p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    dora_p.set_defaults(func=_guarded(cmd_dora))


def _journal(args: argparse.Namespace) -> Path:
    path = getattr(args, "journal", None)
    if path:
        return Path(path)
    return simulated_journal_path() if _sim(args) else default_journal_path()


class _Log:
    """The log a command reads: the journal file, or the team's PostgreSQL log (core.adapters.
    journal_pg) fetched once into a private temporary file: its lines are byte-identical to the
    file journal's, so the index, the readers and the exports are the same code for both."""

    def __init__(self, args: argparse.Namespace) -> None:
        from core.adapters.journal_pg import DATABASE_ENV
        from core.adapters.log_source import FileLog, LogSource, open_log

        database = getattr(args, "database", None)
        self.source: LogSource
        if database or (getattr(args, "journal", None) is None and os.environ.get(DATABASE_ENV)):
            self.source = open_log(None, database)
            lines = self.source._fetch()  # type: ignore[attr-defined]
            folder = Path(tempfile.mkdtemp(prefix="deploydeck-log-"))
            atexit.register(shutil.rmtree, folder, True)
            self.path = folder / "deployments.jsonl"
            if lines:
                self.path.write_bytes(b"".join(line + b"\n" for line in lines))
            self.label = self.source.label
        else:
            self.path = _journal(args)
            self.source = FileLog(self.path)
            self.label = str(self.path)

    def exists(self) -> bool:
        return self.path.exists()


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    # an unreachable or misconfigured database is bad input (exit 2), said in one redacted line
    def run(args: argparse.Namespace) -> int:
        from core.adapters.journal_pg import DatabaseError

        try:
            return command(args)
        except DatabaseError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT

    return run


def _sim(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "sim", False))


def _rows(args: argparse.Namespace, index: HistoryIndex, *, dora: bool = False) -> list[dict[str, Any]]:
    """Real deploys, or with --sim the simulated runs: a demo never shows up as a deploy in the
    default log (nor ever in DORA), even in a log written before simulated runs were journaled
    apart. A log named with --journal is listed whole, simulated runs marked."""
    named = getattr(args, "journal", None) or getattr(args, "database", None)
    if named and not dora and not _sim(args):
        return index.rows()
    return index.rows(simulated=_sim(args))


def _sim_hint(args: argparse.Namespace) -> str:
    if _sim(args) or not simulated_journal_path().exists():
        return ""
    return "; simulated runs (demos, --sim): deploydeck log --sim"


def _err(text: str) -> None:
    print(f"deploydeck log: {text}", file=sys.stderr)


def _warn_damaged(index: HistoryIndex, label: str | None = None) -> None:
    path = label or index.journal
    for line, problem in index.problems[:10]:
        _err(f"{path}: line {line}: {problem} (skipped)")
    if index.problem_count > 10:
        _err(f"{path}: {index.problem_count - 10} more damaged lines skipped")


def _duration(row: dict[str, Any]) -> str:
    if row.get("duration_s") is None:
        return "-"
    # a simulated run's clock is scaled or virtual: its duration is not a deploy's lead time
    return duration_text(row["duration_s"]) + (" (simulated)" if row.get("scenario") is not None else "")


def _row(r: dict[str, Any]) -> tuple[str, ...]:
    signers = ", ".join(f"{o['actor']}:{o['gate']}" for o in r.get("sign_offs") or []) or "-"
    started = r["started"]  # ISO 8601 in UTC, as the summary stores it
    return (
        r["deploy_id"][:12],
        f"{started[:10]} {started[11:16]}",
        r["service"],
        f"{r['from_version']} → {r['to_version']}",
        r["outcome"] or "unfinished",
        _duration(r),
        signers,
    )


def cmd_list(args: argparse.Namespace) -> int:
    log = _Log(args)
    path = log.label
    if not log.exists():
        if args.json:
            return EXIT_OK
        print(f"no deploys recorded yet ({path} does not exist){_sim_hint(args)}")
        return EXIT_OK
    index = open_index(log.path)
    _warn_damaged(index, log.label)
    rows = _rows(args, index)
    if args.json:
        out = sys.stdout
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        return EXIT_OK
    named = getattr(args, "journal", None) or getattr(args, "database", None)
    hidden = 0 if _sim(args) or named else len(index.rows(simulated=True))
    if hidden:
        print(f"({hidden} simulated runs in this log are not listed: --sim lists them)")
    if not rows:
        print(f"no deploys recorded yet in {path}{_sim_hint(args)}")
        return EXIT_OK
    header = ("id", "started (UTC)", "service", "versions", "outcome", "duration", "sign-offs")
    print(format_table([header, *(_row(r) for r in rows)]))
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[_Log, HistoryIndex, list[Any]] | None:
    """The log, its index and the events of the deploy asked for (default: the latest); None after
    saying why."""
    from core.adapters.journal import parse_event

    log = _Log(args)
    path = log.label
    if not log.exists():
        wanted = getattr(args, "deploy_id", None)
        _err(f"{path}: no such journal" if wanted else f"no deploys recorded yet in {path}")
        return None
    wanted = getattr(args, "deploy_id", None)
    # with an id, only where its lines are: the summaries stay on disk
    index = open_index(log.path, rows=wanted is None)
    if wanted is None:
        rows = _rows(args, index)
        if not rows:
            _err(f"no deploys recorded yet in {path}")
            return None
        wanted = rows[-1]["deploy_id"]  # oldest first: the latest is last
    try:
        deploy_id = index.resolve(wanted)
    except LookupError as exc:
        _err(str(exc))
        return None
    if deploy_id is None:
        _err(f"no deploy with id '{wanted}' in the journal")
        return None
    events = []
    for raw in index.deploy_lines(deploy_id):
        try:
            events.append(parse_event(json.loads(raw)))
        except ValueError:
            continue  # damaged: reported by _warn_damaged and log verify
    return log, index, events


def cmd_show(args: argparse.Namespace) -> int:
    from core.history import summarize, timeline

    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    log, index, events = loaded
    _warn_damaged(index, log.label)
    summary = summarize(events)
    simulated = summary is not None and summary.simulated
    first = events[0].ts
    for when, phase, text in timeline(events, include_samples=args.all, simulated=simulated):
        offset = duration_text((when - first).total_seconds())
        print(f"{when:%Y-%m-%d %H:%M:%S}  +{offset:>7}  {phase:<12}  {text}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from core.history import HistoryError, export_deploy

    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    log, _index, events = loaded
    integrity = log.source.verify().message()
    try:
        text = export_deploy(events, args.fmt, integrity=integrity)
    except HistoryError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    if args.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return EXIT_OK
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        _err(f"cannot write {args.output}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    print(f"wrote {args.output}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from core.history import group_by_deploy

    path = _Log(args).source
    if not path.exists():
        _err(f"{path.label}: no such journal")
        return EXIT_BAD_INPUT
    try:
        check = path.verify(expect_head=args.head)
    except ValueError as exc:  # a malformed --head
        _err(str(exc))
        return EXIT_BAD_INPUT
    if check.ok:
        deploys = len(group_by_deploy(path.read().events))
        print(f"{path.label}: ok: {check.lines} lines, {deploys} deploys, hash chain intact")
        for note in check.notes:
            print(f"{path.label}: {note}")
        return EXIT_OK
    for line, problem in check.problems[:20]:
        print(f"{path.label}: line {line}: {problem}")
    if len(check.problems) > 20:
        print(f"{path.label}: {len(check.problems) - 20} more problems")
    for note in check.notes:
        print(f"{path.label}: note: {note}")
    return EXIT_TAMPERED


def cmd_dora(args: argparse.Namespace) -> int:
    log = _Log(args)
    path = log.label
    if not log.exists():
        _err(f"{path}: no such journal")
        return EXIT_BAD_INPUT
    if args.days <= 0:
        _err("--days must be positive")
        return EXIT_BAD_INPUT
    index = open_index(log.path)
    _warn_damaged(index, log.label)
    figures = dora_rows(_rows(args, index, dora=True), datetime.now(UTC), window_days=args.days)
    if getattr(args, "json", False):
        print(json.dumps(figures, indent=2))
        return EXIT_OK
    print(f"DORA figures, last {args.days:g} days ({path})")
    print(format_dora_rows(figures))
    return EXIT_OK
