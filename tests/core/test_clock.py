"""The server's clock: frozen, advanced, and the timers that run on it."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as s

from minixmpp.clock import Clock


async def test_it_follows_the_system_until_moved() -> None:
    clock = Clock()
    assert abs(clock.time() - time.time()) < 1
    before = clock.monotonic()
    clock.advance(3600)
    assert clock.monotonic() - before >= 3600
    assert clock.time() - time.time() > 3599


async def test_a_frozen_clock_stands_still_and_moves_exactly() -> None:
    clock = Clock()
    clock.freeze()
    wall, mono = clock.time(), clock.monotonic()
    await asyncio.sleep(0.02)  # real time passes
    assert (clock.time(), clock.monotonic()) == (wall, mono)
    clock.advance(1.5)
    assert (clock.time(), clock.monotonic()) == (wall + 1.5, mono + 1.5)
    clock.unfreeze()
    assert clock.monotonic() >= mono + 1.5  # it goes on from where it stood
    assert clock.monotonic() < mono + 2.5


async def test_time_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="does not go back"):
        Clock().advance(-1)


def test_stamp_is_xep_0082() -> None:
    clock = Clock()
    clock.freeze()
    clock.advance(1_800_000_000 - clock.time())
    assert clock.stamp() == "2027-01-15T08:00:00Z"


async def test_timers_run_on_real_time_when_not_frozen() -> None:
    clock = Clock()
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), 5)
    await asyncio.wait_for(clock.sleep(0.01), 5)


async def test_a_frozen_clock_holds_timers_until_advanced_past_them() -> None:
    clock = Clock()
    clock.freeze()
    ran: list[str] = []
    clock.call_later(10, ran.append, "ten")
    clock.call_later(5, ran.append, "five")
    cancelled = clock.call_later(7, ran.append, "seven")
    cancelled.cancel()
    sleeper = asyncio.ensure_future(clock.sleep(20))
    await asyncio.sleep(0)  # it starts, and waits on the clock
    assert clock.pending() == 3
    # a real timer of the loop that is due later than the clock's would have been: proof that
    # the clock's timers did not run on real time meanwhile
    await asyncio.sleep(0.02)
    assert ran == [] and not sleeper.done()
    clock.advance(6)
    assert ran == ["five"]
    clock.advance(10)
    assert ran == ["five", "ten"] and not sleeper.done()
    clock.advance(4)
    await asyncio.wait_for(sleeper, 5)
    assert clock.pending() == 0


async def test_unfreezing_schedules_what_waits() -> None:
    clock = Clock()
    clock.freeze()
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    clock.unfreeze()
    await asyncio.wait_for(fired.wait(), 5)


async def test_a_failing_timer_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    clock.freeze()
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    clock.call_later(1, boom)
    clock.call_later(2, ran.append, 2)
    clock.advance(3)
    assert ran == [2]
    assert "a timer failed" in caplog.text


async def test_every_repeats_on_the_clock() -> None:
    clock = Clock()
    clock.freeze()
    runs: list[float] = []
    task = clock.every(60, lambda: runs.append(clock.monotonic()))
    await asyncio.sleep(0)  # the task starts and waits on the clock
    start = clock.monotonic()
    for _ in range(3):
        clock.advance(60)
        await asyncio.sleep(0)  # the task wakes
        await asyncio.sleep(0)
    task.cancel()
    assert runs == [start + 60, start + 120, start + 180]


async def test_cancelled_timers_do_not_pile_up() -> None:
    clock = Clock()
    clock.freeze()
    for _ in range(1000):
        clock.call_later(1000, lambda: None).cancel()
    assert clock.pending() == 0
    assert len(clock._heap) < 200


@given(s.lists(s.integers(min_value=0, max_value=10**6), max_size=30))
def test_timers_run_in_order_of_their_time(delays: list[int]) -> None:
    clock = Clock()
    clock.freeze()
    ran: list[float] = []
    for delay in delays:
        clock.call_later(delay, ran.append, delay)
    clock.advance(1e6)
    assert ran == sorted(delays)
