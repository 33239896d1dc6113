"""Calls the LLM provider and turns every way a call can fail into one named error type."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from stack.web import CLIENT_KEEPALIVE_EXPIRY_SECONDS


@dataclass(frozen=True)
class ProviderReply:
    body: dict
    text: str
    input_tokens: int
    output_tokens: int


class ProviderError(Exception):
    """A failed provider call; `error_type` is one of metrics.PROVIDER_ERROR_TYPES."""

    def __init__(self, error_type: str, message: str, http_status: int, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.http_status = http_status
        self.retry_after = retry_after
        self.step: str | None = None


def _classify(response: httpx.Response) -> ProviderError:
    detail = response.text[:200]
    if response.status_code == 429:
        return ProviderError("rate_limited", f"provider rate limit: {detail}", 429,
                             retry_after=response.headers.get("retry-after"))
    if response.status_code == 503:
        return ProviderError("unavailable", f"provider unavailable: {detail}", 503)
    return ProviderError("server_error", f"provider answered {response.status_code}: {detail}", 502)


def _parse(body: object) -> ProviderReply:
    try:
        usage = body["usage"]  # type: ignore[index]
        text = body["choices"][0]["message"]["content"]  # type: ignore[index]
        return ProviderReply(body=body, text=str(text), input_tokens=int(usage["prompt_tokens"]),  # type: ignore[arg-type]
                             output_tokens=int(usage["completion_tokens"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ProviderError("bad_response", f"provider reply lacks choices or token usage ({exc!r})", 502) from exc


class ProviderClient:
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
        if response.status_code != 200:
            raise _classify(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError("bad_response", "provider reply is not JSON", 502) from exc
        return _parse(body)

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
