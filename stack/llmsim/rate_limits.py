"""The simulated provider's rate limits, enforced and reported as OpenAI does: per model, a limit on requests and one
on tokens per minute (`rate_limits` in stack/catalog.yaml), each a bucket that holds at most the limit and refills
continuously at the limit per 60 s (a token bucket: an idle model is back to its full limit within a minute, and a
steady load below the limit never empties it).

A request is admitted when its model's requests bucket holds one request and its tokens bucket the request's
estimated tokens (the caller's estimate: llmsim takes prompt tokens + max_tokens, as OpenAI counts a request before
its answer exists); both are then taken out. Otherwise nothing is taken and the decision says which limit refused it
and how long until the bucket holds enough. `scale` (the `rate_limit_scale` fault knob) multiplies both limits at
the time of the call; a bucket shrunk by it keeps no more than its new limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from stack.catalog import RateLimits

WINDOW_SECONDS = 60.0  # a limit is per minute: an empty bucket is full again after this long
_SHORTFALL = 1e-9  # what a bucket may lack and still admit: refills are sums of floats


class LimitKind(str, Enum):
    REQUESTS = "requests"
    TOKENS = "tokens"


@dataclass(frozen=True)
class Allowance:
    """One limit of one model at one moment, what the x-ratelimit-*-<kind> headers say."""

    limit: int
    remaining: int
    reset_seconds: float  # until the bucket is full again at the current rate


@dataclass(frozen=True)
class Decision:
    requests: Allowance
    tokens: Allowance
    requested_tokens: int
    refused_by: LimitKind | None = None
    # seconds until both buckets hold enough for this request; None when admitted, or when the request needs more
    # tokens than the whole limit (no wait helps)
    retry_after_seconds: float | None = None

    @property
    def admitted(self) -> bool:
        return self.refused_by is None

    def allowance(self, kind: LimitKind) -> Allowance:
        return self.requests if kind is LimitKind.REQUESTS else self.tokens


@dataclass
class _Bucket:
    level: float | None = None  # None: never used, full
    updated: float = 0.0

    def fill(self, capacity: int, now: float) -> float:
        """The bucket's content now, refilled since it was last seen and capped at `capacity`."""
        if self.level is None:
            self.level = float(capacity)
        else:
            refill = capacity * max(0.0, now - self.updated) / WINDOW_SECONDS
            self.level = min(float(capacity), self.level + refill)
        self.updated = now
        return self.level


@dataclass
class _ModelBuckets:
    requests: _Bucket = field(default_factory=_Bucket)
    tokens: _Bucket = field(default_factory=_Bucket)


def scaled(limit: int, scale: float) -> int:
    """A limit times the `rate_limit_scale` knob; never below 1."""
    return max(1, round(limit * scale))


def _allowance(capacity: int, level: float) -> Allowance:
    return Allowance(limit=capacity, remaining=max(0, math.floor(level)),
                     reset_seconds=WINDOW_SECONDS * (capacity - level) / capacity)


class RateLimiter:
    def __init__(self, limits: Mapping[str, RateLimits], clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._buckets = {model: _ModelBuckets() for model in self._limits}

    def admit(self, model: str, tokens: int, scale: float = 1.0) -> Decision:
        """Take one request and `tokens` tokens from `model`'s limits if both hold enough, else take nothing."""
        (request_capacity, requests), (token_capacity, available) = self._levels(model, scale)
        state = (_allowance(request_capacity, requests), _allowance(token_capacity, available))
        if tokens > token_capacity:
            return Decision(*state, tokens, refused_by=LimitKind.TOKENS)
        missing = {LimitKind.REQUESTS: 1 - requests, LimitKind.TOKENS: tokens - available}
        if max(missing.values()) > _SHORTFALL:
            waits = {LimitKind.REQUESTS: missing[LimitKind.REQUESTS] * WINDOW_SECONDS / request_capacity,
                     LimitKind.TOKENS: missing[LimitKind.TOKENS] * WINDOW_SECONDS / token_capacity}
            refused_by = max(waits, key=lambda kind: waits[kind])  # the limit that holds it back longest
            return Decision(*state, tokens, refused_by=refused_by, retry_after_seconds=waits[refused_by])
        buckets = self._buckets[model]
        buckets.requests.level = requests = max(0.0, requests - 1)
        buckets.tokens.level = available = max(0.0, available - tokens)
        return Decision(_allowance(request_capacity, requests), _allowance(token_capacity, available), tokens)

    def peek(self, model: str, scale: float = 1.0) -> Decision:
        """`model`'s limits now, taking nothing (for answers that never reached the limiter, and the gauges)."""
        (request_capacity, requests), (token_capacity, available) = self._levels(model, scale)
        return Decision(_allowance(request_capacity, requests), _allowance(token_capacity, available), 0)

    def _levels(self, model: str, scale: float) -> tuple[tuple[int, float], tuple[int, float]]:
        """(capacity, content) of `model`'s requests bucket and of its tokens bucket, brought up to now."""
        now, limits, buckets = self._clock(), self._limits[model], self._buckets[model]
        request_capacity = scaled(limits.requests_per_minute, scale)
        token_capacity = scaled(limits.tokens_per_minute, scale)
        return ((request_capacity, buckets.requests.fill(request_capacity, now)),
                (token_capacity, buckets.tokens.fill(token_capacity, now)))


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI writes x-ratelimit-reset-*: Go's notation, e.g. "0s", "20ms", "8.64s", "1m0s", rounded
    up to the millisecond (waiting that long is always enough)."""
    millis = math.ceil(round(max(0.0, seconds) * 1000, 6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def headers(decision: Decision) -> dict[str, str]:
    """The six x-ratelimit-* headers OpenAI sends with every answer."""
    found = {}
    for kind in LimitKind:
        allowance = decision.allowance(kind)
        found[f"x-ratelimit-limit-{kind.value}"] = str(allowance.limit)
        found[f"x-ratelimit-remaining-{kind.value}"] = str(allowance.remaining)
        found[f"x-ratelimit-reset-{kind.value}"] = openai_duration(allowance.reset_seconds)
    return found


def retry_after(decision: Decision) -> str | None:
    """The Retry-After header of a refusal: whole seconds, at least 1; None when no wait helps."""
    if decision.retry_after_seconds is None:
        return None
    return str(max(1, math.ceil(decision.retry_after_seconds)))
