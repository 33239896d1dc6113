"""Helpers for tests against the live embedded stack: bounded polling and the services' HTTP APIs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest

from stack import topology

T = TypeVar("T")


def url(service: str) -> str:
    return topology.load().services[service].url


def eventually(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` and the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError) as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last observed: {last!r}")
        time.sleep(interval)


def notifications(**filters: str) -> list[dict]:
    response = httpx.get(f"{url('receiver')}/api/notifications", params=filters, timeout=5)
    response.raise_for_status()
    return response.json()["notifications"]


def clear_notifications() -> None:
    httpx.delete(f"{url('receiver')}/api/notifications", timeout=5).raise_for_status()


def set_faults(**knobs: object) -> dict:
    response = httpx.post(f"{url('llmsim')}/faults", json=knobs, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def heal_faults() -> None:
    httpx.delete(f"{url('llmsim')}/faults", timeout=5).raise_for_status()


def gateway_metrics() -> str:
    return httpx.get(f"{url('gateway')}/metrics", timeout=10).text


def metric_lines(exposition: str, name: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def metric_sum(exposition: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metric_lines(exposition, name))


# Tests that take the gateway's scrape target down (a stopped gateway, a failing /metrics, a sample_limit breach).
# They run one after another on one pytest-xdist worker (tests/xdist_groups.py), cardinality-explosion first: its
# growth alert ignores a target that failed a scrape within the baseline window (CardinalityGrowth's `unless`), so it
# must not follow another outage on the same stack.
GATEWAY_OUTAGES = pytest.mark.xdist_group("gateway-outages")
