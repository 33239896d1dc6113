"""Server-sent events on the gateway's side: what a streamed answer delivered so far (StreamTally), and a cached
answer replayed as a stream. Pure: no I/O, time comes in as arguments.

Definitions (docs/contract.md):
- time to first token: from the start of the provider call to the first chunk carrying content;
- time per output token: (last content chunk - first content chunk) / (output tokens - 1), for answers of at least
  two tokens (the first token's time is the TTFT's, not the decode's)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from stack.gateway.provider import ProviderError, Usage, parse_usage
from stack.gateway.response_cache import CachedAnswer

DONE = b"data: [DONE]\n\n"


def sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def sse_error(message: str, error_type: str, request_id: str) -> bytes:
    """The event a stream ends with when it fails after the 200 was sent (the status cannot change)."""
    return sse(json.dumps({"error": {"message": message, "type": error_type, "request_id": request_id}}))


@dataclass
class StreamTally:
    """What one streamed answer has delivered, chunk by chunk. `started`: the provider call's start (perf_counter)."""

    started: float
    first_chunk_at: float | None = None
    last_chunk_at: float | None = None
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None
    usage: Usage | None = None

    def observe(self, chunk: dict, now: float) -> bool:
        """Take one chunk received at `now`; True when it carries content. ProviderError when its usage is not one."""
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if chunk.get("usage"):
            try:
                self.usage = parse_usage(chunk["usage"])
            except ValueError as exc:
                raise ProviderError("bad_response", f"provider stream sent an unreadable usage ({exc})", 502) from exc
        content = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            piece = (choice.get("delta") or {}).get("content")
            if isinstance(piece, str) and piece:
                content = True
                self.parts.append(piece)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if content:
            if self.first_chunk_at is None:
                self.first_chunk_at = now
            self.last_chunk_at = now
        return content

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_chunk_at is None else self.first_chunk_at - self.started

    def time_per_output_token(self, output_tokens: int) -> float | None:
        if self.first_chunk_at is None or self.last_chunk_at is None or output_tokens < 2:
            return None
        return (self.last_chunk_at - self.first_chunk_at) / (output_tokens - 1)


def is_usage_only(chunk: dict) -> bool:
    """The final `include_usage` chunk: usage and no choices (withheld from a client that did not ask for it)."""
    return bool(chunk.get("usage")) and not chunk.get("choices")


def replay(answer: CachedAnswer, include_usage: bool) -> list[bytes]:
    """A cached answer as the events a streamed provider answer would have sent (one word a chunk), usage 0 tokens
    billed: a cache hit buys nothing."""
    base = {"id": f"chatcmpl-cache-{secrets.token_hex(8)}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": answer.model}
    extra = {"usage": None} if include_usage else {}
    words = answer.text.split(" ")
    pieces = [words[0]] + [f" {word}" for word in words[1:]]
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        events.append(sse(json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                                      **extra})))
    events.append(sse(json.dumps({**base, "choices": [{"index": 0, "delta": {},
                                                       "finish_reason": answer.finish_reason}], **extra})))
    if include_usage:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        events.append(sse(json.dumps({**base, "choices": [], "usage": usage})))
    events.append(DONE)
    return events
