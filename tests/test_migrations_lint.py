"""The migration linter (expand-contract), the statement splitter, and running migrations for real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.adapters.command import SubprocessRunner
from core.domain import GateStatus
from core.gates.migrations import check_migrations_lint
from core.migrations import lint_file, lint_files, lint_sql, run_migration
from core.migrations.split import split_statements
from tests.test_gates_predeploy import make_ctx, make_plan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "migrations"


def rules(sql: str, dialect: str = "postgres") -> list[tuple[int, str, str]]:
    return [(f.line, f.rule, f.severity) for f in lint_sql(sql, dialect)]  # type: ignore[arg-type]


def test_splitter_keeps_lines_and_ignores_semicolons_in_strings_comments_and_bodies():
    sql = "-- a; comment\nSELECT 'a;b';\n\n/* x;\n y */ CREATE FUNCTION f() AS $body$ a; b; $body$;\nDROP TABLE t"
    stmts = split_statements(sql)
    assert [s.line for s in stmts] == [2, 5, 6]  # a statement starts at its first word, not its comment
    assert stmts[1].text.endswith("$body$ a; b; $body$")
    assert stmts[2].text == "DROP TABLE t"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DROP TABLE sessions;", (1, "drop-table", "error")),
        ("ALTER TABLE users DROP COLUMN name;", (1, "drop-column", "error")),
        ("ALTER TABLE users DROP name;", (1, "drop-column", "error")),
        ("ALTER TABLE users RENAME COLUMN a TO b;", (1, "rename-column", "error")),
        ("ALTER TABLE users RENAME TO people;", (1, "rename-table", "error")),
        ("ALTER TABLE users ALTER COLUMN age TYPE bigint;", (1, "column-type-change", "error")),
        ("ALTER TABLE users ALTER age SET DATA TYPE bigint;", (1, "column-type-change", "error")),
        ("ALTER TABLE users ADD COLUMN tier text NOT NULL;", (1, "not-null-without-default", "error")),
        ("ALTER TABLE users ALTER COLUMN tier SET NOT NULL;", (1, "set-not-null", "warning")),
        ("CREATE INDEX i ON users (email);", (1, "index-not-concurrent", "error")),
        ("CREATE UNIQUE INDEX i ON public.users (email);", (1, "index-not-concurrent", "error")),
        ("DROP INDEX i;", (1, "drop-index-not-concurrent", "warning")),
        (
            "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);",
            (1, "constraint-validation-lock", "warning"),
        ),
        ("ALTER TABLE o ADD CONSTRAINT u UNIQUE (code);", (1, "constraint-index-lock", "warning")),
        ("LOCK TABLE users IN ACCESS EXCLUSIVE MODE;", (1, "explicit-lock", "warning")),
        ("VACUUM FULL users;", (1, "table-rewrite-lock", "warning")),
        ("UPDATE users SET tier = 'free';", (1, "unbounded-dml", "warning")),
        ("TRUNCATE audit;", (1, "truncate", "error")),
    ],
)
def test_each_rule(sql, expected):
    assert rules(sql) == [expected]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY i ON users (email);",
        "DROP INDEX CONCURRENTLY i;",
        "ALTER TABLE users ADD COLUMN tier text NOT NULL DEFAULT 'free';",
        "ALTER TABLE users ADD COLUMN nickname text;",
        "ALTER TABLE users DROP CONSTRAINT users_old_check;",
        "ALTER TABLE users ALTER COLUMN tier DROP DEFAULT;",
        "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;",
        "ALTER TABLE o VALIDATE CONSTRAINT fk;",
        "UPDATE users SET tier = 'free' WHERE id < 1000;",
        "CREATE TABLE t (id int NOT NULL); CREATE INDEX t_id ON t (id); ALTER TABLE t ADD COLUMN x int NOT NULL;",
        "-- DROP TABLE users;\nSELECT 1;",
    ],
)
def test_safe_statements_are_not_flagged(sql):
    assert rules(sql) == []


def test_findings_point_at_the_line_of_the_action_in_a_multi_line_statement():
    sql = "\n\nALTER TABLE orders\n    ADD COLUMN note text,\n    DROP COLUMN legacy,\n    ALTER COLUMN total TYPE numeric;"
    assert rules(sql) == [(5, "drop-column", "error"), (6, "column-type-change", "error")]


def test_mysql_rules():
    assert rules("ALTER TABLE u MODIFY COLUMN bio TEXT;", "mysql") == [(1, "column-type-change", "error")]
    assert rules("ALTER TABLE u CHANGE nick nickname VARCHAR(9);", "mysql") == [(1, "rename-column", "error")]
    assert rules("RENAME TABLE a TO b;", "mysql") == [(1, "rename-table", "error")]
    assert rules("CREATE INDEX i ON u (n);", "mysql") == [(1, "index-locking", "warning")]
    assert rules("CREATE INDEX i ON u (n) ALGORITHM=INPLACE LOCK=NONE;", "mysql") == []


def test_example_files_with_file_and_line():
    assert lint_file(EXAMPLES / "001_expand_add_email.sql") == []
    findings = lint_files(["002_contract_unsafe.sql"], "postgres", EXAMPLES)
    assert [str(f).split(": ")[0] for f in findings][:3] == [
        "002_contract_unsafe.sql:2",
        "002_contract_unsafe.sql:3",
        "002_contract_unsafe.sql:5",
    ]
    assert sum(f.severity == "error" for f in findings) == 6
    globbed = lint_files(["*.sql"], "postgres", EXAMPLES)
    assert {f.file for f in globbed} >= {"002_contract_unsafe.sql", "003_mysql.sql"}


def test_missing_files_are_findings_not_exceptions(tmp_path):
    findings = lint_files(["nope.sql", "none/*.sql"], "postgres", tmp_path)
    assert [(f.file, f.rule) for f in findings] == [
        ("nope.sql", "missing-file"),
        ("none/*.sql", "missing-file"),
    ]


async def test_lint_gate_fails_on_errors_and_passes_clean_files():
    plan = make_plan(extra="migrations: {files: [002_contract_unsafe.sql]}")
    res = await check_migrations_lint(make_ctx(plan, base_dir=EXAMPLES))
    assert res.status == GateStatus.FAIL
    assert res.evidence == "1 file(s), 6 error(s), 1 warning(s); 002_contract_unsafe.sql:2 drop-column"
    assert "002_contract_unsafe.sql:9: warning: constraint-validation-lock" in res.detail
    plan = make_plan(extra="migrations: {files: [001_expand_add_email.sql]}")
    res = await check_migrations_lint(make_ctx(plan, base_dir=EXAMPLES))
    assert res.status == GateStatus.PASS and res.evidence.startswith(
        "backward compatible: 1 file(s), 0 error(s)"
    )


# --- running migrations (real subprocesses) ------------------------------------------------------


async def test_run_migration_streams_lines_and_reports_the_exit_code():
    seen: list[str] = []
    outcome = await run_migration(
        "echo 'applying 001'; echo 'applying 002' >&2; exit 3",
        runner=SubprocessRunner(),
        timeout_s=10,
        on_line=seen.append,
    )
    assert seen == ["applying 001", "applying 002"]
    assert outcome.exit_code == 3 and outcome.output == "applying 001\napplying 002"


async def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "survived"
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await SubprocessRunner(kill_grace_s=0.5).run(
        f"echo started; (sleep 5; touch {marker}) & sleep 5", timeout_s=0.3
    )
    assert outcome.exit_code is None and "timed out after 0.3s" in outcome.detail
    assert outcome.output == "started"
    assert loop.time() - started < 3
    # the background child was in the same group and died with it
    await asyncio.sleep(0)
    assert not marker.exists()


async def test_secret_env_values_are_masked_in_lines_output_and_command(monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "hunter2-very-secret")
    seen: list[str] = []
    outcome = await SubprocessRunner().run(
        "echo connecting with $DB_PASSWORD and $API_TOKEN; echo done hunter2-very-secret",
        timeout_s=10,
        on_line=seen.append,
        env={"API_TOKEN": "tok-123456"},
    )
    assert seen == ["connecting with *** and ***", "done ***"]
    assert "hunter2" not in outcome.output and "tok-123456" not in outcome.output


async def test_output_tail_is_bounded_and_a_missing_command_is_a_clear_exit():
    outcome = await SubprocessRunner(tail_lines=5).run("seq 1 1000", timeout_s=10)
    assert outcome.output.splitlines() == ["996", "997", "998", "999", "1000"]
    missing = await SubprocessRunner().run("definitely-not-a-command-xyz", timeout_s=10)
    assert missing.exit_code == 127 and "not found" in missing.output
    empty = await run_migration("  ", runner=SubprocessRunner(), timeout_s=1)
    assert empty.exit_code is None and "no migration command" in empty.detail
