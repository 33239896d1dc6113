"""A batch job drains a model's provider rate limit, then users tip it over: the headroom shrinks long before the first
HTTP 429, which is the warning the rate-limit headroom alert exists for.

1. The provider's limits shrink (llmsim's `rate_limit_scale` knob), so a classroom's few requests a second matter.
2. The application's own traffic (`traffic`, below what the limit refills) runs all along.
3. A batch job (`job`) sends `rate` requests a second until the model's requests headroom (what llmsim's
   x-ratelimit-remaining-requests / x-ratelimit-limit-requests say) falls to `floor`, then throttles itself to what
   the limit refills beside the application, as a client that honours the x-ratelimit headers does. The model now
   runs at the edge: no 429 yet, headroom below the alert's threshold.
4. At `spike_at_seconds` the application's traffic rises to `spike_rate` (users arrive): the limit cannot refill
   that fast and the 429s begin.

params: faults (llmsim knobs: rate_limit_scale and `models`), traffic (exactly one entry: the application),
        job ({model, rate, department, floor}: floor is a share of the limit, 0.01..0.09, under the alert's 10 %),
        spike_at_seconds (10..600), spike_rate (requests/s, above the application's rate).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack import catalog
from stack.exposition import current_values
from stack.prometheus.alerts import RATELIMIT_HEADROOM_MIN
from stack.scenarios.kinds.base import (
    Context, check_keys, check_rate, heal_services, set_faults, url, validate_traffic, validate_traffic_entry,
)
from stack.scenarios.kinds.provider_fault import SERVICE, validate_faults
from stack.traffic import SteadyTraffic

FLOOR_RANGE = (0.01, RATELIMIT_HEADROOM_MIN - 0.01)
SPIKE_AT_RANGE = (10, 600)
LIMIT_KIND = "requests"  # the job watches the requests limit; the tokens limit is sized so requests bind first
MIN_JOB_RATE = 0.2  # requests/s: a throttled job still trickles
SCRAPE_TIMEOUT = 5.0
REMAINING, LIMIT = "llmsim_ratelimit_remaining", "llmsim_ratelimit_limit"  # llmsim's view of the headers
SECONDS_PER_MINUTE = 60.0


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "traffic", "job", "spike_at_seconds", "spike_rate"},
               {"faults", "traffic", "job", "spike_at_seconds", "spike_rate"})
    validate_faults(params["faults"])
    if "rate_limit_scale" not in params["faults"]:
        raise ValueError("faults must set rate_limit_scale (e.g. 0.0025): at full size the limits are out of reach")
    validate_traffic(params, required=True)
    if len(params["traffic"]) != 1:
        raise ValueError("traffic must be exactly one entry: the application whose users spike")
    job = params["job"]
    validate_traffic_entry(job, "job", extra_keys=frozenset({"floor"}))
    if job["model"] != params["traffic"][0]["model"]:
        raise ValueError(f"job: model must be the application's ({params['traffic'][0]['model']}): the job drains the "
                         "limit the application needs")
    floor = job.get("floor")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not FLOOR_RANGE[0] <= floor <= FLOOR_RANGE[1]:
        raise ValueError(f"job: floor must be a share of the limit from {FLOOR_RANGE[0]:g} to {FLOOR_RANGE[1]:g} (under "
                         f"the headroom alert's {RATELIMIT_HEADROOM_MIN:.0%})")
    spike_at = params["spike_at_seconds"]
    if isinstance(spike_at, bool) or not isinstance(spike_at, (int, float)) or \
            not SPIKE_AT_RANGE[0] <= spike_at <= SPIKE_AT_RANGE[1]:
        raise ValueError(f"spike_at_seconds must be {SPIKE_AT_RANGE[0]} to {SPIKE_AT_RANGE[1]} seconds")
    check_rate(params["spike_rate"], "spike_rate")
    if params["spike_rate"] <= params["traffic"][0]["rate"]:
        raise ValueError("spike_rate must be above the application's traffic rate")
    scale = params["faults"]["rate_limit_scale"]
    refill = catalog.load().models[job["model"]].rate_limits.requests_per_minute * scale / SECONDS_PER_MINUTE
    if params["traffic"][0]["rate"] >= refill or job["rate"] + params["traffic"][0]["rate"] <= refill:
        raise ValueError(f"with rate_limit_scale {scale:g} {job['model']}'s requests limit refills {refill:g} "
                         "requests/s: the application's rate must be below that (alone it never drains the limit) "
                         "and the job's plus the application's above it (together they do)")


def headroom(model: str) -> tuple[float, float] | None:
    """(remaining, limit) of `model`'s requests limit as llmsim reports it now, or None if llmsim does not answer."""
    found = current_values(f"{url(SERVICE)}/metrics", [REMAINING, LIMIT], {"model": model, "kind": LIMIT_KIND},
                           timeout=SCRAPE_TIMEOUT)
    if not found or not found.get(LIMIT) or REMAINING not in found:
        return None
    return found[REMAINING], found[LIMIT]


def _job_rate(ctx: Context, remaining: float, limit: float) -> float:
    """The job's full rate while the headroom is above its floor; else what the limit refills beyond the
    application's current rate, a little under it."""
    job = ctx.params["job"]
    if remaining / limit > job["floor"]:
        return float(job["rate"])
    application: SteadyTraffic = ctx.state["application"]
    return max(MIN_JOB_RATE, 0.9 * (limit / SECONDS_PER_MINUTE - application.rate))


def start(ctx: Context) -> None:
    set_faults(ctx.params["faults"], ctx.knob_seconds)
    ctx.note(f"provider limits scaled by {ctx.params['faults']['rate_limit_scale']:g}")
    ctx.state["application"] = ctx.add_traffic(ctx.params["traffic"][0], peak_rate=ctx.params["spike_rate"])
    job = ctx.params["job"]
    ctx.state["job"] = ctx.add_traffic({k: v for k, v in job.items() if k != "floor"})
    ctx.state["throttled"] = ctx.state["spiked"] = False
    ctx.note(f"application traffic {ctx.params['traffic'][0]['rate']:g} requests/s; a batch job sends {job['rate']:g} "
             f"requests/s until {job['model']}'s headroom is {job['floor']:.0%}")


def tick(ctx: Context) -> None:
    application: SteadyTraffic = ctx.state["application"]
    if not ctx.state["spiked"] and time.time() - ctx.started_at >= ctx.params["spike_at_seconds"]:
        application.set_rate(float(ctx.params["spike_rate"]))
        ctx.state["spiked"] = True
        ctx.note(f"users arrive: application traffic {ctx.params['spike_rate']:g} requests/s, more than the limit "
                 "refills: the 429s follow within seconds")
    reading = headroom(ctx.params["job"]["model"])
    if reading is None:
        return
    rate = _job_rate(ctx, *reading)
    ctx.state["job"].set_rate(rate)
    if rate < ctx.params["job"]["rate"] and not ctx.state["throttled"]:  # said once: it flips on every refill
        ctx.state["throttled"] = True
        ctx.note(f"headroom {reading[0] / reading[1]:.0%}: the job throttles itself to {rate:.1f} requests/s, "
                 "the model runs at the edge of its limit")


def heal(ctx: Context) -> None:
    heal_services([SERVICE])
    if "job" in ctx.state:
        ctx.state["job"].set_rate(MIN_JOB_RATE)
    ctx.note("provider limits back to full size; the job backs off")


def reset(run: Path) -> None:
    heal_services([SERVICE], strict=False)
