"""Real Prometheus and Alertmanager for tests, on loopback with random ports and temp dirs.

Loaded as a pytest plugin (``pytest_plugins = ["tests.real_servers"]``). A missing
binary skips the test, or fails it when ``DEPLOYDECK_REQUIRE_REAL=1`` (CI).
Waits poll with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.sim.monitoring import AlertmanagerServer, PrometheusServer

PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
PROMTOOL_BIN = "/usr/bin/promtool"


def require_binary(path: str) -> str:
    """The binary's path, or skip (fail under DEPLOYDECK_REQUIRE_REAL=1) when it is missing."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if found:
        return found
    message = f"{path} is not installed (make real-deps, or apt-get install the package that ships it)"
    if os.environ.get("DEPLOYDECK_REQUIRE_REAL") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_prometheus(targets: list[str] | None = None) -> Iterator[PrometheusServer]:
    """A Prometheus of one's own (e.g. to kill mid-test), stopped and cleaned up after."""
    binary = require_binary(PROMETHEUS_BIN)
    with tempfile.TemporaryDirectory(prefix="dd-prom-") as tmp:
        server = PrometheusServer(binary, Path(tmp))
        server.targets = list(targets or [])
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def running_alertmanager() -> Iterator[AlertmanagerServer]:
    binary = require_binary(ALERTMANAGER_BIN)
    with tempfile.TemporaryDirectory(prefix="dd-am-") as tmp:
        server = AlertmanagerServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusServer]:
    """One Prometheus for the session; tests add their workload with ``add_target``."""
    with running_prometheus() as server:
        yield server


@pytest.fixture(scope="session")
def alertmanager_server() -> Iterator[AlertmanagerServer]:
    with running_alertmanager() as server:
        yield server


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Start private Prometheus servers inside a test; all are stopped when it ends."""
    stack: list[object] = []

    def start(targets: list[str]) -> PrometheusServer:
        cm = running_prometheus(targets)
        server = cm.__enter__()
        stack.append(cm)
        return server

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


# --- PostgreSQL (the agent's team deployment log) --------------------------------------------

#: where the binaries live: this image links them into /usr/local/bin; Debian's `postgresql`
#: package (make real-deps) puts them in /usr/lib/postgresql/<major>/bin, off the PATH
POSTGRES_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")


def postgres_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres; skip (fail under DEPLOYDECK_REQUIRE_REAL=1)."""
    import glob

    candidates = [*POSTGRES_DIRS, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all(os.access(Path(folder) / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    message = "PostgreSQL is not installed (make real-deps, or apt-get install postgresql)"
    if os.environ.get("DEPLOYDECK_REQUIRE_REAL") == "1":
        pytest.fail(message)
    pytest.skip(message)


class PostgresServer:
    """initdb in a temp dir, a server on 127.0.0.1 with a random port and password auth."""

    user = "deploydeck"
    dbname = "deploydeck"

    def __init__(self, bindir: Path, workdir: Path) -> None:
        import secrets

        self.bindir = bindir
        self.workdir = workdir
        self.password = "pw-" + secrets.token_hex(12)
        self.port = 0
        # initdb and postgres refuse to run as root: run them as the postgres (or nobody) user
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                entry = pwd.getpwnam("nobody")
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            os.chown(workdir, entry.pw_uid, entry.pw_gid)

    def dsn(self, *, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        import subprocess

        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.workdir,
            **self._as,
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}")

    def start(self) -> None:
        from core.sim.monitoring import free_port

        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])  # type: ignore[arg-type]
        data = self.workdir / "data"
        self._run(
            str(self.bindir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        for attempt in range(3):
            self.port = free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -F"
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.workdir / "log"),
                    "-w", "-t", "30", "-o", options, "start",
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2:  # a port lost to another process is retried on a new one
                    raise
        self._createdb()

    def _createdb(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn().rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.dbname}")

    def stop(self) -> None:
        data = self.workdir / "data"
        if (data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    pytest.importorskip("psycopg")
    tmp = tempfile.mkdtemp(prefix="dd-pg-")
    try:
        server = PostgresServer(bindir, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session; each test takes a fresh database (``postgres_dsn``)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A DSN to an empty database of this test's own, dropped after."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.dsn().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.dsn().rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
