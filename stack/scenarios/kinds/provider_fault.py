"""Provider faults (latency spike, 429 storm, error burst, token blow-up): llmsim fault knobs plus bounded traffic.

params: faults (llmsim knobs, see stack/llmsim/faults.py; the scenario sets duration_seconds itself),
        traffic (what the alert needs to see: most LLM alerts ignore a model with too few requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stack import catalog
from stack.llmsim.faults import FaultRequest
from stack.scenarios.kinds.base import (
    Context, check_keys, heal_provider_faults, set_provider_faults, validate_traffic,
)


def validate_faults(faults: object) -> None:
    if not isinstance(faults, dict) or not faults:
        raise ValueError("faults must be a mapping of llmsim fault knobs, e.g. {error_rate: 0.5}")
    if "duration_seconds" in faults:
        raise ValueError("faults: leave duration_seconds out; the scenario's duration_seconds sets it")
    unknown_fields = sorted(set(faults) - set(FaultRequest.model_fields))
    if unknown_fields:
        raise ValueError(f"faults: unknown knob(s) {', '.join(unknown_fields)}; knobs: "
                         f"{', '.join(f for f in FaultRequest.model_fields if f != 'duration_seconds')}")
    try:
        FaultRequest(**faults)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"faults: {problems}") from None
    except TypeError as error:
        raise ValueError(f"faults: {error}") from None
    unknown_models = sorted(set(faults.get("models") or ()) - set(catalog.load().models))
    if unknown_models:
        raise ValueError(f"faults: unknown model(s) {', '.join(unknown_models)}")


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "traffic"}, {"faults", "traffic"})
    validate_faults(params["faults"])
    validate_traffic(params, required=True)


def start(ctx: Context) -> None:
    set_provider_faults(ctx.params["faults"], ctx.knob_seconds)
    ctx.note("provider faults on: " + ", ".join(f"{k}={v}" for k, v in ctx.params["faults"].items()))
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    pass


def heal(ctx: Context) -> None:
    heal_provider_faults()
    ctx.note("provider faults healed" + (" (traffic goes on while the signal recovers)" if ctx.traffic else ""))


def reset(run: Path) -> None:
    heal_provider_faults(strict=False)
