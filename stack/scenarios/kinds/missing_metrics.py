"""Missing metrics, three ways: the metrics endpoint is down, a metric was renamed, the target is gone.

params: faults (one gateway knob of stack/faults.py that hides the metrics: {metrics_down: true}, the endpoint
answers 503; or {rename: llm_calls_total}, a deployment renamed llm_requests_total), or stop: gateway (the process
is stopped: the target is gone; heal starts it again); traffic (optional, not with stop; with rename it shows the
requests still counted under the new name).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.runner import control, processes
from stack.scenarios.kinds.base import (
    Context, ScenarioFailure, check_keys, heal_faults, set_faults, validate_traffic,
)

KNOBS = ("metrics_down", "rename")  # the gateway's knobs that hide its metrics
GATEWAY = "gateway"


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "stop", "traffic"})
    if ("faults" in params) == ("stop" in params):
        raise ValueError(f"set either faults (one of the knobs {', '.join(KNOBS)}) or stop: {GATEWAY}")
    if "stop" in params:
        if params["stop"] != GATEWAY:
            raise ValueError(f"stop: only the {GATEWAY} can be stopped, not {params['stop']!r}")
        if params.get("traffic"):
            raise ValueError("stop: gateway stops the gateway: traffic to it would only fail")
    else:
        knobs = params["faults"]
        if not isinstance(knobs, dict) or len(knobs) != 1 or next(iter(knobs)) not in KNOBS:
            raise ValueError(f"faults must set one of the knobs {', '.join(KNOBS)}, e.g. {{metrics_down: true}}")
        if knobs.get("metrics_down") is False:
            raise ValueError("faults: metrics_down: false would only heal the endpoint; use true")
    validate_traffic(params)


def start(ctx: Context) -> None:
    knobs = ctx.params.get("faults")
    if knobs:
        set_faults(knobs, ctx.knob_seconds)
        if "rename" in knobs:
            ctx.note(f"deployment renamed llm_requests_total to {knobs['rename']}")
        else:
            ctx.note("gateway /metrics answers 503 (the API still serves requests)")
    elif processes.stop(ctx.run, GATEWAY):
        ctx.note("gateway process stopped")
    else:
        ctx.note("gateway was not running (already stopped)")
    ctx.start_traffic()


def tick(ctx: Context) -> None:
    pass


def heal(ctx: Context) -> None:
    knobs = ctx.params.get("faults")
    if knobs:
        heal_faults(knobs)
        ctx.note("llm_requests_total is back under its name" if "rename" in knobs else "gateway /metrics answers again")
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
    heal_faults(KNOBS, strict=False)
    restart_gateway(run)
