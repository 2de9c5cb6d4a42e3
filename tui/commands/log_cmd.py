"""`deploydeck log`: the deployment history on the terminal (plain text, no Textual).

Exit codes: 0 ok; 1 the journal failed verification; 2 bad input (no such deploy,
unreadable journal, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.adapters.journal_pg import DatabaseError
from core.adapters.log_source import LogSource, open_log
from core.durations import format_duration
from core.history import (
    DeploySummary,
    HistoryError,
    dora,
    export_deploy,
    format_dora,
    format_table,
    group_by_deploy,
    list_deploys,
    load_deploy,
    timeline,
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
    log.set_defaults(func=_guarded(cmd_list))
    sub = log.add_subparsers(dest="log_command", metavar="{show,export,verify,dora}")

    def add(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=description)
        # SUPPRESS: a value given before the sub-command (`log --journal X show`) is kept.
        parser.add_argument("--journal", type=Path, default=argparse.SUPPRESS, help="journal file")
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


def _journal(args: argparse.Namespace) -> LogSource:
    return open_log(getattr(args, "journal", None), getattr(args, "database", None))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    # an unreachable or misconfigured database is bad input (exit 2), said in one redacted line
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except DatabaseError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT

    return run


def _err(text: str) -> None:
    print(f"deploydeck log: {text}", file=sys.stderr)


def _warn_damaged(path: LogSource) -> None:
    problems = path.read().problems
    for line, problem in problems[:10]:
        _err(f"{path.label}: line {line}: {problem} (skipped)")
    if len(problems) > 10:
        _err(f"{path.label}: {len(problems) - 10} more damaged lines skipped")


def _row(s: DeploySummary) -> tuple[str, ...]:
    signers = ", ".join(f"{o.actor}:{o.gate}" for o in s.sign_offs) or "-"
    return (
        s.short_id,
        s.started.strftime("%Y-%m-%d %H:%M"),
        s.service,
        f"{s.from_version} → {s.to_version}",
        str(s.outcome) if s.outcome else "unfinished",
        format_duration(s.duration_s) if s.duration_s is not None else "-",
        signers,
    )


def cmd_list(args: argparse.Namespace) -> int:
    path = _journal(args)
    if not path.exists():
        if args.json:
            return EXIT_OK
        print(f"no deploys recorded yet ({path.label} does not exist)")
        return EXIT_OK
    _warn_damaged(path)
    deploys = list_deploys(path.read())
    if args.json:
        for d in deploys:
            print(json.dumps(d.model_dump(mode="json") | {"restore_s": d.restore_s}, ensure_ascii=False))
        return EXIT_OK
    if not deploys:
        print(f"no deploys recorded yet in {path.label}")
        return EXIT_OK
    header = ("id", "started (UTC)", "service", "versions", "outcome", "duration", "sign-offs")
    print(format_table([header, *(_row(d) for d in deploys)]))
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[LogSource, list] | None:  # type: ignore[type-arg]
    path = _journal(args)
    wanted = getattr(args, "deploy_id", None)
    if wanted is None:
        deploys = list_deploys(path.read())
        if not deploys:
            _err(f"no deploys recorded yet in {path.label}")
            return None
        wanted = deploys[-1].deploy_id  # oldest first: the latest is last
    if not path.exists():
        _err(f"{path.label}: no such journal")
        return None
    try:
        events = load_deploy(path.read(), wanted)
    except HistoryError as exc:
        _err(str(exc))
        return None
    return path, events


def cmd_show(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    path, events = loaded
    _warn_damaged(path)
    first = events[0].ts
    for when, phase, text in timeline(events, include_samples=args.all):
        offset = format_duration((when - first).total_seconds())
        print(f"{when:%Y-%m-%d %H:%M:%S}  +{offset:>7}  {phase:<12}  {text}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    path, events = loaded
    check = path.verify()
    integrity = check.message()
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
    path = _journal(args)
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
    path = _journal(args)
    if not path.exists():
        _err(f"{path.label}: no such journal")
        return EXIT_BAD_INPUT
    if args.days <= 0:
        _err("--days must be positive")
        return EXIT_BAD_INPUT
    _warn_damaged(path)
    figures = dora(list_deploys(path.read()), datetime.now(UTC), window_days=args.days)
    if getattr(args, "json", False):
        print(json.dumps({k: v.model_dump(mode="json") for k, v in figures.items()}, indent=2))
        return EXIT_OK
    print(f"DORA figures, last {args.days:g} days ({path.label})")
    print(format_dora(figures))
    return EXIT_OK
