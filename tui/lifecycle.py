"""How the dashboard ends when its terminal goes away."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from textual.app import App


@contextlib.contextmanager
def exit_on_hangup(app: App[object]) -> Iterator[None]:
    """A closed terminal (SIGHUP) quits like `q` does, so on_unmount closes the sessions: the
    simulated cluster's kubeconfig and a demo's Prometheus go with the dashboard."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, app.exit)
    except (NotImplementedError, RuntimeError, AttributeError):  # not on this platform
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
