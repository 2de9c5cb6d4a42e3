"""The team's deployment log in PostgreSQL: the file journal's hash chain, one row a line.

Each row keeps the *exact bytes* that :func:`core.adapters.journal.encode_line` produces (``prev``,
``seq`` and the line's own hash ``h`` inside), so the same :func:`verify_lines` and
:func:`parse_lines` that check the file check the table, and a line exported from one store
verifies in the other. Writers from several agents are serialised by a transaction-scoped advisory
lock: the chain has one tail, as the file's ``flock`` gives it one.

Credentials come from the DSN (``--database postgresql://…`` or ``$DEPLOYDECK_DATABASE_URL``, in a
Pod from a Secret) or libpq's own environment (``PGPASSWORD``, ``PGPASSFILE``...). The password is
registered with :mod:`core.redact` the moment the DSN is parsed and every error is redacted, so it
is never printed; :attr:`PgJournal.label` names the database without it.

As with the file, the chain catches edits, removals in the middle and reordering; a deleted *last*
row is only visible against a copy kept elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.adapters.journal import (
    GENESIS,
    JournalCheck,
    JournalRead,
    encode_line,
    parse_lines,
    verify_lines,
)
from core.adapters.journal_anchor import (
    check_head,
)
from core.redact import redact, register

DATABASE_ENV = "DEPLOYDECK_DATABASE_URL"
TABLE = "deploydeck_journal"
# one tail for every writer, whichever agent: pg_advisory_xact_lock(key) with a fixed key
_LOCK_KEY = int.from_bytes(hashlib.sha256(TABLE.encode()).digest()[:8], "big", signed=True)
_T = TypeVar("_T")


class DatabaseError(Exception):
    """The log database cannot be reached or used. The message is redacted: never a password."""


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency; a broken install
        raise DatabaseError("the PostgreSQL log needs psycopg 3 (pip install 'psycopg[binary]')") from exc
    return psycopg


def resolve_dsn(dsn: str | None = None, env: dict[str, str] | None = None) -> str:
    """The DSN given, else ``$DEPLOYDECK_DATABASE_URL``; a clear error when neither is set."""
    env = dict(os.environ) if env is None else env
    value = dsn or env.get(DATABASE_ENV, "")
    if not value.strip():
        raise DatabaseError(f"no database: pass --database postgresql://… or set {DATABASE_ENV}")
    return value


def describe_dsn(dsn: str) -> tuple[str, set[str]]:
    """(a label without credentials, the secret values in the DSN). Raises DatabaseError if unparsable."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:
        # the text may hold the password: name nothing of it
        raise DatabaseError("the database URL cannot be parsed (postgresql://USER@HOST:PORT/DB)") from exc
    secrets = {str(parts[k]) for k in ("password", "sslpassword") if parts.get(k)}
    user = parts.get("user") or os.environ.get("PGUSER") or ""
    host = parts.get("host") or os.environ.get("PGHOST") or "localhost"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    name = parts.get("dbname") or os.environ.get("PGDATABASE") or user
    who = f"{user}@" if user else ""
    return f"postgresql://{who}{host}:{port}/{name}", secrets


class PgJournal:
    """Appends to and reads the hash-chained log in PostgreSQL (psycopg 3, async).

    One connection, opened on first use; a connection that broke is reopened once per call.
    ``append`` returns after the commit: a state change is in the database before it is acted on.
    """

    def __init__(self, dsn: str | None = None, *, connect_timeout: float = 10.0, clock: Any = None) -> None:
        self._dsn = resolve_dsn(dsn)
        # a VirtualClock must not jump ahead while a round trip to the database is in flight
        # (the file journal writes synchronously for the same reason); hold() keeps it still
        self._clock = clock
        self.label, secrets = describe_dsn(self._dsn)
        register(secrets | ({self._dsn} if secrets else set()))
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the DSN: it may carry the password
        return f"PgJournal({self.label})"

    # --- connection ---------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> DatabaseError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DatabaseError(redact(f"{self.label}: {what}: {detail}"))

    async def _connect(self) -> Any:
        psycopg = _import_psycopg()
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=max(1, int(self._connect_timeout)), autocommit=True
            )
            # under the writers' lock: two agents starting at once both see no table, and
            # CREATE TABLE IF NOT EXISTS alone then fails in one of them (pg_type unique key)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " seq bigint PRIMARY KEY,"
                    " line bytea NOT NULL,"  # the exact bytes of the journal line
                    " deploy_id text,"
                    " written_at timestamptz NOT NULL DEFAULT now())"
                )
        except psycopg.Error as exc:
            raise self._error("cannot connect", exc) from None
        self._conn = conn
        return conn

    def _hold(self) -> contextlib.AbstractContextManager[Any]:
        hold = getattr(self._clock, "hold", None)
        return hold() if callable(hold) else contextlib.nullcontext()

    async def _retrying(self, what: str, work: Callable[[Any], Awaitable[_T]]) -> _T:
        with self._hold():
            return await self._retrying_held(what, work)

    async def _retrying_held(self, what: str, work: Callable[[Any], Awaitable[_T]]) -> _T:
        psycopg = _import_psycopg()
        for attempt in (1, 2):
            conn = await self._connect()
            try:
                return await work(conn)
            except psycopg.OperationalError as exc:
                # a dropped connection: reopen once; the transaction did not commit, so no
                # line is written twice (the append re-reads the tail inside its transaction)
                if attempt == 2 or not conn.broken:
                    raise self._error(what, exc) from None
            except psycopg.Error as exc:
                raise self._error(what, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> PgJournal:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- writing ------------------------------------------------------------------

    async def append(self, record: dict[str, object], *, durable: bool = True) -> None:
        """Write one line. ``durable=False`` (observations) commits without waiting for the WAL
        flush; the next durable commit covers it, as the file journal's next fsync does."""

        async def work(conn: Any) -> None:
            async with conn.transaction():
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cur = await conn.execute(f"SELECT seq, line FROM {TABLE} ORDER BY seq DESC LIMIT 1")
                last = await cur.fetchone()
                prev, seq = (GENESIS, 1) if last is None else (_sha(bytes(last[1])), last[0] + 1)
                line = encode_line(record, prev, seq)
                deploy_id = record.get("deploy_id")
                await conn.execute(
                    f"INSERT INTO {TABLE} (seq, line, deploy_id) VALUES (%s, %s, %s)",
                    (seq, line, deploy_id if isinstance(deploy_id, str) else None),
                )

        async with self._lock:
            await self._retrying("cannot append to the log", work)

    # --- reading ------------------------------------------------------------------

    async def lines(self) -> list[bytes]:
        """Every line's bytes in chain order; a row whose ``seq`` column disagrees with the
        ``seq`` inside its line shows as out of order in :meth:`verify`."""

        async def work(conn: Any) -> list[bytes]:
            cur = await conn.execute(f"SELECT line FROM {TABLE} ORDER BY seq")
            return [bytes(row[0]) for row in await cur.fetchall()]

        return await self._retrying("cannot read the log", work)

    async def read(self) -> JournalRead:
        return parse_lines(await self.lines())

    async def verify(self) -> JournalCheck:
        return verify_lines(await self.lines())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PgLog:
    """The synchronous reader `deploydeck log --database` uses: one fetch per command."""

    def __init__(self, dsn: str | None = None) -> None:
        self.journal = PgJournal(dsn)
        self.label = self.journal.label
        self._lines: list[bytes] | None = None

    def _fetch(self) -> list[bytes]:
        if self._lines is None:

            async def fetch() -> list[bytes]:
                async with self.journal:
                    return await self.journal.lines()

            self._lines = asyncio.run(fetch())
        return self._lines

    def exists(self) -> bool:
        return bool(self._fetch())

    def read(self) -> JournalRead:
        return parse_lines(self._fetch())

    def verify(self, expect_head: str | None = None) -> JournalCheck:
        # no anchor file beside a table: the end is proven only by a head quoted elsewhere
        # (every notification carries one) or by the HMAC key
        return verify_lines(self._fetch(), end=lambda whole: check_head(whole, expect_head))
