"""Token buckets (Prosody's util.throttle) on a clock the test moves."""

from __future__ import annotations

from minixmpp.throttle import Throttle, Throttles


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_poll_and_peek_as_prosody() -> None:
    clock = Clock()
    throttle = Throttle(5, 30, clock)  # 5 tokens, one more every 6 s
    assert all(throttle.poll() for _ in range(5))
    assert not throttle.peek() and not throttle.poll()
    clock.now += 5.9
    assert not throttle.poll()
    clock.now += 0.1
    assert throttle.poll() and not throttle.poll()
    clock.now += 3600
    assert throttle.update() == 5  # never more than max


def test_take_splits_or_takes_whole() -> None:
    clock = Clock()
    bucket = Throttle(2000, 2.0, clock)  # 1000 a second, 2000 at most, full
    assert bucket.take(1500) == 1500
    assert bucket.take(1500) == 500  # split: what there is
    assert bucket.take(10) == 0
    clock.now += 0.25
    assert bucket.take(1000) == 250
    clock.now += 0.5
    assert bucket.take(600, whole=True) == 0  # 500 there: all or none
    assert bucket.take(400, whole=True) == 400
    clock.now += 60
    assert bucket.take(5000, whole=True) == 5000  # larger than the bucket: once it is full
    assert bucket.balance == -3000  # owed
    clock.now += 3
    assert bucket.take(1, whole=True) == 0  # paid back, nothing more yet
    clock.now += 0.01
    assert bucket.take(1, whole=True) == 1


def test_a_table_keeps_the_most_recently_used() -> None:
    clock = Clock()
    table = Throttles(1, 60, 2, clock)
    assert table.get("a").poll() and table.get("b").poll()
    assert not table.peek("a") and table.peek("c")
    table.get("a")  # most recent: b is the oldest now
    table.get("c")
    assert len(table) == 2 and table.peek("b")  # b was forgotten: full again
    assert not table.peek("a")
