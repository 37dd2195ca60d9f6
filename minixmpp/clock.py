"""The server's clock: what every module reads the time from, and tests move.

``Clock.time()`` is wall time (Unix seconds: expiry dates, stamps), ``Clock.monotonic()`` the
time that only goes forward (rates, timeouts). Both follow the system's until a test moves them:
``freeze()`` stops them, ``advance(s)`` moves both forward (frozen or not), ``unfreeze()`` lets
them run again from where they stand, and ``set_time(t)`` steps the wall time alone. Timers
made with ``call_later`` and ``sleep`` run on this clock: a frozen clock holds them until it
is advanced past their time, and an advance runs those it passes, in order; move it from the
event loop's thread. Nothing global is patched: ``asyncio.sleep`` and the event loop's own
time are untouched, so a test's own waits still work.

One asyncio timer stands for the earliest of the clock's timers; the rest wait in a heap.
Cancelled timers are dropped lazily, and the heap is rebuilt when most of it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("minixmpp.clock")
_seq = itertools.count()


class Timer:
    """A callback the clock runs once its time comes (``cancel()`` to drop it)."""

    __slots__ = ("_clock", "args", "callback", "done", "when")

    def __init__(
        self, clock: Clock, when: float, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        self._clock = clock
        self.when = when
        self.callback = callback
        self.args = args
        self.done = False  # ran or cancelled

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self._clock._cancelled += 1


def stamp(when: float) -> str:
    """A Unix time as an XEP-0082 DateTime (whole seconds, UTC): ``2026-12-02T15:04:05Z``."""
    moment = datetime.datetime.fromtimestamp(int(when), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self._wall_offset = 0.0
        self._mono_offset = 0.0
        self._frozen: list[float] | None = None  # [wall, monotonic] while frozen
        self._heap: list[tuple[float, int, Timer]] = []
        self._cancelled = 0
        self._wakeup: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- reading ------------------------------------------------------------------------

    def time(self) -> float:
        """Wall time, Unix seconds."""
        if self._frozen is not None:
            return self._frozen[0]
        return time.time() + self._wall_offset

    def monotonic(self) -> float:
        if self._frozen is not None:
            return self._frozen[1]
        return time.monotonic() + self._mono_offset

    def stamp(self) -> str:
        """The wall time as an XEP-0082 DateTime (seconds, UTC): ``2026-12-02T15:04:05Z``."""
        return stamp(self.time())

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    # -- moving (tests) -----------------------------------------------------------------

    def freeze(self) -> None:
        """Stop time where it is (until ``advance`` or ``unfreeze``)."""
        if self._frozen is None:
            self._frozen = [self.time(), self.monotonic()]
            self._reschedule()

    def unfreeze(self) -> None:
        """Let time run again from where it stands."""
        if self._frozen is not None:
            wall, mono = self._frozen
            self._frozen = None
            self._wall_offset = wall - time.time()
            self._mono_offset = mono - time.monotonic()
            self._reschedule()

    def advance(self, seconds: float) -> None:
        """Move time forward; the timers it passes run now, in order."""
        if seconds < 0:
            raise ValueError("time does not go back")
        if self._frozen is not None:  # exact: frozen at 10.0, advanced by 1.5, it reads 11.5
            self._frozen[0] += seconds
            self._frozen[1] += seconds
        else:
            self._wall_offset += seconds
            self._mono_offset += seconds
        self._run_due()

    def set_time(self, when: float) -> None:
        """Set the wall time (Unix seconds), forward or back, as an NTP step does: the
        monotonic time and the timers do not move. A frozen clock stays at ``when``."""
        if self._frozen is not None:
            self._frozen[0] = when
        else:
            self._wall_offset = when - time.time()

    def reset(self) -> None:
        """Back to the system's time, running (the test harness's reset). Pending timers keep
        the time they had left: one due in 10 s is due 10 s from now."""
        before = self.monotonic()
        self._frozen = None
        self._wall_offset = self._mono_offset = 0.0
        shift = self.monotonic() - before
        if shift:
            self._heap = [(when + shift, seq, timer) for when, seq, timer in self._heap]
            for when, _, timer in self._heap:
                timer.when = when
            heapq.heapify(self._heap)
        self._reschedule()

    # -- timers -------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` once ``delay`` seconds of this clock have passed."""
        timer = Timer(self, self.monotonic() + max(0.0, delay), callback, args)
        first = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (timer.when, next(_seq), timer))
        if first is None or timer.when < first or self._wakeup is None:
            self._reschedule()
        return timer

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds of this clock."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await future
        finally:
            timer.cancel()

    def every(
        self, interval: float, callback: Callable[[], Awaitable[None] | None]
    ) -> asyncio.Task[None]:
        """A task that runs ``callback`` every ``interval`` seconds of this clock (cancel it to
        stop); a callback that raises is reported and the next run still comes."""

        async def repeat() -> None:
            while True:
                await self.sleep(interval)
                try:
                    result = callback()
                    if result is not None:
                        await result
                except Exception:
                    log.exception("a periodic task failed")

        return asyncio.get_running_loop().create_task(repeat())

    def pending(self) -> int:
        """Timers waiting (not cancelled): for tests and diagnostics."""
        return len(self._heap) - self._cancelled

    def _reschedule(self) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        self._drop_cancelled()
        if not self._heap or self._frozen is not None:
            return
        with contextlib.suppress(RuntimeError):  # outside a running loop: the last one seen
            self._loop = asyncio.get_running_loop()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        delay = max(0.0, self._heap[0][0] - self.monotonic())
        self._wakeup = loop.call_at(loop.time() + delay, self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup = None
        self._run_due()

    def _run_due(self) -> None:
        now = self.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            if timer.done:
                self._cancelled -= 1
                continue
            timer.done = True  # it ran: cancelling it now does nothing
            try:
                timer.callback(*timer.args)
            except Exception:
                log.exception("a timer failed")
        self._reschedule()

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].done:
            heapq.heappop(self._heap)
            self._cancelled -= 1
        if self._cancelled > 64 and self._cancelled > len(self._heap) // 2:
            self._heap = [entry for entry in self._heap if not entry[2].done]
            heapq.heapify(self._heap)
            self._cancelled = 0
