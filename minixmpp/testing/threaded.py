"""``ThreadedXmppServer``: an ``XmppServer`` in its own thread and event loop, for
synchronous test suites and for clients that run their own loop (slixmpp's ``process()``,
a blocking socket library)::

    with XmppServer(users={"alice": "secret"}).start_in_thread() as server:
        client = MyClient("alice@localhost", "secret", ca=server.ca_file)
        client.connect(*server.c2s_address)
        server.wait_for("resource-bind")
        server.reset()

Every method of ``XmppServer`` is here with the same arguments, blocking until the server's
loop has done it; ``clock`` and ``faults`` are moved from the server's thread too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from minixmpp.testing.server import XmppServer

T = TypeVar("T")
TIMEOUT = 60.0  # the longest any call may take (a start, a reset, a wait)


class _OnLoop:
    """An object whose methods run on the server's loop (the clock, the faults, the log)."""

    def __init__(self, owner: ThreadedXmppServer, target: Callable[[], Any]) -> None:
        self._owner, self._target = owner, target

    def __getattr__(self, name: str) -> Any:
        value = self._owner._run(lambda: getattr(self._target(), name))
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._owner._run(lambda: value(*args, **kwargs))


class ThreadedXmppServer:
    def __init__(self, server: XmppServer) -> None:
        self.aio = server  # the server itself: touch it only from its loop (``_run``)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="minixmpp-test", daemon=True)
        self.clock = _OnLoop(self, lambda: server.clock)
        self.faults = _OnLoop(self, lambda: server.faults)
        self.traffic = _OnLoop(self, lambda: server.traffic)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def _block(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Run ``coro`` on the server's loop and wait here for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _await(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """What a coroutine method gives its caller (the result: see the plugin's variant)."""
        return self._block(coro)

    def _run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the server's loop; its result (or its exception) here."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result(TIMEOUT)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> ThreadedXmppServer:
        self._thread.start()
        try:
            self._block(self.aio.start())
        except BaseException:
            self._end_thread()
            raise
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._block(self.aio.stop())
        finally:
            self._end_thread()

    def _end_thread(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)

    def __enter__(self) -> ThreadedXmppServer:
        return self if self._thread.is_alive() else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the same as XmppServer's ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """Properties (``host``, ``c2s_address``, ``ca_file``, ``http_url``…) read on the
        loop; coroutine methods (``create_user``, ``reset``, ``wait_for``…) awaited there;
        plain methods (``received_by``, ``invites``…) called there."""
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._run(lambda: getattr(self.aio, name))
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._run(lambda: value(*args, **kwargs))
            if asyncio.iscoroutine(result):
                return self._await(result)
            return result

        return call
