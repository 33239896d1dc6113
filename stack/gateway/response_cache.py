"""The gateway's response cache: a deterministic request answered recently is answered again without a provider call.

A request is cacheable when it carries a `seed` (the provider's answer is then a function of the request) and does
not say `"cache": {"no-cache": true}`. Its key is an exact match on the normalised request: the model, every
message's role and content (leading and trailing whitespace removed, inner runs of whitespace collapsed to one
space), max_tokens and the seed. Who asks (attribution) and whether the answer is streamed are not part of the key:
the same question asked by two departments, once streamed and once not, is one entry.

Bounded twice (stack/catalog.yaml `response_cache:`): at most `max_entries` answers, the least recently used evicted
first, and each answer lives `ttl_seconds` after it was stored. Only complete answers are stored (a stream the client
cancelled, or an error, never is)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stack.catalog import ResponseCacheSettings

BYPASS_NO_SEED = "no_seed"
BYPASS_REQUESTED = "requested"
BYPASS_REASONS = (BYPASS_NO_SEED, BYPASS_REQUESTED)

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CachedAnswer:
    """A complete provider answer as it was billed, kept to answer the same request again."""

    model: str
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float  # what the provider call cost; a cache hit saves exactly this


def normalised_content(content: str) -> str:
    return _WHITESPACE.sub(" ", content).strip()


def cache_key(model: str, messages: Sequence[tuple[str, str]], max_tokens: int | None, seed: int) -> str:
    """`messages`: (role, content) pairs in order."""
    canonical = json.dumps([model, [[role, normalised_content(content)] for role, content in messages],
                            max_tokens, seed], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Thread-safe LRU with a TTL; time comes from `clock` (monotonic seconds) so tests can move it."""

    def __init__(self, settings: ResponseCacheSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = settings.max_entries
        self.ttl_seconds = settings.ttl_seconds
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()  # key -> (expires_at, answer)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired(self.clock())
            return len(self._entries)

    def get(self, key: str) -> CachedAnswer | None:
        """The live answer for `key` (counted as a hit), or None (counted as a miss)."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None

    def put(self, key: str, answer: CachedAnswer) -> None:
        now = self.clock()
        with self._lock:
            self._entries[key] = (now + self.ttl_seconds, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def hit_ratio(self) -> float | None:
        """Hits over lookups since the gateway started (None before the first lookup)."""
        with self._lock:
            lookups = self.hits + self.misses
            return self.hits / lookups if lookups else None

    def _drop_expired(self, now: float) -> None:
        expired = [key for key, (expires_at, _) in self._entries.items() if expires_at <= now]
        for key in expired:
            del self._entries[key]
