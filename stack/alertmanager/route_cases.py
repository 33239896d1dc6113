"""Which receiver each kind of alert must reach, and which alerts a firing critical must mute: checked against the
generated configs with `amtool config routes test` and a temporary Alertmanager (tests/test_alertmanager_routing.py)."""

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
    RouteCase("a department at 80 % of its monthly budget: dashboards only",
              {"alertname": "LLMDepartmentBudget", "severity": "info", "department": "engineering"}, ["null"]),
    RouteCase("a department at 90 % of its monthly budget goes to chat",
              {"alertname": "LLMDepartmentBudget", "severity": "warning", "department": "engineering"}, ["chat"]),
    RouteCase("a department at 100 % of its monthly budget pages",
              {"alertname": "LLMDepartmentBudget", "severity": "critical", "department": "engineering"}, ["pager"]),
)


@dataclass(frozen=True)
class InhibitionCase:
    description: str
    labels: dict[str, str]
    inhibited: bool


# Posted together to one Alertmanager running the generated config: every case is also a firing alert that may mute
# the others (tests/test_alertmanager_routing.py).
INHIBITION_CASES = (
    InhibitionCase("research at 100 % of its monthly budget pages",
                   {"alertname": "LLMDepartmentBudget", "severity": "critical", "department": "research"}, False),
    InhibitionCase("research's 90 % warning is muted by its 100 % critical",
                   {"alertname": "LLMDepartmentBudget", "severity": "warning", "department": "research"}, True),
    InhibitionCase("marketing's 90 % warning still reaches chat while research is at 100 %",
                   {"alertname": "LLMDepartmentBudget", "severity": "warning", "department": "marketing"}, False),
    InhibitionCase("a critical error ratio for sim-fast pages",
                   {"alertname": "LLMHighErrorRatio", "severity": "critical", "model": "sim-fast"}, False),
    InhibitionCase("the sim-fast error-ratio warning is muted by its critical",
                   {"alertname": "LLMHighErrorRatio", "severity": "warning", "model": "sim-fast"}, True),
    InhibitionCase("the sim-balanced error-ratio warning is not (another model)",
                   {"alertname": "LLMHighErrorRatio", "severity": "warning", "model": "sim-balanced"}, False),
    InhibitionCase("a latency warning for sim-fast is not (another alert)",
                   {"alertname": "LLMLatencyP95High", "severity": "warning", "model": "sim-fast"}, False),
)


def as_yaml_data() -> list[dict]:
    return [{"description": c.description, "labels": c.labels, "receivers": c.receivers} for c in ROUTE_CASES]
