"""Eager coroutines, in-order handling and per-turn write coalescing (minixmpp.scheduling)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from minixmpp.scheduling import InOrder, WriteCoalescer, start_eager


async def test_a_coroutine_that_never_waits_runs_at_once_without_a_task() -> None:
    ran = []

    async def quick() -> None:
        ran.append(1)

    assert start_eager(quick()) is None
    assert ran == [1]  # before anything else could run


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    seen: list[Any] = []

    async def slow() -> None:
        seen.append("first step")
        seen.append(await gate)
        seen.append(asyncio.current_task() is not None)  # a real task after the first wait
        await asyncio.sleep(0)
        seen.append("done")

    task = start_eager(slow())
    assert task is not None and seen == ["first step"]
    loop.call_soon(gate.set_result, 42)
    await asyncio.wait_for(task, 5)
    assert seen == ["first step", 42, True, "done"]


async def test_an_exception_reaches_the_coroutine_that_waited() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    caught = []

    async def slow() -> None:
        try:
            await gate
        except ValueError as exc:
            caught.append(str(exc))

    task = start_eager(slow())
    assert task is not None
    gate.set_exception(ValueError("db down"))
    await asyncio.wait_for(task, 5)
    assert caught == ["db down"]


async def test_an_exception_in_the_first_step_is_handed_over() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    future = start_eager(broken())
    assert future is not None and future.done()
    with pytest.raises(RuntimeError, match="boom"):
        future.result()


async def test_cancelling_the_finishing_task_cancels_what_the_coroutine_awaits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    outcome = []

    async def slow() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    task = start_eager(slow())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert outcome == ["cancelled"] and gate.cancelled()


async def test_in_order_holds_later_items_while_one_waits() -> None:
    loop = asyncio.get_running_loop()
    gates = {2: loop.create_future()}
    handled: list[int] = []
    idle = asyncio.Event()
    kept: list[asyncio.Future[Any]] = []

    async def handle(item: int) -> None:
        if item in gates:
            await gates[item]
        handled.append(item)

    runner = InOrder(handle, idle.set, kept.append)
    assert runner.push([1, 2, 3]) is False  # 2 waits: 3 must wait behind it
    assert handled == [1] and runner.busy and runner.pending == 1
    assert runner.push([4]) is False
    assert handled == [1] and runner.pending == 2
    gates[2].set_result(None)
    await asyncio.wait_for(idle.wait(), 5)
    assert handled == [1, 2, 3, 4] and not runner.busy and len(kept) == 1
    assert runner.push([5]) is True and handled[-1] == 5


async def test_in_order_clear_drops_what_waits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    handled: list[int] = []
    idle = asyncio.Event()

    async def handle(item: int) -> None:
        if item == 1:
            await gate
        handled.append(item)

    runner = InOrder(handle, idle.set, lambda _task: None)
    runner.push([1, 2, 3])
    runner.clear()
    gate.set_result(None)
    await asyncio.wait_for(idle.wait(), 5)
    assert handled == [1]


class Output:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def flush(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise OSError("gone")


async def test_the_coalescer_flushes_each_output_once_at_the_next_turn() -> None:
    coalescer = WriteCoalescer(asyncio.get_running_loop())
    log: list[str] = []
    a, b, broken = Output("a", log), Output("b", log), Output("broken", log, fail=True)
    coalescer.request(a)
    coalescer.request(broken)
    coalescer.request(b)
    assert log == []  # nothing written during this turn
    await asyncio.sleep(0)
    assert log == ["a", "broken", "b"]  # one failing output does not stop the others
    await asyncio.sleep(0)
    assert log == ["a", "broken", "b"]
    coalescer.request(a)
    await asyncio.sleep(0)
    assert log[-1] == "a"
