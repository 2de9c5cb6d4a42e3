"""Time for the engine: every wait and every timestamp goes through a Clock.

Tests use VirtualClock so a 15-minute window runs in milliseconds; the demo uses
ScaledClock so a whole rollout takes about two minutes of wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that runs `speed` times faster than the wall clock (the demo's speed knob)."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class VirtualClock:
    """Simulated time that only moves when every task is waiting on it.

    With ``auto_advance`` (the default) the clock jumps to the earliest pending
    deadline once the event loop has had a few turns without anyone waking up,
    so an hour-long rollout runs as fast as the code allows. Tests that want to
    step by hand pass ``auto_advance=False`` and call :meth:`advance`.
    """

    #: loop turns given to runnable tasks before time jumps; chains of awaits
    #: between two sleeps need a handful of turns to settle.
    SETTLE_TURNS = 25

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = True) -> None:
        self._now = start or datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        self._auto = auto_advance
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self._holds = 0

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = self._now + timedelta(seconds=max(0.0, seconds))
        heapq.heappush(self._waiters, (deadline, next(self._seq), fut))
        if self._auto and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive())
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done():
                fut.cancel()
            raise

    def hold(self) -> _Hold:
        """Keep time still while real I/O (a thread, a socket) is in flight."""
        return _Hold(self)

    async def advance(self, seconds: float) -> None:
        """Move time forward by hand, waking every sleeper whose deadline passes."""
        target = self._now + timedelta(seconds=seconds)
        while self._waiters and self._waiters[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._waiters)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await self._settle()
        self._now = target
        await self._settle()

    async def _settle(self) -> None:
        for _ in range(self.SETTLE_TURNS):
            await asyncio.sleep(0)

    async def _drive(self) -> None:
        while True:
            await self._settle()
            if self._holds:
                await asyncio.sleep(0.001)
                continue
            self._drop_cancelled()
            if not self._waiters:
                return
            deadline, _, fut = heapq.heappop(self._waiters)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)

    def _drop_cancelled(self) -> None:
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)


class _Hold:
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def __enter__(self) -> None:
        self._clock._holds += 1

    def __exit__(self, *exc: object) -> None:
        self._clock._holds -= 1

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()
