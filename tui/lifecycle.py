"""How the dashboard ends when its terminal goes away or it is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from textual.app import App

#: 128 + the signal's number, as a shell reports it (the headless mode's codes, tui.headless)
STOP_SIGNALS: dict[str, int] = {"SIGHUP": 129, "SIGTERM": 143}


@contextlib.contextmanager
def stop_on_signals(app: App[object]) -> Iterator[None]:
    """A closed terminal (SIGHUP) or SIGTERM (a logout, `kill`, a supervisor) ends the dashboard the
    way `q` does, so on_unmount closes the sessions: the lease is released, and the simulated
    cluster's kubeconfig and a demo's Prometheus go with the dashboard. Without it SIGTERM killed
    the process on the spot: no journal line, the lease held until it expired.

    An app with `stop_on_signal(name, code)` (the embedded dashboard) first stops its rollout where
    it stands, as the headless mode does; the exit code is then left in `app.signal_exit`."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def received(name: str, code: int) -> None:
        stop = getattr(app, "stop_on_signal", None)
        if stop is not None:
            stop(name, code)
            return
        if getattr(app, "signal_exit", None) is None:
            with contextlib.suppress(AttributeError):
                app.signal_exit = code  # type: ignore[attr-defined]
        app.exit()

    for name, code in STOP_SIGNALS.items():
        number = getattr(signal, name, None)
        if number is None:  # SIGHUP does not exist on Windows
            continue
        try:
            loop.add_signal_handler(number, received, name, code)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
