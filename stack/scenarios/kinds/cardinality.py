"""Cardinality explosion: the gateway's fault knob `cardinality` puts request ids into a label, bypassing the label
guard.

params: faults ({cardinality: {series_per_second}}: invented ids per second, standing in for production traffic;
stack/faults.py), beyond_sample_limit (the series stop growing this many above the running profile's
gateway_sample_limit, so Prometheus sees the scrape fail instead of rendering an ever bigger page: the knob's
max_series comes from it), traffic (optional: real requests whose ids join the label).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.faults import MAX_SERIES, CardinalityFault
from stack.scenarios.kinds.base import (
    Context, check_keys, heal_faults, set_faults, validate_traffic,
)

KNOB = "cardinality"
MAX_BEYOND_LIMIT = 5000  # prometheus-client renders ~100k label values in ~3 s: stay a few thousand above the limit


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "beyond_sample_limit", "traffic"}, {"faults", "beyond_sample_limit"})
    knobs = params["faults"]
    if not isinstance(knobs, dict) or set(knobs) != {KNOB} or not isinstance(knobs[KNOB], dict):
        raise ValueError(f"faults must set exactly the gateway knob {KNOB}, "
                         f"e.g. {{{KNOB}: {{series_per_second: 200}}}}")
    if "max_series" in knobs[KNOB]:
        raise ValueError(f"faults: {KNOB}: leave max_series out; beyond_sample_limit sets it")
    beyond = params["beyond_sample_limit"]
    if isinstance(beyond, bool) or not isinstance(beyond, int) or not 1 <= beyond <= MAX_BEYOND_LIMIT:
        raise ValueError(f"beyond_sample_limit must be a whole number in [1, {MAX_BEYOND_LIMIT}]")
    validate_traffic(params)


def knob(ctx: Context) -> dict:
    """The knob's values for the running profile: max_series just beyond its gateway_sample_limit."""
    return {
        **ctx.params["faults"][KNOB],
        "max_series": min(MAX_SERIES, ctx.profile.gateway_sample_limit + ctx.params["beyond_sample_limit"]),
    }


def start(ctx: Context) -> None:
    values = knob(ctx)
    set_faults({KNOB: values}, ctx.knob_seconds)
    chosen = CardinalityFault.model_validate(values)
    ctx.note(f"gateway exports request ids as labels: +{chosen.series_per_second:g} series/s up to "
             f"{chosen.max_series} (sample_limit {ctx.profile.gateway_sample_limit})")
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    pass


def heal(ctx: Context) -> None:
    heal_faults([KNOB])
    ctx.note("request-id label removed: the series are gone from /metrics")


def reset(run: Path) -> None:
    heal_faults([KNOB], strict=False)
