"""The failure scenario and its parts, as the registry loader, the kinds, the live view and the console see them.

A leaf module: it imports nothing from stack.scenarios, so the kinds (which run a Scenario) and the loader (which
builds them and checks each kind's params) both import it without a circle.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import MappingProxyType
from typing import Any

from stack.paths import DOCS_DIR
from stack.profiles import Profile

INSTRUCTOR_DOCS = DOCS_DIR / "instructor"
MIN_DURATION_SECONDS = 10.0
MAX_DURATION_SECONDS = 900.0
MATCHER = re.compile(r'^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\{(?P<labels>[^{}]*)\})?$')
LABEL_PAIR = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*$')
CONDITION = re.compile(r"^(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>-?\d+(\.\d+)?)$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
PLACEHOLDERS = ("rate_window", "baseline_window", "budget_window", "budget_window_seconds", "sample_limit")


class RegistryError(ValueError):
    """registry.yaml holds something the scenarios cannot run with; the message names the scenario and field."""


@dataclass(frozen=True)
class Condition:
    """When a signal shows the failure: a comparison with a number, or the query returning something/nothing."""

    text: str

    def __post_init__(self) -> None:
        if self.text not in ("present", "absent") and not CONDITION.match(self.text):
            raise ValueError(f"{self.text!r} is not a condition: use '> 4', '<= 0.5', '== 0', 'present' or 'absent'")

    def holds(self, values: list[float]) -> bool:
        """`values`: what the query returned (one number per series; none at all is an empty list)."""
        if self.text == "present":
            return bool(values)
        if self.text == "absent":
            return not values
        match = CONDITION.match(self.text)
        assert match
        compare, threshold = OPERATORS[match["op"]], float(match["number"])
        return any(not math.isnan(v) and compare(v, threshold) for v in values)


@dataclass(frozen=True)
class Signal:
    label: str
    query: str
    broken: Condition | None = None

    def render(self, profile: Profile) -> str:
        """The query with `$rate_window` and friends replaced by the running profile's values."""
        return Template(self.query).substitute(placeholders(profile))


def placeholders(profile: Profile) -> dict[str, str]:
    return {
        "rate_window": str(profile.rate_window),
        "baseline_window": str(profile.baseline_window),
        "budget_window": str(profile.budget_window),
        "budget_window_seconds": str(profile.budget_window.seconds),
        "sample_limit": str(profile.gateway_sample_limit),
    }


@dataclass(frozen=True)
class AlertMatcher:
    """`AlertName` or `AlertName{label="value",...}`: which Prometheus alerts a scenario talks about."""

    alertname: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> AlertMatcher:
        match = MATCHER.match(str(text).strip())
        if not match:
            raise ValueError(f'{text!r} is not an alert: write AlertName or AlertName{{label="value"}}')
        labels = {}
        for pair in filter(str.strip, (match["labels"] or "").split(",")):
            found = LABEL_PAIR.match(pair)
            if not found:
                raise ValueError(f'{text!r}: {pair.strip()!r} is not label="value"')
            labels[found[1]] = found[2]
        return cls(match["name"], MappingProxyType(labels))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels.get("alertname") == self.alertname and all(labels.get(k) == v for k, v in self.labels.items())

    def __str__(self) -> str:
        if not self.labels:
            return self.alertname
        return self.alertname + "{" + ",".join(f'{k}="{v}"' for k, v in self.labels.items()) + "}"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    title: str
    description: str
    breaks: str
    signature: tuple[Signal, ...]
    expected_alerts: tuple[AlertMatcher, ...]
    also_fires: tuple[AlertMatcher, ...]
    quiet_alerts: tuple[AlertMatcher, ...]
    duration_seconds: float
    params: Mapping[str, Any]

    @property
    def key_signal(self) -> Signal:
        return self.signature[0]

    @property
    def watched_alerts(self) -> tuple[AlertMatcher, ...]:
        return (*self.expected_alerts, *self.also_fires, *self.quiet_alerts)

    @property
    def alertnames(self) -> list[str]:
        """Every alert the scenario names, for its runbook links."""
        return sorted({m.alertname for m in self.watched_alerts})

    @property
    def doc(self) -> Path:
        return INSTRUCTOR_DOCS / f"{self.name}.md"
