"""Cardinality explosion: the gateway's demo knob puts request ids into a label, bypassing the label guard.

params: series_per_second (invented ids per second, standing in for production traffic), beyond_sample_limit
(the series stop growing this many above the running profile's gateway_sample_limit, so Prometheus sees the
scrape fail instead of rendering an ever bigger page), traffic (optional: real requests whose ids join the label).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.gateway.demo import MAX_SERIES
from stack.scenarios.kinds.base import (
    Context, check_keys, heal_gateway_knobs, set_gateway_knob, validate_traffic,
)

MAX_BEYOND_LIMIT = 5000  # prometheus-client renders ~100k label values in ~3 s: stay a few thousand above the limit


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"series_per_second", "beyond_sample_limit", "traffic"},
               {"series_per_second", "beyond_sample_limit"})
    rate = params["series_per_second"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 2000:
        raise ValueError("series_per_second must be a number in (0, 2000]")
    beyond = params["beyond_sample_limit"]
    if isinstance(beyond, bool) or not isinstance(beyond, int) or not 1 <= beyond <= MAX_BEYOND_LIMIT:
        raise ValueError(f"beyond_sample_limit must be a whole number in [1, {MAX_BEYOND_LIMIT}]")
    validate_traffic(params)


def knob(ctx: Context) -> dict:
    return {
        "series_per_second": ctx.params["series_per_second"],
        "max_series": min(MAX_SERIES, ctx.profile.gateway_sample_limit + ctx.params["beyond_sample_limit"]),
        "duration_seconds": ctx.knob_seconds,
    }


def start(ctx: Context) -> None:
    body = knob(ctx)
    set_gateway_knob("cardinality", body)
    ctx.note(f"gateway exports request ids as labels: +{body['series_per_second']:g} series/s up to "
             f"{body['max_series']} (sample_limit {ctx.profile.gateway_sample_limit})")
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    pass


def heal(ctx: Context) -> None:
    heal_gateway_knobs("cardinality")
    ctx.note("request-id label removed: the series are gone from /metrics")


def reset(run: Path) -> None:
    heal_gateway_knobs("cardinality", strict=False)
