"""Calls the LLM provider and turns every way a call can fail into one named error type."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx

from stack.web import CLIENT_KEEPALIVE_EXPIRY_SECONDS


@dataclass(frozen=True)
class ProviderReply:
    body: dict
    text: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0  # of input_tokens, served by the provider's prompt cache


class ProviderError(Exception):
    """A failed provider call; `error_type` is one of metrics.PROVIDER_ERROR_TYPES."""

    def __init__(self, error_type: str, message: str, http_status: int, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.http_status = http_status
        self.retry_after = retry_after
        self.step: str | None = None


def _classify(response: httpx.Response) -> ProviderError:
    try:
        detail = response.text[:200]
    except httpx.ResponseNotRead:  # a streamed error whose body broke off
        detail = "(no body)"
    if response.status_code == 429:
        return ProviderError("rate_limited", f"provider rate limit: {detail}", 429,
                             retry_after=response.headers.get("retry-after"))
    if response.status_code == 503:
        return ProviderError("unavailable", f"provider unavailable: {detail}", 503)
    return ProviderError("server_error", f"provider answered {response.status_code}: {detail}", 502)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


def parse_usage(usage: object) -> Usage:
    """An OpenAI `usage` object; `prompt_tokens_details.cached_tokens` (part of prompt_tokens) may be absent.
    ValueError when it is not a usage."""
    try:
        input_tokens = int(usage["prompt_tokens"])  # type: ignore[index]
        output_tokens = int(usage["completion_tokens"])  # type: ignore[index]
        details = usage.get("prompt_tokens_details") or {}  # type: ignore[union-attr]
        cached = int(details.get("cached_tokens") or 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a token usage: {exc!r}") from exc
    if min(input_tokens, output_tokens, cached) < 0 or cached > input_tokens:
        raise ValueError(f"impossible token usage {usage!r}")
    return Usage(input_tokens, output_tokens, cached)


def _parse(body: object) -> ProviderReply:
    try:
        usage = parse_usage(body["usage"])  # type: ignore[index]
        text = body["choices"][0]["message"]["content"]  # type: ignore[index]
        return ProviderReply(body=body, text=str(text), input_tokens=usage.input_tokens,  # type: ignore[arg-type]
                             output_tokens=usage.output_tokens, cached_input_tokens=usage.cached_input_tokens)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ProviderError("bad_response", f"provider reply lacks choices or token usage ({exc!r})", 502) from exc


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a streamed answer: its data as sent and as parsed."""

    data: str
    chunk: dict


class ProviderStream:
    """An open streamed answer (HTTP 200 already received): its chunks until `data: [DONE]`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The chunks in order; ends at [DONE]. ProviderError when the stream breaks, stalls or is not SSE."""
        try:
            async for line in self._response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, other SSE fields
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise ProviderError("bad_response", f"provider stream sent a chunk that is not JSON: "
                                        f"{data[:120]!r}", 502) from exc
                if not isinstance(chunk, dict):
                    raise ProviderError("bad_response", f"provider stream sent a non-object chunk {data[:120]!r}",
                                        502)
                yield StreamEvent(data, chunk)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"provider stream stalled ({type(exc).__name__})", 504) from exc
        except httpx.TransportError as exc:
            raise ProviderError("unavailable", f"provider stream broke off ({type(exc).__name__}: {exc})",
                                503) from exc
        raise ProviderError("bad_response", "provider stream ended without data: [DONE]", 502)

    async def aclose(self) -> None:
        await self._response.aclose()


RATELIMIT_KINDS = ("requests", "tokens")
RateLimitObserver = Callable[[str, dict[str, int], dict[str, int]], None]  # (model, remaining, limits) by kind


def ratelimit_headers(headers: httpx.Headers) -> tuple[dict[str, int], dict[str, int]]:
    """(remaining, limit) by kind from OpenAI-style x-ratelimit-remaining-<kind> / x-ratelimit-limit-<kind> headers;
    a header that is absent or not a whole number is left out."""
    def read(prefix: str) -> dict[str, int]:
        values = {}
        for kind in RATELIMIT_KINDS:
            raw = headers.get(f"x-ratelimit-{prefix}-{kind}")
            if raw is not None and raw.strip().isdigit():
                values[kind] = int(raw)
        return values
    return read("remaining"), read("limit")


class ProviderClient:
    on_ratelimit: RateLimitObserver | None = None  # told the headroom of every answer (the gateway's gauges)

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_seconds,
                                         limits=httpx.Limits(max_connections=200, max_keepalive_connections=50,
                                                             keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY_SECONDS))

    async def chat(self, payload: dict, headers: dict[str, str] | None = None) -> ProviderReply:
        try:
            response = await self._client.post("/v1/chat/completions", json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"provider did not answer in time ({type(exc).__name__})", 504) from exc
        except httpx.TransportError as exc:
            raise ProviderError("unavailable", f"cannot reach the provider ({type(exc).__name__}: {exc})",
                                503) from exc
        self._observe_headroom(payload, response)
        if response.status_code != 200:
            raise _classify(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError("bad_response", "provider reply is not JSON", 502) from exc
        return _parse(body)

    async def open_stream(self, payload: dict, headers: dict[str, str] | None = None) -> ProviderStream:
        """Start a streamed completion (`payload` must say stream: true) and wait for the provider's status: an
        error status is raised here, before anything reaches the gateway's client."""
        request = self._client.build_request("POST", "/v1/chat/completions", json=payload, headers=headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"provider did not answer in time ({type(exc).__name__})", 504) from exc
        except httpx.TransportError as exc:
            raise ProviderError("unavailable", f"cannot reach the provider ({type(exc).__name__}: {exc})",
                                503) from exc
        self._observe_headroom(payload, response)
        if response.status_code != 200:
            try:
                await response.aread()
            except httpx.HTTPError:
                pass  # the status is the news; a body cut short only shortens the message
            finally:
                await response.aclose()
            raise _classify(response)
        return ProviderStream(response)

    def _observe_headroom(self, payload: dict, response: httpx.Response) -> None:
        if self.on_ratelimit is not None and isinstance(payload.get("model"), str):
            remaining, limits = ratelimit_headers(response.headers)
            if remaining or limits:
                self.on_ratelimit(payload["model"], remaining, limits)

    async def reachable(self) -> str | None:
        """None when the provider's /health answers 200, else the reason it is not ready."""
        try:
            response = await self._client.get("/health", timeout=2.0)
        except httpx.HTTPError as exc:
            return f"provider unreachable at {self._client.base_url} ({type(exc).__name__})"
        if response.status_code != 200:
            return f"provider health check answered {response.status_code}: {response.text[:120]}"
        return None

    async def probe(self, timeout: float) -> tuple[str | None, float]:
        """(the reason the provider's /health is not ok or None, its latency in seconds) for /health/detailed."""
        started = time.perf_counter()
        try:
            response = await self._client.get("/health", timeout=timeout)
        except httpx.HTTPError as exc:
            return f"provider unreachable at {self._client.base_url} ({type(exc).__name__})", \
                time.perf_counter() - started
        latency = time.perf_counter() - started
        if response.status_code != 200:
            return f"provider health check answered {response.status_code}: {response.text[:120]}", latency
        return None, latency

    async def aclose(self) -> None:
        await self._client.aclose()
