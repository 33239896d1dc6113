"""Provider faults (latency spike, 429 storm, error burst, token blow-up, quality drift): llmsim fault knobs plus
bounded traffic.

params: faults (llmsim's knobs of stack/faults.py by name, and `models`; the scenario sets duration_seconds itself),
        traffic (what the alert needs to see: most LLM alerts ignore a model with too few requests),
        warm_up_seconds (optional, 0..120, default 0: the traffic runs this long before the knobs go on, for alerts
        that compare with a baseline the scenario's own healthy traffic must fill first).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack import catalog, faults
from stack.scenarios.kinds.base import (
    Context, check_keys, heal_services, set_faults, validate_traffic,
)

SERVICE = "llmsim"
MAX_WARM_UP_SECONDS = 120


def validate_faults(knobs: object) -> None:
    """The registry has checked that every knob exists and is within bounds; here: only the provider's knobs."""
    if not isinstance(knobs, dict) or not knobs:
        raise ValueError("faults must be a mapping of llmsim fault knobs, e.g. {error_rate: 0.5}")
    elsewhere = sorted(name for name in knobs if name in faults.KNOBS and faults.KNOBS[name].service != SERVICE)
    if elsewhere:
        raise ValueError(f"faults: {', '.join(elsewhere)} not a knob of llmsim; this kind takes "
                         f"{', '.join(faults.knobs_of(SERVICE))}")
    unknown_models = sorted(set(knobs.get("models") or ()) - set(catalog.load().models))
    if unknown_models:
        raise ValueError(f"faults: unknown model(s) {', '.join(unknown_models)}")


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "traffic", "warm_up_seconds"}, {"faults", "traffic"})
    validate_faults(params["faults"])
    validate_traffic(params, required=True)
    warm_up = params.get("warm_up_seconds", 0)
    if isinstance(warm_up, bool) or not isinstance(warm_up, (int, float)) or not 0 <= warm_up <= MAX_WARM_UP_SECONDS:
        raise ValueError(f"warm_up_seconds must be a number of seconds from 0 to {MAX_WARM_UP_SECONDS}")


def _warm_up(ctx: Context) -> float:
    return float(ctx.params.get("warm_up_seconds", 0))


def start(ctx: Context) -> None:
    ctx.state["faulted"] = False
    if _warm_up(ctx):
        ctx.start_traffic()
        ctx.note(f"healthy traffic first; the provider faults go on in {_warm_up(ctx):g} s")
    tick(ctx)
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    if ctx.state.get("faulted") or time.time() - ctx.started_at < _warm_up(ctx):
        return
    set_faults(ctx.params["faults"], ctx.knob_seconds)
    ctx.state["faulted"] = True
    ctx.note("provider faults on: " + ", ".join(f"{k}={v}" for k, v in ctx.params["faults"].items()))


def heal(ctx: Context) -> None:
    heal_services([SERVICE])
    ctx.note("provider faults healed" + (" (traffic goes on while the signal recovers)" if ctx.traffic else ""))


def reset(run: Path) -> None:
    heal_services([SERVICE], strict=False)
