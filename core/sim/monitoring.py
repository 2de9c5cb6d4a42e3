"""Real Prometheus and Alertmanager processes on loopback: for `demo --prometheus` and the tests.

Each gets a random port and its own working directory; waits poll with a deadline,
nothing sleeps a fixed time.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


def _http_ok(url: str, method: str = "GET") -> bool:
    try:
        return httpx.request(method, url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _load_prctl() -> Callable[..., int] | None:

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


#: resolved in the parent: a child between fork and exec must not load libraries
_PRCTL = _load_prctl()


def die_with_parent() -> None:
    """Popen preexec_fn: the kernel sends SIGTERM to this child when the thread that started it dies.

    Linux's PR_SET_PDEATHSIG covers what no `finally` can: SIGKILL, a crash, a terminal closed
    before a handler runs; a `sim serve` or demo killed with SIGKILL would otherwise leave its
    Prometheus running (and holding its port) forever. Linux only; elsewhere a no-op. If the parent
    died before the prctl, nobody would ever signal us: exit at once.
    """
    if _PRCTL is not None:
        _PRCTL(1, 15, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGTERM
        if os.getppid() == 1:
            os._exit(1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class PrometheusServer:
    """A running Prometheus whose scrape targets tests can change at run time."""

    def __init__(self, binary: str, workdir: Path, *, scrape_interval_s: float = 1.0) -> None:
        self.binary = binary
        self.workdir = workdir
        #: how often every target is scraped; the demo's speed is derived from it (issue 14)
        self.scrape_interval_s = scrape_interval_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.targets: list[str] = []
        self._log = workdir / "prometheus.log"

    def _write_config(self) -> None:
        config = {
            "global": {
                "scrape_interval": f"{round(self.scrape_interval_s * 1000)}ms",
                "evaluation_interval": f"{round(self.scrape_interval_s * 1000)}ms",
                "scrape_timeout": f"{round(self.scrape_interval_s * 900)}ms",
            },
            "scrape_configs": [{"job_name": "workload", "static_configs": [{"targets": list(self.targets)}]}]
            if self.targets
            else [],
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    def start(self) -> None:
        """Start on a free loopback port; a port lost to another process is retried on a new one."""
        for attempt in range(3):
            try:
                self._start_once()
                return
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"

    def _start_once(self) -> None:
        self._write_config()
        (self.workdir / "data").mkdir(exist_ok=True)
        log = self._log.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # one prctl call between fork and exec
        )
        log.close()
        try:
            wait_until(self._ready, START_TIMEOUT_S, f"Prometheus on {self.url}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Prometheus did not start; log:\n{self.log_tail()}") from None

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        return _http_ok(f"{self.url}/-/ready") and self._is_ours()

    def _is_ours(self) -> bool:
        """free_port() is a race: another Prometheus may have taken the port between pick and bind.

        Answering on our port is not enough; the server must report our own storage path.
        """
        try:
            flags = httpx.get(f"{self.url}/api/v1/status/flags", timeout=1.0).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        if flags.get("storage.tsdb.path") != str(self.workdir / "data"):
            raise RuntimeError(f"another Prometheus answers on {self.url}; port taken between pick and bind")
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def set_targets(self, targets: list[str]) -> None:
        """Scrape these host:port targets (job 'workload', every 1 s) from now on."""
        self.targets = list(targets)
        self._write_config()
        response = httpx.post(f"{self.url}/-/reload", timeout=10.0)
        if response.status_code != 200:
            raise RuntimeError(f"Prometheus reload answered HTTP {response.status_code}: {response.text}")

    def add_target(self, target: str) -> None:
        if target not in self.targets:
            self.set_targets([*self.targets, target])

    def remove_target(self, target: str) -> None:
        if target in self.targets:
            self.set_targets([t for t in self.targets if t != target])

    def query(self, promql: str) -> list[dict[str, object]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_for_up(self, target: str, timeout_s: float = 20.0) -> None:
        """Poll until Prometheus has scraped ``target`` successfully at least once."""

        def up() -> bool:
            try:
                result = self.query(f'up{{instance="{target}"}} == 1')
            except httpx.HTTPError:
                return False
            return bool(result)

        wait_until(up, timeout_s, f"Prometheus to scrape {target}", interval_s=0.1)

    def wait_for_scrapes(self, target: str, count: int, timeout_s: float = 30.0) -> None:
        """Poll until ``target`` has ``count`` successful scrapes in the last ``count + 5`` seconds."""
        span = f"{round((count + 5) * self.scrape_interval_s * 1000)}ms"
        promql = f'sum_over_time(up{{instance="{target}"}}[{span}]) >= {count}'

        def enough() -> bool:
            try:
                return bool(self.query(promql))
            except httpx.HTTPError:
                return False

        wait_until(enough, timeout_s, f"{count} scrapes of {target}", interval_s=0.2)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class AlertmanagerServer:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = workdir / "alertmanager.log"

    def start(self) -> None:
        config = self.workdir / "alertmanager.yml"
        config.write_text(
            yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}), encoding="utf-8"
        )
        (self.workdir / "data").mkdir(exist_ok=True)
        log = self._log.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # one prctl call between fork and exec
        )
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Alertmanager exited with {self.proc.returncode}:\n{self.log_tail()}")
            return _http_ok(f"{self.url}/-/ready")

        try:
            wait_until(ready, START_TIMEOUT_S, f"Alertmanager on {self.url}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Alertmanager did not start; log:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
