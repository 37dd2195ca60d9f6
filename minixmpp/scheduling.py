"""How work is scheduled: eager coroutines, one connection's events in order, and output
coalesced per event-loop turn.

Theory of operation
-------------------
Most event handlers never wait for anything: a stanza is routed and answered from memory. So a
handler's coroutine is *started eagerly* (``start_eager``): its first step runs at once, inside
the caller, and only a coroutine that really suspends (a database read) becomes an asyncio Task
that finishes it. On Python 3.12 and later that is asyncio's own eager task; on 3.11 the first
step is taken by hand and an ordinary Task waits for what the coroutine waits for (through a
callback: nothing of asyncio's private state is touched), then ``await``s the rest of it.
During the first step on 3.11 there is no current task, so a handler there must not use
``asyncio.timeout()`` before its first ``await``; on 3.12 and later there is a real task
throughout.

``InOrder`` runs one connection's events strictly one after another: while a handler is
suspended, later events wait (and the connection holds its input unparsed, so a handler that
restarts the stream or starts TLS always does so before the next byte is read).

``WriteCoalescer``: what is sent to a connection during one turn of the event loop leaves in one
write (one TLS record, one syscall), however many stanzas it was: a login that brings 50
presences, or 50 senders whose messages reach one recipient in the same turn. A connection asks
for a flush once; the coalescer flushes every connection that asked, at the start of the next
loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger("minixmpp.scheduling")

Work = Coroutine[Any, Any, None]


class _Rest:
    """The rest of a coroutine whose first step already ran: awaiting it resumes it."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Work) -> None:
        self._coro = coro

    def __await__(self) -> Any:
        return self._coro.__await__()


async def _finish(coro: Work, waiting: Any) -> None:
    # The coroutine suspended on the future ``waiting``. That future is already marked as
    # awaited (by the coroutine), so it cannot be awaited a second time; a future of our own,
    # completed by a callback on it, is awaited instead. Then the coroutine goes on, and reads
    # the outcome, result or exception, itself.
    if waiting is None:
        await asyncio.sleep(0)  # a bare yield
    else:
        relay: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: Any) -> None:
            if not relay.done():
                relay.set_result(None)

        waiting.add_done_callback(wake)
        try:
            await relay
        except asyncio.CancelledError:
            waiting.cancel()  # this task was cancelled: so is what the coroutine awaits
    await _Rest(coro)


def _start_by_hand(loop: asyncio.AbstractEventLoop, coro: Work) -> asyncio.Future[None] | None:
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    except BaseException as exc:
        # Failed in its first step: hand the exception over as a finished task would.
        failed: asyncio.Future[None] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return loop.create_task(_finish(coro, waiting))


def _start_eager_task(loop: asyncio.AbstractEventLoop, coro: Work) -> asyncio.Future[None] | None:
    task: asyncio.Task[None] = asyncio.eager_task_factory(loop, coro)  # type: ignore[attr-defined]
    if task.done() and not task.cancelled() and task.exception() is None:
        return None
    return task


if sys.version_info >= (3, 12):
    _start = _start_eager_task
else:
    _start = _start_by_hand


def start_eager(
    coro: Work, loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[None] | None:
    """Run ``coro``'s first step now. ``None`` if it finished cleanly; otherwise the Task that
    finishes it (or a future holding the exception it raised)."""
    return _start(loop or asyncio.get_running_loop(), coro)


class InOrder:
    """Runs ``handle(item)`` for each item, one at a time, in the order given.

    ``push()`` returns True when everything pushed so far has been handled; False when a
    handler is suspended (the rest waits, and ``on_idle`` is called once all is done).
    ``handle`` must not raise: it is the caller's error boundary.
    """

    __slots__ = ("_handle", "_on_idle", "_queue", "_task", "keep")

    def __init__(
        self,
        handle: Callable[[Any], Work],
        on_idle: Callable[[], None],
        keep: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        self._handle = handle
        self._on_idle = on_idle
        self._queue: list[Any] = []  # short: a list is far smaller than a deque when empty
        self._task: asyncio.Future[None] | None = None
        self.keep = keep

    @property
    def busy(self) -> bool:
        """A handler is suspended: new items wait."""
        return self._task is not None

    @property
    def pending(self) -> int:
        """Items waiting behind the suspended handler."""
        return len(self._queue)

    def push(self, items: list[Any]) -> bool:
        if self._task is not None:
            self._queue.extend(items)
            return False
        self._queue.extend(items)
        return self._drain()

    def clear(self) -> None:
        """Forget the items that wait (the connection is gone)."""
        self._queue.clear()

    def close(self) -> None:
        """Forget the items and the callbacks: the owner is gone, and the bound methods would
        keep it (and everything it holds) alive until the cyclic garbage collector runs."""
        self._queue.clear()
        self._handle = _no_handler
        self._on_idle = _nothing

    def _drain(self) -> bool:
        queue = self._queue
        while queue:
            item = queue.pop(0)
            task = start_eager(self._handle(item))
            if task is not None:
                self._task = task
                self.keep(task)
                task.add_done_callback(self._resumed)
                return False
        return True

    def _resumed(self, task: asyncio.Future[None]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("an event handler escaped its error boundary", exc_info=task.exception())
        if self._drain():
            self._on_idle()


async def _no_handler(_item: Any) -> None:
    pass


def _nothing() -> None:
    pass


class Flushable(Protocol):
    def flush(self) -> None: ...


class WriteCoalescer:
    """Flushes, once per event-loop turn, every output that asked for it (see the module
    docstring). One per server."""

    __slots__ = ("_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def request(self, output: Flushable) -> None:
        """``output`` has data waiting: flush it at the next turn (call once per batch)."""
        self._dirty.append(output)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush_all)

    def flush_all(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for output in dirty:
            try:
                output.flush()
            except Exception:
                log.exception("flushing output failed")
