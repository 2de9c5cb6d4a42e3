"""`deploydeck log`: the deployment history on the terminal (plain text, no Textual).

Exit codes: 0 ok; 1 the journal failed verification; 2 bad input (no such deploy,
unreadable journal, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.adapters.journal import default_journal_path, read_journal, verify_journal
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
    simulated_journal_path,
    summarize,
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
    log.add_argument("--json", action="store_true", help="one JSON object per deploy")
    log.add_argument(
        "--sim", action="store_true", help="the simulated runs (demos, --sim), journaled apart from deploys"
    )
    log.set_defaults(func=cmd_list)
    sub = log.add_subparsers(dest="log_command", metavar="{show,export,verify,dora}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        # SUPPRESS: a value given before the sub-command (`log --journal X show`) is kept.
        parser.add_argument("--journal", type=Path, default=argparse.SUPPRESS, help="journal file")
        parser.add_argument("--sim", action="store_true", default=argparse.SUPPRESS, help="simulated runs")
        return parser

    show = add("show", "one deploy's timeline")
    show.add_argument(
        "deploy_id", nargs="?", default=None, help="deploy id or a unique prefix (default: the latest)"
    )
    show.add_argument("--all", action="store_true", help="include every healthy analysis sample")
    show.set_defaults(func=cmd_show)

    export = add("export", "audit record of one deploy")
    export.add_argument("deploy_id", help="deploy id or a unique prefix of it")
    export.add_argument("--format", choices=("md", "json"), default="md", dest="fmt")
    export.add_argument(
        "-o", "--output", type=Path, default=None, help="write to this file instead of stdout"
    )
    export.set_defaults(func=cmd_export)

    verify = add("verify", "check the hash chain: exit 1 on an edited, removed or truncated line")
    verify.set_defaults(func=cmd_verify)

    dora_p = add("dora", "deployment frequency, change failure rate, time to restore per service")
    dora_p.add_argument("--days", type=float, default=28.0, help="window ending now (default 28)")
    dora_p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    dora_p.set_defaults(func=cmd_dora)


def _journal(args: argparse.Namespace) -> Path:
    path = getattr(args, "journal", None)
    if path:
        return Path(path)
    return simulated_journal_path() if _sim(args) else default_journal_path()


def _sim(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "sim", False))


def _deploys(args: argparse.Namespace, path: Path, *, dora: bool = False) -> list[DeploySummary]:
    """Real deploys, or with --sim the simulated runs: a demo never shows up as a deploy in the
    default log (nor ever in DORA), even in a log written before simulated runs were journaled
    apart. A log named with --journal is listed whole, simulated runs marked."""
    if getattr(args, "journal", None) and not dora and not _sim(args):
        return list_deploys(path)
    return list_deploys(path, simulated=_sim(args))


def _sim_hint(args: argparse.Namespace) -> str:
    if _sim(args) or not simulated_journal_path().exists():
        return ""
    return "; simulated runs (demos, --sim): deploydeck log --sim"


def _err(text: str) -> None:
    print(f"deploydeck log: {text}", file=sys.stderr)


def _warn_damaged(path: Path) -> None:
    problems = read_journal(path).problems
    for line, problem in problems[:10]:
        _err(f"{path}: line {line}: {problem} (skipped)")
    if len(problems) > 10:
        _err(f"{path}: {len(problems) - 10} more damaged lines skipped")


def _row(s: DeploySummary) -> tuple[str, ...]:
    signers = ", ".join(f"{o.actor}:{o.gate}" for o in s.sign_offs) or "-"
    return (
        s.short_id,
        s.started.strftime("%Y-%m-%d %H:%M"),
        s.service,
        f"{s.from_version} → {s.to_version}",
        str(s.outcome) if s.outcome else "unfinished",
        _duration(s),
        signers,
    )


def _duration(s: DeploySummary) -> str:
    if s.duration_s is None:
        return "-"
    # a simulated run's clock is scaled or virtual: its duration is not a deploy's lead time
    return format_duration(s.duration_s) + (" (simulated)" if s.simulated else "")


def cmd_list(args: argparse.Namespace) -> int:
    path = _journal(args)
    if not path.exists():
        if args.json:
            return EXIT_OK
        print(f"no deploys recorded yet ({path} does not exist){_sim_hint(args)}")
        return EXIT_OK
    _warn_damaged(path)
    deploys = _deploys(args, path)
    if args.json:
        for d in deploys:
            print(json.dumps(d.model_dump(mode="json") | {"restore_s": d.restore_s}, ensure_ascii=False))
        return EXIT_OK
    hidden = 0 if _sim(args) or getattr(args, "journal", None) else len(list_deploys(path, simulated=True))
    if hidden:
        print(f"({hidden} simulated runs in this log are not listed: --sim lists them)")
    if not deploys:
        print(f"no deploys recorded yet in {path}{_sim_hint(args)}")
        return EXIT_OK
    header = ("id", "started (UTC)", "service", "versions", "outcome", "duration", "sign-offs")
    print(format_table([header, *(_row(d) for d in deploys)]))
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[Path, list] | None:  # type: ignore[type-arg]
    path = _journal(args)
    wanted = getattr(args, "deploy_id", None)
    if wanted is None:
        deploys = _deploys(args, path)
        if not deploys:
            _err(f"no deploys recorded yet in {path}")
            return None
        wanted = deploys[-1].deploy_id  # oldest first: the latest is last
    try:
        events = load_deploy(path, wanted)
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
    for when, phase, text in timeline(events, include_samples=args.all, simulated=_simulated(events)):
        offset = format_duration((when - first).total_seconds())
        print(f"{when:%Y-%m-%d %H:%M:%S}  +{offset:>7}  {phase:<12}  {text}")
    return EXIT_OK


def _simulated(events: list) -> bool:  # type: ignore[type-arg]
    summary = summarize(events)
    return summary is not None and summary.simulated


def cmd_export(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    path, events = loaded
    check = verify_journal(path)
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
        _err(f"{path}: no such journal")
        return EXIT_BAD_INPUT
    check = verify_journal(path)
    if check.ok:
        deploys = len(group_by_deploy(read_journal(path).events))
        print(f"{path}: ok: {check.lines} lines, {deploys} deploys, hash chain intact")
        return EXIT_OK
    for line, problem in check.problems[:20]:
        print(f"{path}: line {line}: {problem}")
    if len(check.problems) > 20:
        print(f"{path}: {len(check.problems) - 20} more problems")
    return EXIT_TAMPERED


def cmd_dora(args: argparse.Namespace) -> int:
    path = _journal(args)
    if not path.exists():
        _err(f"{path}: no such journal")
        return EXIT_BAD_INPUT
    if args.days <= 0:
        _err("--days must be positive")
        return EXIT_BAD_INPUT
    _warn_damaged(path)
    figures = dora(_deploys(args, path, dora=True), datetime.now(UTC), window_days=args.days)
    if getattr(args, "json", False):
        print(json.dumps({k: v.model_dump(mode="json") for k, v in figures.items()}, indent=2))
        return EXIT_OK
    print(f"DORA figures, last {args.days:g} days ({path})")
    print(format_dora(figures))
    return EXIT_OK
