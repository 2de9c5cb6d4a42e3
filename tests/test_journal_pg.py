"""The deployment log in a real PostgreSQL: the file's hash chain, verify/export/dora, no password shown."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.adapters.journal import FileJournal, read_journal
from core.adapters.journal_pg import DatabaseError, PgJournal, PgLog, describe_dsn, resolve_dsn
from core.domain import Outcome
from tests.test_history import make_deploy
from tui.commands import log_cmd

pytestmark = pytest.mark.real


def run_log(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deploydeck")
    log_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def three_deploys() -> list:
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        *make_deploy("1111aaaa2222", start=now - timedelta(days=3)),
        *make_deploy(
            "3333bbbb4444", start=now - timedelta(days=2), outcome=Outcome.ROLLED_BACK, restore_s=100
        ),
        *make_deploy("5555cccc6666", start=now - timedelta(days=1), service="search"),
    ]


async def fill(dsn: str, events: list) -> None:
    async with PgJournal(dsn) as journal:
        for event in events:
            await journal.append(event.model_dump(mode="json"))


def sql(dsn: str, statement: str, params: tuple = ()) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)


# --- the same chain as the file ---------------------------------------------------------


async def test_rows_are_the_file_journals_lines_byte_for_byte(postgres_dsn: str, tmp_path: Path) -> None:
    events = three_deploys()
    await fill(postgres_dsn, events)
    file = FileJournal(tmp_path / "log.jsonl", fsync=False)
    for event in events:
        await file.append(event.model_dump(mode="json"))
    async with PgJournal(postgres_dsn) as journal:
        lines = await journal.lines()
        check = await journal.verify()
        read = await journal.read()
    assert lines == (tmp_path / "log.jsonl").read_bytes().split(b"\n")[:-1]
    assert check.ok and check.lines == len(events)
    assert read.problems == [] and read.events == read_journal(tmp_path / "log.jsonl").events == events


async def test_edit_and_removal_are_caught_at_the_line(postgres_dsn: str) -> None:
    await fill(postgres_dsn, three_deploys())
    sql(
        postgres_dsn,
        "UPDATE deploydeck_journal SET line = convert_to("
        "replace(convert_from(line, 'UTF8'), '\"phase\":\"', '\"phase\":\"x'), 'UTF8') WHERE seq = 4",
    )
    async with PgJournal(postgres_dsn) as journal:
        check = await journal.verify()
    assert not check.ok and check.first_bad_line == 4 and check.problem.startswith("edited")

    sql(postgres_dsn, "DELETE FROM deploydeck_journal WHERE seq IN (4, 5)")
    async with PgJournal(postgres_dsn) as journal:
        check = await journal.verify()
    assert not check.ok and check.first_bad_line == 4
    assert check.problem.startswith("missing: 2 line(s) removed")


async def test_reordered_rows_break_the_chain(postgres_dsn: str) -> None:
    await fill(postgres_dsn, three_deploys()[:6])
    # swap the seq columns of rows 2 and 3: each row keeps its own bytes, the order is wrong
    sql(postgres_dsn, "UPDATE deploydeck_journal SET seq = -seq WHERE seq IN (2, 3)")
    sql(postgres_dsn, "UPDATE deploydeck_journal SET seq = 5 - (-seq) WHERE seq IN (-2, -3)")
    async with PgJournal(postgres_dsn) as journal:
        check = await journal.verify()
    assert not check.ok and check.first_bad_line == 2
    assert check.problems[0] == (2, "missing: 1 line(s) removed before this one (it says it is line 3)")
    assert (3, "out of order: it says it is line 2, expected 4") in check.problems


async def test_two_agents_appending_at_once_keep_one_chain(postgres_dsn: str) -> None:
    events = three_deploys()
    first, second = PgJournal(postgres_dsn), PgJournal(postgres_dsn)

    async def write(journal: PgJournal, part: list) -> None:
        for event in part:
            await journal.append(event.model_dump(mode="json"), durable=len(part) % 2 == 0)

    try:
        await asyncio.gather(write(first, events[::2]), write(second, events[1::2]))
        check = await first.verify()
        seqs = [json.loads(line)["seq"] for line in await second.lines()]
    finally:
        await first.close()
        await second.close()
    assert check.ok, check.problems
    assert seqs == list(range(1, len(events) + 1))


async def test_a_dropped_connection_is_reopened_and_the_chain_goes_on(postgres_dsn: str) -> None:
    events = three_deploys()
    async with PgJournal(postgres_dsn) as journal:
        for event in events[:3]:
            await journal.append(event.model_dump(mode="json"))
        sql(
            postgres_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()",
        )
        for event in events[3:6]:
            await journal.append(event.model_dump(mode="json"))
        check = await journal.verify()
    assert check.ok and check.lines == 6


# --- credentials are never printed ----------------------------------------------------------


def test_label_and_repr_carry_no_password(postgres_server, postgres_dsn: str) -> None:
    journal = PgJournal(postgres_dsn)
    assert postgres_server.password not in journal.label + repr(journal)
    assert journal.label.startswith("postgresql://deploydeck@127.0.0.1:")


async def test_wrong_password_error_is_redacted(postgres_server) -> None:
    secret = "Wr0ng-s3cret-pw"
    journal = PgJournal(postgres_server.dsn(password=secret))
    with pytest.raises(DatabaseError) as caught:
        await journal.append({"type": "log_line"})
    message = str(caught.value)
    assert secret not in message and "cannot connect" in message
    assert message.startswith("postgresql://deploydeck@127.0.0.1:")


def test_unparsable_dsn_names_nothing_of_it() -> None:
    with pytest.raises(DatabaseError) as caught:
        describe_dsn("postgresql://u:Sup3rSecretPW@host:notaport/db?bad==")
    assert "Sup3rSecretPW" not in str(caught.value)


def test_dsn_from_env_or_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dsn(None, {"DEPLOYDECK_DATABASE_URL": "postgresql://a@b/c"}) == "postgresql://a@b/c"
    assert resolve_dsn("postgresql://x@y/z", {"DEPLOYDECK_DATABASE_URL": "postgresql://a@b/c"}) == (
        "postgresql://x@y/z"
    )
    with pytest.raises(DatabaseError, match="DEPLOYDECK_DATABASE_URL"):
        resolve_dsn(None, {})


def test_cli_unreachable_database_is_exit_2_without_password(capsys: pytest.CaptureFixture[str]) -> None:
    from core.sim.monitoring import free_port

    secret = "n0t-shown-anywhere"
    dsn = f"postgresql://deploydeck:{secret}@127.0.0.1:{free_port()}/deploydeck?connect_timeout=2"
    assert run_log(["log", "--database", dsn, "verify"]) == 2
    out = capsys.readouterr()
    assert secret not in out.out + out.err and "cannot connect" in out.err


# --- `deploydeck log --database`: list, show, export, verify, dora -----------------------------


def test_log_commands_read_the_database(postgres_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(postgres_dsn, three_deploys()))
    assert run_log(["log", "--database", postgres_dsn, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["deploy_id"] for d in listed] == ["1111aaaa2222", "3333bbbb4444", "5555cccc6666"]

    assert run_log(["log", "verify", "--database", postgres_dsn]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "3 deploys" in out and "hash chain intact" in out

    assert run_log(["log", "export", "3333", "--database", postgres_dsn, "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert json.dumps(exported).count("3333bbbb4444") >= 1 and "hash chain intact" in json.dumps(exported)

    assert run_log(["log", "dora", "--database", postgres_dsn, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["checkout"]["rolled_back"] == 1 and figures["checkout"]["completed"] == 1
    assert figures["search"]["completed"] == 1

    assert run_log(["log", "show", "5555", "--database", postgres_dsn]) == 0
    shown = capsys.readouterr().out
    assert "finished" in shown.lower() or "complete" in shown.lower(), shown


def test_log_verify_on_a_tampered_database_exits_1(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(fill(postgres_dsn, three_deploys()))
    sql(postgres_dsn, "DELETE FROM deploydeck_journal WHERE seq = 7")
    monkeypatch.setenv("DEPLOYDECK_DATABASE_URL", postgres_dsn)  # no --database: the env names it
    assert run_log(["log", "verify"]) == 1
    out = capsys.readouterr().out
    assert "line 7: missing: 1 line(s) removed" in out and "postgresql://deploydeck@" in out


def test_pglog_fetches_once_per_command(postgres_dsn: str) -> None:
    asyncio.run(fill(postgres_dsn, three_deploys()[:4]))
    log = PgLog(postgres_dsn)
    assert log.exists() and log.verify().ok
    sql(postgres_dsn, "DELETE FROM deploydeck_journal")
    assert len(log.read().events) == 4  # the same snapshot for the whole command
    assert not PgLog(postgres_dsn).exists()


# --- the engine writes through it -----------------------------------------------------------------


async def test_a_rollout_journals_into_postgres_and_log_reads_it_back(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.engine_helpers import sim_session

    session = await sim_session(tmp_path, "bad-canary")
    journal = PgJournal(postgres_dsn, clock=session.clock)
    session.rollout.journal = journal  # the Journal port: the engine cannot tell the stores apart
    try:
        outcome = await asyncio.wait_for(session.rollout.run(), 60)
        check = await journal.verify()
        read = await journal.read()
    finally:
        await journal.close()
        await session.close()
    assert outcome == Outcome.ROLLED_BACK
    assert check.ok and check.lines == len(read.events) > 10
    types = [e.type for e in read.events]
    assert types[0] == "deploy_started" and types[-1] == "finished"
    trigger = next(e for e in read.events if e.type == "rollback_triggered")
    assert trigger.rule == "error_rate"  # type: ignore[union-attr]
    assert not (tmp_path / "deployments.jsonl").exists()  # nothing went to the file

    assert (
        await asyncio.to_thread(run_log, ["log", "dora", "--database", postgres_dsn, "--sim", "--json"]) == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["checkout"]["rolled_back"] == 1 and figures["checkout"]["change_failure_rate"] == 1.0


async def test_password_from_pgpassword_env_works_and_is_not_in_the_label(
    postgres_server, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = postgres_dsn.replace(f":{postgres_server.password}@", "@")
    assert postgres_server.password not in without
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    async with PgJournal(without) as journal:
        await journal.append(three_deploys()[0].model_dump(mode="json"))
        assert (await journal.verify()).ok
        assert postgres_server.password not in journal.label
