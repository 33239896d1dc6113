"""Recent provider call outcomes, for /ready: a provider whose /health says ok while most calls fail is not ready.

The gateway is not ready when at least MIN_CALLS of the last WINDOW_CALLS calls, all within WINDOW_SECONDS, exist
and more than MAX_FAILURE_RATIO of them failed. Old outcomes age out, so a quiet gateway turns ready again."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_CALLS = 20
WINDOW_SECONDS = 60.0
MIN_CALLS = 5
MAX_FAILURE_RATIO = 0.5


class RecentOutcomes:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=WINDOW_CALLS)

    def record(self, ok: bool) -> None:
        self._outcomes.append((self._clock(), ok))

    def problem(self) -> str | None:
        """None when recent calls mostly succeed (or too few were made to tell), else the reason for /ready."""
        since = self._clock() - WINDOW_SECONDS
        recent = [ok for at, ok in self._outcomes if at >= since]
        failed = recent.count(False)
        if len(recent) < MIN_CALLS or failed <= MAX_FAILURE_RATIO * len(recent):
            return None
        return (f"{failed} of the last {len(recent)} provider calls (within {WINDOW_SECONDS:g} s) failed; "
                f"more than {MAX_FAILURE_RATIO:.0%} fail")
