"""The simulated provider's prompt cache: a prompt whose beginning was seen recently (the shared system prompt, the
earlier turns of a conversation) is billed that beginning as cached input tokens and prefills only the rest, as
OpenAI, Anthropic and Gemini do with prompt prefixes.

Simplified from real providers in one way: prefixes end at message boundaries (real ones cache in blocks of tokens,
e.g. 128, from 1024 tokens up); the sizes are `prompt_cache` in stack/catalog.yaml. The last message of a prompt is
never read from the cache (the new question is always computed), so an identical repeated prompt of one message
has nothing cached. Entries are per model, least recently used first out, and expire `ttl_seconds` after their
last use."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from stack.catalog import PromptCacheSettings
from stack.tokens import TOKENS_PER_REPLY_PRIMER, count_prompt_tokens


class PromptCache:
    def __init__(self, settings: PromptCacheSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()  # prefix key -> expiry time, oldest use first

    def __len__(self) -> int:
        return len(self._entries)

    def use(self, model: str, messages: Sequence[dict], nonce: str | None = None) -> int:
        """The cached prompt tokens of this request (its longest recently seen prefix, 0 if none), then remember its
        prefixes. A `nonce` is part of every key, as a unique token at the start of the prompt would be: nothing is
        found, and the request's prefixes still take room in the cache."""
        now = self._clock()
        prefixes = self._prefixes(model, messages, nonce)
        cached = 0
        for key, tokens, reusable in reversed(prefixes):
            expiry = self._entries.get(key)
            if reusable and expiry is not None and expiry > now:
                cached = tokens
                break
        for key, _tokens, _reusable in prefixes:
            self._entries[key] = now + self.settings.ttl_seconds
            self._entries.move_to_end(key)
        while self._entries and next(iter(self._entries.values())) <= now:  # expired (oldest use first)
            self._entries.popitem(last=False)
        while len(self._entries) > self.settings.max_entries:
            self._entries.popitem(last=False)
        return cached

    def _prefixes(self, model: str, messages: Sequence[dict], nonce: str | None) -> list[tuple[str, int, bool]]:
        """(key, tokens, readable by this request) of every message-boundary prefix long enough to be cached."""
        found = []
        for end in range(1, len(messages) + 1):
            head = [{"role": m.get("role"), "content": m.get("content")} for m in messages[:end]]
            tokens = count_prompt_tokens(m["content"] for m in head) - TOKENS_PER_REPLY_PRIMER
            if tokens < self.settings.min_prefix_tokens:
                continue
            key = hashlib.sha256(json.dumps([model, nonce, head]).encode()).hexdigest()
            found.append((key, tokens, end < len(messages)))
        return found
