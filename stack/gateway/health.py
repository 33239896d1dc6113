"""GET /health/detailed: one entry per dependency of the gateway, each with a status and a detail, and an overall
status. Every check has its own timeout and all run concurrently under one deadline, so the endpoint answers within
2 s even when the provider hangs; a check that fails in any way is reported, never raised (no 500).

Entries (`checks`):
- `provider:<model>` for every catalog model: the provider's /health (reachable, latency) and the recent outcomes of
  the calls to that model (the window /ready uses, stack/gateway/outcomes.py).
  `down`: the provider is unreachable, answers /health with an error or not within CHECK_TIMEOUT_SECONDS, or most
  recent calls to the model failed. `degraded`: reachable but /health took longer than SLOW_PROVIDER_SECONDS.
- `store`: the attribution store; `down` when its connection refuses writes (every call would then be refused with
  a 503: nothing can be booked), else `ok` with its row count.
- `trace_exporter`: `ok` with the OTLP endpoint, or `ok` with "not configured" (trace ids only) or "off";
  tracing never stops a call, so it is never `down`.
- `cache`: the response cache (stack/gateway/response_cache.py): its entries and its hit ratio since the gateway
  started; in memory, so always `ok` (a low hit ratio is an alert, LLMResponseCacheHitRatioLow, not a health state).

Overall `status`:
- `down` (HTTP 503): the gateway cannot serve any call: the store is down, or every model's provider entry is down.
- `degraded` (HTTP 200): it serves calls, but some entry is not `ok` (e.g. one model failing, a slow provider).
- `ok` (HTTP 200): every entry is `ok`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

OK, DEGRADED, DOWN = "ok", "degraded", "down"
CHECK_TIMEOUT_SECONDS = 1.5  # each check
DEADLINE_SECONDS = 1.8  # all checks together; the answer stays under 2 s
SLOW_PROVIDER_SECONDS = 1.0


@dataclass
class Check:
    status: str
    detail: str
    latency_ms: float | None = None
    rows: int | None = None
    endpoint: str | None = None
    entries: int | None = None
    hit_ratio: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def overall(checks: dict[str, Check]) -> str:
    providers = [c for name, c in checks.items() if name.startswith("provider:")]
    if checks["store"].status == DOWN or (providers and all(c.status == DOWN for c in providers)):
        return DOWN
    return OK if all(c.status == OK for c in checks.values()) else DEGRADED


async def bounded(name: str, check: Callable[[], Awaitable[Check]], timeout: float) -> tuple[str, Check]:
    started = time.perf_counter()
    try:
        return name, await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return name, Check(DOWN, f"no answer within {timeout:g} s", round((time.perf_counter() - started) * 1000, 1))
    except Exception as exc:  # noqa: BLE001 - a failing check is reported, never a 500
        return name, Check(DOWN, f"check failed: {type(exc).__name__}: {exc}"[:300])


async def run(checks: dict[str, Callable[[], Awaitable[Check]]], timeout: float = CHECK_TIMEOUT_SECONDS,
              deadline: float = DEADLINE_SECONDS) -> dict[str, Check]:
    """Every check concurrently, each bounded by `timeout` and all by `deadline`; a check still running at the
    deadline is `down`."""
    tasks = {name: asyncio.ensure_future(bounded(name, check, min(timeout, deadline)))
             for name, check in checks.items()}
    done, pending = await asyncio.wait(tasks.values(), timeout=deadline)
    for task in pending:
        task.cancel()
    results: dict[str, Check] = {}
    for name, task in tasks.items():
        results[name] = task.result()[1] if task in done else Check(DOWN, f"no answer within {deadline:g} s")
    return results
