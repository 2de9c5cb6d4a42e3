"""A total deadline for one outside call: a stalled peer becomes an error, never a hang.

Per-read timeouts (httpx, requests, aiohttp) do not bound a peer that answers one
byte a second; these helpers bound the whole call. The deadline is measured on the
Clock, with a wall-clock backstop: a VirtualClock holds still while real socket I/O
is in flight (so it would never fire on a stalled socket), and a sped-up ScaledClock
would starve real I/O, so for those only the wall clock counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.clock import Clock

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call did not complete within its total deadline; str() says which and how long."""


async def within(
    seconds: float, call: Awaitable[T], *, clock: Clock | None = None, what: str = "the call"
) -> T:
    """``await call``, cancelled after ``seconds`` (Clock, and wall time as a backstop)."""
    task: asyncio.Future[T] = asyncio.ensure_future(call)
    timers: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.sleep(max(0.0, seconds)))]
    if clock is not None and not getattr(clock, "speed", None):
        timers.append(asyncio.ensure_future(clock.sleep(seconds)))
    try:
        await asyncio.wait({task, *timers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for timer in timers:
            timer.cancel()
        if not task.done():
            task.cancel()
            # never raises the call's own outcome, and never swallows a cancellation of the
            # caller arriving meanwhile (`suppress(CancelledError): await task` did)
            await asyncio.wait({task})
    if task.cancelled():
        raise DeadlineExceeded(f"{what} gave no complete answer within {seconds:g}s")
    return task.result()


def in_daemon_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking call in a daemon thread.

    Unlike ``asyncio.to_thread``, a call abandoned at its deadline does not hold up the
    process at exit (asyncio.run joins the default executor's threads, which would wait
    for a peer dribbling one byte a second).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed to the awaiting coroutine as is
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="deploydeck-io", daemon=True).start()
    return future
