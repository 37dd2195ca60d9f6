"""Token buckets (Prosody's util.throttle), and a bounded table of them by key.

``Throttle(max, period)`` holds ``max`` tokens, full at first, refilled at ``max / period`` a
second. Its clock is given (``time.monotonic`` by default), so that tests can move time.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class Throttle:
    __slots__ = ("balance", "clock", "max", "rate", "t")

    def __init__(self, max: float, period: float, clock: Clock = time.monotonic) -> None:
        self.max = max
        self.rate = max / period
        self.balance = max
        self.clock = clock
        self.t = clock()

    def update(self) -> float:
        now = self.clock()
        self.balance = min(self.max, self.balance + self.rate * max(0.0, now - self.t))
        self.t = now
        return self.balance

    def peek(self, cost: float = 1) -> bool:
        """``cost`` tokens are there."""
        return self.balance >= cost or self.update() >= cost

    def poll(self, cost: float = 1) -> bool:
        """Take ``cost`` tokens if they are there."""
        if self.peek(cost):
            self.balance -= cost
            return True
        return False

    def take(self, size: int, *, whole: bool = False) -> int:
        """Take up to ``size`` tokens; how many were taken (Prosody's poll with split). With
        ``whole``, all or none; more than the bucket holds goes through once it is full, and
        the balance owes the difference."""
        balance = self.update()
        if balance >= size or (whole and balance >= self.max):
            self.balance -= size
            return size
        if whole:
            return 0
        taken = math.floor(balance)
        self.balance -= taken
        return taken


class Throttles:
    """A throttle per key (an address), the ``size`` most recently used kept."""

    def __init__(self, max: float, period: float, size: int, clock: Clock) -> None:
        self.max, self.period, self.size, self.clock = max, period, size, clock
        self._table: OrderedDict[str, Throttle] = OrderedDict()

    def get(self, key: str) -> Throttle:
        throttle = self._table.pop(key, None)
        if throttle is None:
            throttle = Throttle(self.max, self.period, self.clock)
            if len(self._table) >= self.size:
                self._table.popitem(last=False)  # the least recently used
        self._table[key] = throttle
        return throttle

    def peek(self, key: str) -> bool:
        """``key`` has a token left (without making it the most recent)."""
        throttle = self._table.get(key)
        return throttle is None or throttle.peek()

    def clear(self) -> None:
        self._table.clear()

    def __len__(self) -> int:
        return len(self._table)
