"""Readiness checks: each service's health URL, and Prometheus reporting every scrape target up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from stack import topology


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


def scrape_targets(timeout: float = 2.0) -> list[TargetState]:
    prometheus = topology.load().services["prometheus"].url
    body = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=timeout).json()
    return [
        TargetState(t["labels"].get("job", "?"), t["labels"].get("instance", "?"), t["health"],
                    t.get("lastError", ""))
        for t in body["data"]["activeTargets"]
    ]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll a condition until it holds or the timeout passes; never raises from the condition's errors."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def all_targets_up() -> bool:
    targets = scrape_targets()
    return bool(targets) and all(t.health == "up" for t in targets)
