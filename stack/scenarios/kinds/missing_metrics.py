"""Missing metrics, three variants: the metrics endpoint is down, the target is gone, a metric was renamed.

params: variant (endpoint_down | target_gone | renamed), new_name (renamed only; default llm_calls_total),
traffic (optional; the renamed variant uses it to show the requests still counted under the new name).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.runner import control, processes
from stack.scenarios.kinds.base import (
    Context, ScenarioFailure, check_keys, heal_gateway_knobs, set_gateway_knob, validate_traffic,
)

VARIANTS = ("endpoint_down", "target_gone", "renamed")
GATEWAY = "gateway"


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"variant", "new_name", "traffic"}, {"variant"})
    if params["variant"] not in VARIANTS:
        raise ValueError(f"unknown variant {params['variant']!r}; variants: {', '.join(VARIANTS)}")
    if "new_name" in params and params["variant"] != "renamed":
        raise ValueError("new_name only applies to the renamed variant")
    if "new_name" in params and (not isinstance(params["new_name"], str) or not params["new_name"].endswith("_total")):
        raise ValueError("new_name must be a counter name ending in _total, e.g. llm_calls_total")
    if params["variant"] == "target_gone" and params.get("traffic"):
        raise ValueError("the target_gone variant stops the gateway: traffic to it would only fail")
    validate_traffic(params)


def start(ctx: Context) -> None:
    variant = ctx.params["variant"]
    if variant == "endpoint_down":
        set_gateway_knob("metrics-down", {"duration_seconds": ctx.knob_seconds})
        ctx.note("gateway /metrics answers 503 (the API still serves requests)")
    elif variant == "renamed":
        new_name = ctx.params.get("new_name", "llm_calls_total")
        set_gateway_knob("rename", {"new_name": new_name, "duration_seconds": ctx.knob_seconds})
        ctx.note(f"deployment renamed llm_requests_total to {new_name}")
    else:
        if processes.stop(ctx.run, GATEWAY):
            ctx.note("gateway process stopped")
        else:
            ctx.note("gateway was not running (already stopped)")
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    pass


def heal(ctx: Context) -> None:
    variant = ctx.params["variant"]
    if variant == "endpoint_down":
        heal_gateway_knobs("metrics-down")
        ctx.note("gateway /metrics answers again")
    elif variant == "renamed":
        heal_gateway_knobs("rename")
        ctx.note("llm_requests_total is back under its name")
    else:
        restart_gateway(ctx.run)
        ctx.note("gateway restarted (as `make up` does)")


def restart_gateway(run: Path) -> bool:
    """Start the gateway again if this run folder's stack runs without it. True if it had to be started."""
    profile = control.running_profile(run)
    if profile is None or processes.running_pid(run, GATEWAY) is not None:
        return False
    try:
        control.up(profile, run, notebooks=False)
    except control.StackError as error:
        raise ScenarioFailure(f"could not restart the gateway: {error}") from None
    return True


def reset(run: Path) -> None:
    heal_gateway_knobs("metrics-down", strict=False)
    heal_gateway_knobs("rename", strict=False)
    restart_gateway(run)
