"""Named shapes of gateway traffic, written once for every alert case that needs them: the stack's own promtool
tests (alert_cases.py) and the V3 rule grader (graders/v3/rules.py, graders/v3/quality.py).

A shape fills a `World` (world.py); the caller picks the rates and the phase lengths from its own timing (a profile's
rate window, or the classroom's seconds), so the same shape serves every profile.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from stack import catalog
from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS
from stack.prometheus.series import CaseError, bucket_quantile
from stack.prometheus.world import Span, World, as_duration

FAST, BALANCED, REASONING = "sim-fast", "sim-balanced", "sim-reasoning"

# Latency distributions: share of requests per bucket upper bound (LATENCY_BUCKETS_SECONDS).
HEALTHY_LATENCY = {0.5: 0.5, 1.0: 0.3, 2.0: 0.2}        # p95 1.75 s
SLOW_LATENCY = {2.0: 0.5, 8.0: 0.5}                     # p95 7.6 s
P95_3S = {0.5: 0.6, 1.0: 0.2, 2.0: 0.1, 4.0: 0.1}       # p95 3 s
STRAGGLERS = {0.25: 0.9, 0.5: 0.07, 30.0: 0.03}         # 3% take over 15 s, p95 0.43 s

# Time-to-first-token distributions of streamed calls: share per bucket upper bound (TTFT_BUCKETS_SECONDS).
HEALTHY_FIRST_TOKEN = {0.25: 0.5, 0.5: 0.3, 1.0: 0.2}   # p95 0.94 s
SLOW_FIRST_TOKEN = {1.0: 0.5, 3.0: 0.5}                 # p95 2.9 s
FIRST_TOKEN_NEAR_MISS = {0.5: 0.76, 2.0: 0.2, 3.0: 0.04}  # 4% wait over 2 s, p95 1.975 s


def catalog_models() -> tuple[str, ...]:
    """The catalog's models (its order), refusing a catalog that lacks one the cases name."""
    models = tuple(catalog.load().model_names)
    missing = {FAST, BALANCED, REASONING} - set(models)
    if missing:
        raise CaseError(f"alert cases use models {sorted(missing)} that stack/catalog.yaml lacks")
    return models


def p95_of(shares: Mapping[float, float], buckets: Sequence[float] = LATENCY_BUCKETS_SECONDS) -> float:
    """The p95 histogram_quantile() computes from a distribution over `buckets` (latency unless told)."""
    bounds = [*buckets, float("inf")]
    return bucket_quantile(0.95, [(b, sum(v for upper, v in shares.items() if upper <= b)) for b in bounds])


def first_token_p95(shares: Mapping[float, float]) -> float:
    """The p95 histogram_quantile() computes from a time-to-first-token distribution."""
    return p95_of(shares, TTFT_BUCKETS_SECONDS)


def failing_models(world: World, models: Sequence[str], rate: float, lead: Span, run: Span,
                   shares: Mapping[str, float]) -> World:
    """Every model at `rate` requests/s, healthy for `lead`; then each model in `shares` fails that share of its
    requests for `run`; healthy again for the rest of the world."""
    lead_s, run_s = as_duration(lead).seconds, as_duration(run).seconds
    rest = world.seconds - lead_s - run_s
    for model in models:
        phases = [(lead, rate, 0.0), (run, rate, shares.get(model, 0.0))]
        if rest:
            phases.append((rest, rate, 0.0))
        world.requests(model, [p for p in phases if as_duration(p[0]).seconds])
    return world


def slow_model(world: World, rate: float, lead: Span) -> World:
    """REASONING slows down to a p95 of 7.6 s after `lead` and stays slow; FAST stays healthy all along."""
    rest = world.seconds - as_duration(lead).seconds
    return (world.latency(REASONING, rate, [(lead, HEALTHY_LATENCY), (rest, SLOW_LATENCY)])
            .latency(FAST, rate, [(world.seconds, HEALTHY_LATENCY)]))


def latency_near_miss(world: World, rate: float) -> World:
    """Under the p95 objective however you look: BALANCED has a p95 of 3 s, 3% of FAST calls take over 15 s."""
    return world.latency(BALANCED, rate, [(world.seconds, P95_3S)]).latency(FAST, rate, [(world.seconds, STRAGGLERS)])
