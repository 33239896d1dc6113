"""Keeps request-derived label values bounded so one client cannot explode the number of series."""

from __future__ import annotations

from collections.abc import Iterable

from stack.catalog import OTHER


class LabelGuard:
    """Known values pass; with an allow-list anything else is `other`; without one, new values are admitted
    until `cap` distinct values exist (`other` included), then fold into `other`."""

    def __init__(self, label: str, cap: int, allowed: Iterable[str] | None = None) -> None:
        if cap < 2:
            raise ValueError("cap must leave room for at least one value besides 'other'")
        self.label = label
        self.cap = cap
        self.allowed = frozenset(allowed) if allowed is not None else None
        self._seen: set[str] = set()

    def __call__(self, value: str) -> tuple[str, bool]:
        """The value to put on the label, and whether the guard folded it."""
        if self.allowed is not None:
            return (value, False) if value in self.allowed else (OTHER, True)
        if value in self._seen:
            return value, False
        if len(self._seen) < self.cap - 1:
            self._seen.add(value)
            return value, False
        return OTHER, True

    @property
    def distinct_values(self) -> int:
        return (len(self.allowed) if self.allowed is not None else len(self._seen)) + 1
