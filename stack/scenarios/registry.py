"""Loads and checks stack/scenarios/registry.yaml: every scenario, its signature queries and expected alerts.

A mistake in the file (a typo in a field, an unknown kind, model or alert, a duration out of range) is a
RegistryError naming the scenario and the field, raised when the registry is loaded, not halfway through a demo.
"""

from __future__ import annotations

import re
from functools import cache
from string import Template
from types import MappingProxyType

import yaml

from stack import faults, profiles
from stack.paths import STACK_DIR
from stack.prometheus.alerts import alert_rules
from stack.scenarios.kinds.index import KINDS
from stack.scenarios.model import (
    MAX_DURATION_SECONDS, MIN_DURATION_SECONDS, PLACEHOLDERS, AlertMatcher, Condition, RegistryError, Scenario, Signal,
)

REGISTRY_FILE = STACK_DIR / "scenarios" / "registry.yaml"
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
REQUIRED = ("kind", "title", "description", "breaks", "signature", "expected_alerts")
OPTIONAL = ("also_fires", "quiet_alerts", "duration_seconds", "params")


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


def _faults(params: dict, where: str) -> None:
    """`params.faults`, whichever the kind: knobs of stack/faults.py by name, with values within their bounds."""
    if "faults" not in params:
        return
    knobs = params["faults"]
    if not isinstance(knobs, dict) or not knobs:
        raise RegistryError(f"{where}: params: faults must be a mapping of fault knobs (stack/faults.py), "
                            "e.g. {error_rate: 0.5}")
    if "duration_seconds" in knobs:
        raise RegistryError(f"{where}: params: faults: leave duration_seconds out; the scenario's duration_seconds "
                            "sets it")
    try:
        faults.requests(knobs)
    except ValueError as error:
        raise RegistryError(f"{where}: params: faults: {error}") from None


def _scenario(name: str, raw: object, defaults: dict, known_alerts: set[str]) -> Scenario:
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
    if kind not in KINDS:
        raise RegistryError(f"{where}: unknown kind {kind!r}; kinds: {', '.join(sorted(KINDS))}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise RegistryError(f"{where}: `params` must be a mapping")
    _faults(params, where)
    try:
        KINDS[kind].validate(params)
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
