"""Loads and checks stack/scenarios/registry.yaml: every scenario, its signature queries and expected alerts.

A mistake in the file (a typo in a field, an unknown kind, model or alert, a duration out of range) is a
RegistryError naming the scenario and the field, raised when the registry is loaded, not halfway through a demo.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from string import Template
from types import MappingProxyType
from typing import Any

import yaml

from stack.paths import DOCS_DIR, STACK_DIR
from stack.profiles import Profile

REGISTRY_FILE = STACK_DIR / "scenarios" / "registry.yaml"
INSTRUCTOR_DOCS = DOCS_DIR / "instructor"
MIN_DURATION_SECONDS = 10.0
MAX_DURATION_SECONDS = 900.0
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MATCHER = re.compile(r'^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\{(?P<labels>[^{}]*)\})?$')
LABEL_PAIR = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*$')
CONDITION = re.compile(r"^(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>-?\d+(\.\d+)?)$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
REQUIRED = ("kind", "title", "description", "breaks", "signature", "expected_alerts")
OPTIONAL = ("also_fires", "quiet_alerts", "duration_seconds", "params")
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


def _text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{where}: `{key}` must be a non-empty text")
    return " ".join(value.split())


def _matchers(raw: dict, key: str, where: str, known_alerts: set[str], required: bool) -> tuple[AlertMatcher, ...]:
    items = raw.get(key, [])
    if not isinstance(items, list) or (required and not items):
        raise RegistryError(f"{where}: `{key}` must be a {'non-empty ' if required else ''}list of alerts")
    matchers = []
    for item in items:
        try:
            matcher = AlertMatcher.parse(item)
        except ValueError as error:
            raise RegistryError(f"{where}: `{key}`: {error}") from None
        if matcher.alertname not in known_alerts:
            raise RegistryError(f"{where}: `{key}`: no alert rule named {matcher.alertname!r}; the rules define "
                                f"{', '.join(sorted(known_alerts))} (stack/prometheus/alerts.py)")
        matchers.append(matcher)
    return tuple(matchers)


def _signals(raw: dict, where: str) -> tuple[Signal, ...]:
    items = raw.get("signature")
    if not isinstance(items, list) or not items:
        raise RegistryError(f"{where}: `signature` must be a non-empty list of {{label, query, broken}}")
    signals = []
    for number, item in enumerate(items, 1):
        spot = f"{where}: signature #{number}"
        if not isinstance(item, dict) or set(item) - {"label", "query", "broken"}:
            raise RegistryError(f"{spot}: expected a mapping with label, query and optionally broken")
        label, query = _text(item, "label", spot), _text(item, "query", spot)
        try:
            Template(query).substitute({name: "1s" for name in PLACEHOLDERS})
        except (KeyError, ValueError) as error:
            raise RegistryError(f"{spot}: unknown placeholder {error} in the query; known: "
                                f"{', '.join('$' + p for p in PLACEHOLDERS)}") from None
        broken = None
        if "broken" in item:
            try:
                broken = Condition(str(item["broken"]).strip())
            except ValueError as error:
                raise RegistryError(f"{spot}: `broken`: {error}") from None
        elif number == 1:
            raise RegistryError(f"{spot}: the first signal is the key one and needs `broken` (e.g. \"> 4\")")
        signals.append(Signal(label, query, broken))
    return tuple(signals)


def _duration(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RegistryError(f"{where}: `duration_seconds` must be a number of seconds, got {value!r}")
    if not MIN_DURATION_SECONDS <= value <= MAX_DURATION_SECONDS:
        raise RegistryError(f"{where}: `duration_seconds` {value:g} is outside {MIN_DURATION_SECONDS:g}.."
                            f"{MAX_DURATION_SECONDS:g}")
    return float(value)


def _scenario(name: str, raw: object, defaults: dict, known_alerts: set[str]) -> Scenario:
    from stack.scenarios import kinds  # the kinds import this module's types

    where = f"{REGISTRY_FILE.name}: scenario {name!r}"
    if not NAME.match(name):
        raise RegistryError(f"{where}: names are lower-case words joined by '-' (e.g. latency-spike)")
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping of fields")
    missing = [key for key in REQUIRED if key not in raw]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if missing:
        raise RegistryError(f"{where}: missing {', '.join(missing)}")
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(unknown)}; fields are "
                            f"{', '.join(REQUIRED + OPTIONAL)}")
    kind = raw["kind"]
    if kind not in kinds.KINDS:
        raise RegistryError(f"{where}: unknown kind {kind!r}; kinds: {', '.join(sorted(kinds.KINDS))}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise RegistryError(f"{where}: `params` must be a mapping")
    try:
        kinds.KINDS[kind].validate(params)
    except ValueError as error:
        raise RegistryError(f"{where}: params: {error}") from None
    return Scenario(
        name=name,
        kind=kind,
        title=_text(raw, "title", where),
        description=_text(raw, "description", where),
        breaks=_text(raw, "breaks", where),
        signature=_signals(raw, where),
        expected_alerts=_matchers(raw, "expected_alerts", where, known_alerts, required=True),
        also_fires=_matchers(raw, "also_fires", where, known_alerts, required=False),
        quiet_alerts=_matchers(raw, "quiet_alerts", where, known_alerts, required=False),
        duration_seconds=_duration(raw.get("duration_seconds", defaults.get("duration_seconds", 180)), where),
        params=MappingProxyType(params),
    )


def known_alertnames() -> set[str]:
    from stack import profiles
    from stack.prometheus.alerts import alert_rules

    return {rule.alert for rule in alert_rules(profiles.load("classroom"))}


def parse(text: str, known_alerts: set[str] | None = None) -> dict[str, Scenario]:
    """The scenarios in a registry text, checked; in file order."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RegistryError(f"{REGISTRY_FILE.name} is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), dict) or not raw["scenarios"]:
        raise RegistryError(f"{REGISTRY_FILE.name}: expected a top-level `scenarios:` mapping with at least one entry")
    unknown = sorted(set(raw) - {"defaults", "scenarios"})
    if unknown:
        raise RegistryError(f"{REGISTRY_FILE.name}: unknown top-level key(s) {', '.join(unknown)}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - {"duration_seconds"}:
        raise RegistryError(f"{REGISTRY_FILE.name}: `defaults` may only set duration_seconds")
    alerts = known_alerts if known_alerts is not None else known_alertnames()
    return {name: _scenario(str(name), body, defaults, alerts) for name, body in raw["scenarios"].items()}


@cache
def load() -> dict[str, Scenario]:
    return parse(REGISTRY_FILE.read_text())


def get(name: str) -> Scenario:
    scenarios = load()
    if name not in scenarios:
        raise RegistryError(f"no scenario named {name!r}; scenarios: {', '.join(scenarios)} (`make scenarios`)")
    return scenarios[name]
