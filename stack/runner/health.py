"""Readiness checks: each service's health URL, and Prometheus reporting every scrape target up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from stack import promapi, topology


@dataclass(frozen=True)
class TargetState:
    job: str
    instance: str
    health: str
    last_error: str


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def scrape_targets(timeout: float = 2.0, include_lab: bool = False) -> list[TargetState]:
    """Prometheus's active targets. Lab targets (topology.yaml lab_targets) are left out unless asked for: a lab
    notebook starts them, so they are down whenever no notebook runs and say nothing about the stack's health."""
    with promapi.Prometheus(timeout=timeout) as prometheus:
        active = prometheus.targets()
    lab = set(topology.load().lab_targets)
    return [
        TargetState(t["labels"].get("job", "?"), t["labels"].get("instance", "?"), t["health"],
                    t.get("lastError", ""))
        for t in active
        if include_lab or t["labels"].get("job") not in lab
    ]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll a condition until it holds or the timeout passes; never raises from the condition's errors."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except (promapi.PrometheusError, httpx.HTTPError, KeyError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def all_targets_up() -> bool:
    """Every target `make up` starts is up (lab targets are ignored: see scrape_targets)."""
    targets = scrape_targets()
    return bool(targets) and all(t.health == "up" for t in targets)
