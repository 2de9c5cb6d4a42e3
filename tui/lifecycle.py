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
        if name == "SIGHUP":
            forget_terminal(app)
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


def end_terminal_threads(app: App[object], join_s: float = 2.0) -> None:
    """After the app has run: make sure the terminal's reader and writer threads have ended.

    When the terminal closes while the app is still shutting down (SIGHUP, then the pty gone),
    Textual's driver can be left with its input thread spinning on the hung-up terminal and its
    writer thread waiting for output. Neither is a daemon thread, so the interpreter waited for
    them for ever: the process never exited (2 of 50 hang-ups under a 2-core load). Ending them is
    what the driver's own shutdown does (its exit event, then a None to the writer's queue).
    """
    driver = getattr(app, "_driver", None)
    if driver is None:
        return
    exit_event = getattr(driver, "exit_event", None)
    if exit_event is not None:
        exit_event.set()
    writer = getattr(driver, "_writer_thread", None)
    if writer is not None and writer.is_alive():
        queue = getattr(writer, "_queue", None)
        if queue is not None:
            queue.put(None)  # the writer's own stop signal; stop() would join without a bound
    for thread in (getattr(driver, "_key_thread", None), writer):
        if thread is not None and thread.is_alive():
            thread.join(join_s)


def forget_terminal(app: App[object]) -> None:
    """SIGHUP: the terminal is gone, so nothing written from now on can reach anyone: discard it.

    Textual's writer thread dies on its first failed write (EIO once the terminal has closed) and
    its queue holds 30 writes: the 31st (the shutdown's own "restore the terminal" sequences)
    blocked the event loop for ever, and the process with it (1 in 20 hang-ups under load).
    """
    driver = getattr(app, "_driver", None)
    if driver is None:
        return

    def discard(*_: object) -> None:
        return None

    driver.write = discard  # type: ignore[method-assign]
    driver.flush = discard  # type: ignore[method-assign]
