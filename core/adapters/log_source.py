"""Where `deploydeck log` reads the deployment log from: the local file or the team's PostgreSQL.

Both stores hold the same hash-chained lines (core.adapters.journal, core.adapters.journal_pg),
so listing, showing, exporting, verifying and DORA figures are the same code over either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from core.adapters.journal import JournalCheck, JournalRead, read_journal, verify_journal


class LogSource(Protocol):
    label: str  # what to call it in messages: a path, or postgresql://user@host:port/db (no password)

    def exists(self) -> bool: ...

    def read(self) -> JournalRead: ...

    def verify(self, expect_head: str | None = None) -> JournalCheck: ...


class FileLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> JournalRead:
        return read_journal(self.path)

    def verify(self, expect_head: str | None = None) -> JournalCheck:
        return verify_journal(self.path, expect_head=expect_head)


def open_log(journal: Path | None, database: str | None) -> LogSource:
    """``--database`` (or $DEPLOYDECK_DATABASE_URL when no ``--journal`` is given) reads PostgreSQL;
    otherwise the file. Raises core.adapters.journal_pg.DatabaseError for an unusable database."""
    from core.adapters.journal import default_journal_path
    from core.adapters.journal_pg import DATABASE_ENV, PgLog

    if database or (journal is None and os.environ.get(DATABASE_ENV)):
        return PgLog(database)
    return FileLog(Path(journal) if journal else default_journal_path())
