"""Which receiver each kind of alert must reach, checked with `amtool config routes test` (tests/)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteCase:
    description: str
    labels: dict[str, str]
    receivers: list[str]


ROUTE_CASES = (
    RouteCase("a critical alert pages", {"alertname": "TargetDown", "severity": "critical"}, ["pager"]),
    RouteCase("a warning goes to chat", {"alertname": "LLMLatencyP95High", "severity": "warning"}, ["chat"]),
    RouteCase("info is recorded but not sent", {"alertname": "SomethingInformational", "severity": "info"}, ["null"]),
    RouteCase("the watchdog has its own route", {"alertname": "Watchdog", "severity": "none"}, ["watchdog"]),
    RouteCase("an alert without severity still reaches a human", {"alertname": "Unlabelled"}, ["chat"]),
    RouteCase(
        "critical error ratio pages", {"alertname": "LLMHighErrorRatio", "severity": "critical", "model": "sim-fast"},
        ["pager"],
    ),
)


def as_yaml_data() -> list[dict]:
    return [{"description": c.description, "labels": c.labels, "receivers": c.receivers} for c in ROUTE_CASES]
