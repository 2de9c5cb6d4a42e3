"""Backward-compatibility lint for migrations (expand-contract, POL-012).

Old code keeps running against the new schema during the canary, so anything
that removes or reshapes what it reads is an error; DDL that holds long locks
on big tables is a warning. Rules are regexes over comment-free statements
(robust to dialect gaps); sqlglot is used to understand CREATE TABLE so a new,
empty table's index does not need CONCURRENTLY.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.migrations.split import Statement, split_statements

Dialect = Literal["postgres", "mysql"]
Severity = Literal["error", "warning", "info"]

_ID = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)(?:\.(?:"[^"]+"|`[^`]+`|[\w$]+))*'
_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?({_ID})\s+(.*)$", re.I | re.S)
_NOT_A_COLUMN = {
    "CONSTRAINT", "DEFAULT", "NOT", "INDEX", "KEY", "PRIMARY", "FOREIGN", "CHECK",
    "PARTITION", "IDENTITY", "EXPRESSION", "COLUMN",
}  # fmt: skip


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    rule: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.rule}: {self.message}"


def _name(raw: str) -> str:
    return raw.strip('"`[]').split(".")[-1].strip('"`[]').lower()


def _split_actions(body: str, base: int) -> list[tuple[str, int]]:
    """Top-level comma-separated actions of ALTER TABLE, with their offsets in the statement."""
    out: list[tuple[str, int]] = []
    depth = 0
    start = 0
    quote = ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append((body[start:i], base + start))
            start = i + 1
    out.append((body[start:], base + start))
    return [(a, off + (len(a) - len(a.lstrip()))) for a, off in out if a.strip()]


def _created_tables(statements: list[Statement], dialect: Dialect) -> set[str]:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    created: set[str] = set()
    for st in statements:
        if not re.match(r"\s*CREATE\s+(?:UNLOGGED\s+|TEMP(?:ORARY)?\s+)?TABLE\b", st.text, re.I):
            continue
        try:
            tree = sqlglot.parse_one(st.text, read=dialect)
        except SqlglotError:
            tree = None
        table = tree.find(exp.Table) if tree is not None else None
        if table is not None and table.name:
            created.add(table.name.lower())
            continue
        m = re.match(rf"\s*CREATE\s+.*?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_ID})", st.text, re.I | re.S)
        if m:
            created.add(_name(m.group(1)))
    return created


class _Linter:
    def __init__(self, file: str, dialect: Dialect) -> None:
        self.file = file
        self.dialect = dialect
        self.findings: list[Finding] = []

    def add(self, st: Statement, offset: int, rule: str, severity: Severity, message: str) -> None:
        self.findings.append(
            Finding(file=self.file, line=st.line_at(offset), rule=rule, severity=severity, message=message)
        )

    def statement(self, st: Statement, created: set[str]) -> None:
        text = st.text
        pg = self.dialect == "postgres"
        if m := re.match(rf"\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_ID}(?:\s*,\s*{_ID})*)", text, re.I):
            self.add(
                st,
                0,
                "drop-table",
                "error",
                f"drops table {m.group(1)}: the running version still reads it; drop it in a later "
                "contract release",
            )
        elif m := re.match(rf"\s*RENAME\s+TABLE\s+({_ID})\s+TO\s+({_ID})", text, re.I):
            self.add(
                st,
                0,
                "rename-table",
                "error",
                f"renames table {m.group(1)} to {m.group(2)}: old code breaks; copy and switch over instead",
            )
        elif m := re.match(r"\s*TRUNCATE\b", text, re.I):
            self.add(
                st,
                0,
                "truncate",
                "error",
                "TRUNCATE deletes every row and cannot be rolled back with the code",
            )
        elif m := re.match(
            rf"\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?.*?\bON\s+(?:ONLY\s+)?({_ID})",
            text,
            re.I | re.S,
        ):
            table = _name(m.group(3))
            if pg and not m.group(2) and table not in created:
                self.add(
                    st,
                    0,
                    "index-not-concurrent",
                    "error",
                    f"CREATE INDEX on {table} without CONCURRENTLY blocks writes for the whole build",
                )
            elif not pg and not re.search(r"\bLOCK\s*=\s*NONE\b", text, re.I) and table not in created:
                self.add(
                    st,
                    0,
                    "index-locking",
                    "warning",
                    f"index on {table} without LOCK=NONE; use online DDL (gh-ost, pt-online-schema-change) "
                    "for large tables",
                )
        elif re.match(r"\s*DROP\s+INDEX\b", text, re.I):
            if pg and not re.match(r"\s*DROP\s+INDEX\s+CONCURRENTLY\b", text, re.I):
                self.add(
                    st,
                    0,
                    "drop-index-not-concurrent",
                    "warning",
                    "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock",
                )
        elif re.match(r"\s*LOCK\s+TABLES?\b", text, re.I):
            self.add(st, 0, "explicit-lock", "warning", "explicit table lock: blocks traffic until commit")
        elif re.match(r"\s*(VACUUM\s+FULL|CLUSTER)\b", text, re.I) or (
            re.match(r"\s*REINDEX\b", text, re.I) and not re.search(r"\bCONCURRENTLY\b", text, re.I)
        ):
            self.add(st, 0, "table-rewrite-lock", "warning", "rewrites the table under an exclusive lock")
        elif re.match(r"\s*(DELETE\s+FROM|UPDATE)\b", text, re.I) and not re.search(r"\bWHERE\b", text, re.I):
            self.add(
                st,
                0,
                "unbounded-dml",
                "warning",
                "changes every row in one transaction: long row locks; backfill in batches",
            )
        elif m := _ALTER_TABLE.match(text):
            table = _name(m.group(1))
            for action, offset in _split_actions(m.group(2), m.start(2)):
                self.alter_action(st, table, action, offset, table in created)

    def alter_action(self, st: Statement, table: str, action: str, offset: int, new_table: bool) -> None:
        pg = self.dialect == "postgres"
        a = action.strip()
        if m := re.match(rf"DROP\s+(COLUMN\s+)?(?:IF\s+EXISTS\s+)?({_ID})", a, re.I):
            if m.group(1) or m.group(2).upper() not in _NOT_A_COLUMN:
                self.add(
                    st,
                    offset,
                    "drop-column",
                    "error",
                    f"drops column {table}.{_name(m.group(2))}: the running version still reads it; stop "
                    "using it first, drop it in a later contract release",
                )
                return
        if m := re.match(rf"RENAME\s+(?:COLUMN\s+)?({_ID})\s+TO\s+({_ID})", a, re.I):
            if m.group(1).upper() != "TO":
                self.add(
                    st,
                    offset,
                    "rename-column",
                    "error",
                    f"renames column {table}.{_name(m.group(1))} to {_name(m.group(2))}: add the new "
                    "column, write both, backfill, switch reads, then drop (expand-contract)",
                )
                return
        if m := re.match(rf"RENAME\s+(?:TO|AS)\s+({_ID})", a, re.I):
            self.add(
                st,
                offset,
                "rename-table",
                "error",
                f"renames table {table} to {_name(m.group(1))}: old code breaks; use a view or copy",
            )
            return
        if m := re.match(rf"CHANGE\s+(?:COLUMN\s+)?({_ID})\s+({_ID})", a, re.I):
            old, new = _name(m.group(1)), _name(m.group(2))
            rule, what = (
                ("rename-column", f"renames column {table}.{old} to {new}")
                if old != new
                else ("column-type-change", f"redefines column {table}.{old}")
            )
            self.add(st, offset, rule, "error", f"{what}: old code may not read the new shape")
            return
        if m := re.match(
            rf"(?:ALTER|MODIFY)\s+(?:COLUMN\s+)?({_ID})\s+(?:SET\s+DATA\s+)?TYPE\b", a, re.I
        ) or (re.match(rf"MODIFY\s+(?:COLUMN\s+)?({_ID})\s+\w", a, re.I)):
            self.add(
                st,
                offset,
                "column-type-change",
                "error",
                f"changes the type of {table}.{_name(m.group(1))}: old code may break and the table is "
                "rewritten under lock; add a new column and backfill",
            )
            return
        if m := re.match(rf"ALTER\s+(?:COLUMN\s+)?({_ID})\s+SET\s+NOT\s+NULL", a, re.I):
            if pg and not new_table:
                self.add(
                    st,
                    offset,
                    "set-not-null",
                    "warning",
                    f"SET NOT NULL on {table}.{_name(m.group(1))} scans the table under an exclusive lock; "
                    "add a CHECK (… IS NOT NULL) NOT VALID constraint and VALIDATE it first",
                )
            return
        if m := re.match(rf"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_ID})\s+(.*)$", a, re.I | re.S):
            col = m.group(1)
            if col.upper() in {"CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "INDEX", "KEY"}:
                self.add_constraint(st, table, a, offset, new_table)
                return
            rest = m.group(2)
            if (
                re.search(r"\bNOT\s+NULL\b", rest, re.I)
                and not re.search(r"\bDEFAULT\b", rest, re.I)
                and not new_table
            ):
                self.add(
                    st,
                    offset,
                    "not-null-without-default",
                    "error",
                    f"adds NOT NULL column {table}.{_name(col)} without a DEFAULT: the running version's "
                    "INSERTs fail",
                )
            return

    def add_constraint(self, st: Statement, table: str, action: str, offset: int, new_table: bool) -> None:
        if new_table:
            return
        if re.search(r"\b(FOREIGN\s+KEY|CHECK)\b", action, re.I):
            if self.dialect == "postgres" and not re.search(r"\bNOT\s+VALID\b", action, re.I):
                self.add(
                    st,
                    offset,
                    "constraint-validation-lock",
                    "warning",
                    f"constraint on {table} is validated under lock; add it NOT VALID, then VALIDATE "
                    "CONSTRAINT separately",
                )
        elif re.search(r"\b(PRIMARY\s+KEY|UNIQUE)\b", action, re.I) and not re.search(
            r"\bUSING\s+INDEX\b", action, re.I
        ):
            self.add(
                st,
                offset,
                "constraint-index-lock",
                "warning",
                f"PRIMARY KEY/UNIQUE on {table} builds its index under lock; build the index "
                "CONCURRENTLY, then ADD CONSTRAINT … USING INDEX",
            )


def lint_sql(sql: str, dialect: Dialect = "postgres", file: str = "<sql>") -> list[Finding]:
    statements = split_statements(sql)
    created = _created_tables(statements, dialect)
    linter = _Linter(file, dialect)
    for st in statements:
        linter.statement(st, created)
    return sorted(linter.findings, key=lambda f: f.line)


#: a migration file bigger than this is refused, not read (a plan could name /dev/zero)
MAX_SQL_BYTES = 5_000_000


def _read_sql(path: Path) -> str:
    """The file's text: a regular file, at most MAX_SQL_BYTES, UTF-8 (else OSError/ValueError)."""
    with path.open("rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = fh.read(MAX_SQL_BYTES + 1)
    if len(data) > MAX_SQL_BYTES:
        raise ValueError(f"larger than {MAX_SQL_BYTES // 1_000_000} MB")
    return data.decode("utf-8")


def lint_file(path: str | Path, dialect: Dialect = "postgres", *, label: str | None = None) -> list[Finding]:
    """Lint one file; an unreadable file is itself an error finding, never an exception."""
    path = Path(path)
    shown = label or str(path)
    try:
        sql = _read_sql(path)
    except FileNotFoundError:
        return [Finding(file=shown, line=0, rule="missing-file", severity="error", message="no such file")]
    except (OSError, ValueError) as exc:
        return [
            Finding(
                file=shown, line=0, rule="unreadable-file", severity="error", message=f"cannot read: {exc}"
            )
        ]
    return lint_sql(sql, dialect, shown)


def lint_files(
    files: Iterable[str],
    dialect: Dialect = "postgres",
    base_dir: Path | None = None,
    *,
    confine: bool = True,
) -> list[Finding]:
    """Lint each file (globs allowed), paths relative to `base_dir` (the plan's folder).

    With `confine`, a file that resolves outside `base_dir` (through "..", an absolute
    path or a symlink) is an error finding and is never read.
    """
    base = base_dir or Path.cwd()
    root = base.resolve()
    out: list[Finding] = []
    for pattern in files:
        matches = sorted(base.glob(pattern)) if any(c in pattern for c in "*?[") else [base / pattern]
        if not matches:
            out.append(
                Finding(
                    file=pattern, line=0, rule="missing-file", severity="error", message="no file matches"
                )
            )
        for path in matches:
            # show paths as the plan wrote them, not as absolute paths of this machine
            shown = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
            if confine and not path.resolve().is_relative_to(root):
                out.append(
                    Finding(
                        file=shown,
                        line=0,
                        rule="outside-plan-dir",
                        severity="error",
                        message="resolves outside the plan's folder; not read",
                    )
                )
                continue
            out += lint_file(path, dialect, label=shown)
    return out
