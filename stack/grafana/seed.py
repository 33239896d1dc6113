"""Traffic that gives every dashboard panel data: a few seconds of seeded chat requests (before the live check),
and a scripted few minutes with faults (before drawing the docs pictures). Both go through the gateway with
stack.traffic.SteadyTraffic, on every catalog model and department.
"""

from __future__ import annotations

import re
import time

import httpx

from stack import catalog, topology
from stack.grafana import variables as gv
from stack.promapi import Prometheus, QueryError
from stack.traffic import SteadyTraffic


def seed_load(seconds: float | None = None, rate_per_model: float = 3.0) -> dict[int, int]:
    """A few seconds of chat traffic through the gateway for every catalog model and department, then wait until
    Prometheus has scraped it, so every panel has something to show. Returns the HTTP status counts."""
    with Prometheus() as prometheus:
        scrape = _prometheus_scrape_interval(prometheus)
        before = _requests_seen(prometheus)
    # Two samples of every new series (rate() needs two) and a little more.
    seconds = seconds if seconds is not None else max(5.0, 3 * scrape)
    cat = catalog.load()
    departments = list(cat.departments)
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset in (0, len(cat.model_names)):
            department = departments[(index + offset) % len(departments)]
            generators.append(SteadyTraffic(model, rate=rate_per_model / 2, max_seconds=seconds,
                                            max_requests=int(seconds * rate_per_model) + 1, department=department))
    for generator in generators:
        generator.__enter__()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    statuses: dict[int, int] = {}
    for generator in generators:
        generator.stop()
        for status, count in generator.result.by_status.items():
            statuses[status] = statuses.get(status, 0) + count
    answered = sum(statuses.values())
    with Prometheus() as prometheus:
        wait_until = time.monotonic() + 3 * scrape + 10
        while time.monotonic() < wait_until and _requests_seen(prometheus) < before + answered * 0.9:
            time.sleep(0.5)
    time.sleep(min(scrape, 15) + 1)  # one more scrape and rule evaluation: rate() needs two samples
    return statuses


def _requests_seen(prometheus: Prometheus) -> float:
    return prometheus.scalar('sum(llm_requests_total{job="gateway"})') or 0.0


def _prometheus_scrape_interval(prometheus: Prometheus) -> float:
    try:
        config = prometheus.config_yaml()
        match = re.search(r"^\s*scrape_interval:\s*(\S+)", config, re.M)
        return gv.parse_duration(match.group(1)) if match else 15.0
    except (QueryError, KeyError, ValueError):
        return 15.0


def demo_traffic(seconds: float) -> None:
    """Traffic on every model and department for `seconds`, with faults so the pictures show something: 30 %
    errors and 10 % rate limiting on sim-balanced from 30 % of the time, slow (+3 s) and verbose (3x tokens)
    sim-reasoning answers from 60 %, each for a fifth of the time."""
    cat = catalog.load()
    llmsim = topology.load().services["llmsim"].url
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset, rate in ((0, 1.0), (3, 0.5)):
            department = cat.departments[(index + offset) % len(cat.departments)]
            generators.append(SteadyTraffic(model, rate=rate, max_seconds=seconds,
                                            max_requests=int(seconds * rate) + 1, department=department))
    # A department outside the catalog: the gateway records it as "other" (Department labels folded).
    generators.append(SteadyTraffic("sim-fast", rate=0.3, max_seconds=seconds, max_requests=int(seconds * 0.3) + 1,
                                    department="legal"))
    for generator in generators:
        generator.__enter__()
    started = time.monotonic()
    script = [
        (0.30, {"error_rate": 0.3, "rate_limit_rate": 0.1, "models": ["sim-balanced"],
                "duration_seconds": seconds * 0.2}),
        (0.60, {"added_latency_seconds": 3.0, "token_multiplier": 3.0, "models": ["sim-reasoning"],
                "duration_seconds": seconds * 0.2}),
    ]
    try:
        for share, knobs in script:
            time.sleep(max(0.0, started + share * seconds - time.monotonic()))
            httpx.post(f"{llmsim}/faults", json=knobs, timeout=5).raise_for_status()
            print(f"  t={time.monotonic() - started:.0f}s faults {knobs}")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        httpx.delete(f"{llmsim}/faults", timeout=5)
        for generator in generators:
            generator.stop()
