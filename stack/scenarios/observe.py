"""What a running scenario looks like from outside: its signature values, alert states, notifications, targets.

Everything here only reads (Prometheus' HTTP API through stack.promapi, the receiver's /api/notifications), so the
live view, the driver's record of the scenario's progress and the tests share it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import httpx

from stack import promapi, topology
from stack.profiles import Profile
from stack.scenarios.model import AlertMatcher, Scenario, Signal

ALERT_STATES = ("inactive", "pending", "firing")
NOTIFICATION_LIMIT = 500


@dataclass(frozen=True)
class Reading:
    signal: Signal
    query: str
    values: list[tuple[dict[str, str], float]] | None  # None: the query failed (see error)
    error: str = ""

    @property
    def numbers(self) -> list[float]:
        return [value for _, value in self.values or []]

    @property
    def broken(self) -> bool | None:
        """Whether the signal shows the failure (None when it has no `broken` condition or the query failed)."""
        if self.signal.broken is None or self.values is None:
            return None
        return self.signal.broken.holds(self.numbers)


@dataclass(frozen=True)
class Snapshot:
    at: float  # unix time
    readings: list[Reading]
    alerts: list[dict]  # Prometheus /api/v1/alerts (pending and firing)
    notifications: list[dict]  # the receiver's, oldest first, received since the scenario started
    target_errors: dict[str, str]  # job -> lastError of targets that are not up
    problems: list[str] = field(default_factory=list)  # what could not be read

    @property
    def key(self) -> Reading:
        return self.readings[0]


def alert_state(matcher: AlertMatcher, alerts: list[dict]) -> str:
    """inactive, pending or firing: the most advanced state of the alerts the matcher selects."""
    states = {a["state"] for a in alerts if matcher.matches(a["labels"])}
    return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


def matching(matcher: AlertMatcher, alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if matcher.matches(a["labels"])]


def read_signal(signal: Signal, profile: Profile) -> Reading:
    query = signal.render(profile)
    try:
        samples = promapi.query(query)
    except promapi.PrometheusError as error:
        return Reading(signal, query, None, str(error))
    return Reading(signal, query, [(s.labels, s.value) for s in samples])


def notifications_since(since: float) -> list[dict]:
    receiver = topology.load().services["receiver"].url
    response = httpx.get(f"{receiver}/api/notifications", params={"limit": NOTIFICATION_LIMIT}, timeout=5)
    response.raise_for_status()
    return sorted((n for n in response.json()["notifications"] if n["received_at"] >= since),
                  key=lambda n: n["id"])


def target_errors() -> dict[str, str]:
    with promapi.Prometheus() as prometheus:
        active = prometheus.targets()
    lab = set(topology.load().lab_targets)
    return {t["labels"].get("job", "?"): t.get("lastError") or t["health"] for t in active
            if t["health"] != "up" and t["labels"].get("job") not in lab}


def take(scenario: Scenario, profile: Profile, since: float) -> Snapshot:
    """Read everything once; a part that cannot be read is empty and named in `problems`."""
    problems: list[str] = []

    def attempt(what: str, read, empty):  # noqa: ANN001, ANN202
        try:
            return read()
        except (promapi.PrometheusError, httpx.HTTPError, KeyError, ValueError) as error:
            problems.append(f"{what}: {error}")
            return empty

    readings = [read_signal(signal, profile) for signal in scenario.signature]
    alerts = attempt("alerts", promapi.alerts, [])
    notifications = attempt("notifications", lambda: notifications_since(since), [])
    errors = attempt("targets", target_errors, {})
    return Snapshot(time.time(), readings, alerts, notifications, errors, problems)


@dataclass
class Progress:
    """How a live scenario went: when each watched alert first went pending and firing, when it resolved, when
    notifications arrived; all in seconds after the trigger (`t0`, unix time). `update` returns the new events as
    sentences."""

    scenario: Scenario
    t0: float
    healed_at: float | None = None
    first: dict[tuple[str, str], float] = field(default_factory=dict)  # (matcher, state) -> seconds after t0
    resolved: dict[str, float] = field(default_factory=dict)  # matcher -> seconds after t0 (after it fired)
    notified: dict[tuple[str, str], float] = field(default_factory=dict)  # ("firing X", channel) -> seconds
    key_broken_at: float | None = None
    key_back_at: float | None = None
    already: dict[str, str] = field(default_factory=dict)  # matcher -> state it was in before the trigger
    _current: dict[str, str] = field(default_factory=dict)

    def before_trigger(self, snapshot: Snapshot) -> list[str]:
        """Note the watched alerts that are already pending or firing (left over from an earlier scenario): their
        times would say nothing about this one, so they count only once they have been inactive."""
        events = []
        for matcher in self.scenario.watched_alerts:
            state = alert_state(matcher, snapshot.alerts)
            if state != "inactive":
                self.already[str(matcher)] = state
                events.append(f"{matcher} was already {state} before the trigger (left from an earlier fault)")
        return events

    def seconds(self, at: float) -> float:
        return round(at - self.t0, 1)

    def update(self, snapshot: Snapshot) -> list[str]:
        events: list[str] = []
        now = self.seconds(snapshot.at)
        broken = snapshot.key.broken
        if broken and self.key_broken_at is None:
            self.key_broken_at = now
            events.append(f"key signal broken: {snapshot.key.signal.label} {self.describe(snapshot.key)}")
        if broken is False and self.key_broken_at is not None and self.healed_at is not None \
                and self.key_back_at is None:
            self.key_back_at = now
            events.append(f"key signal back to normal: {snapshot.key.signal.label} {self.describe(snapshot.key)}")
        for matcher in self.scenario.watched_alerts:
            name = str(matcher)
            state = alert_state(matcher, snapshot.alerts)
            if name in self.already:
                if state != "inactive":
                    continue
                del self.already[name]
            before = self._current.get(name, "inactive")
            self._current[name] = state
            if state != "inactive" and (name, state) not in self.first:
                self.first[name, state] = now
                events.append(f"{name} {state}")
            if state == "inactive" and before != "inactive" and (name, "firing") in self.first \
                    and name not in self.resolved:
                self.resolved[name] = now
                events.append(f"{name} resolved")
        for notification in snapshot.notifications:
            for alertname in notification["alertnames"]:
                if alertname not in self.scenario.alertnames:
                    continue
                key = (f"{notification['status']} {alertname}", notification["channel"])
                if key not in self.notified:
                    self.notified[key] = self.seconds(notification["received_at"])
                    events.append(f"notification {key[0]} on {key[1]}")
        return events

    @staticmethod
    def describe(reading: Reading) -> str:
        if reading.values is None:
            return "(query failed)"
        if not reading.values:
            return "(no data)"
        return ", ".join(format_number(v) for v in reading.numbers[:4])

    def summary(self) -> dict:
        return {
            "key_broken_after": self.key_broken_at,
            "first_pending": {m: t for (m, s), t in self.first.items() if s == "pending"},
            "first_firing": {m: t for (m, s), t in self.first.items() if s == "firing"},
            "resolved": self.resolved,
            "first_notification": {f"{a} on {c}": t for (a, c), t in self.notified.items()},
            "healed_at": None if self.healed_at is None else self.seconds(self.healed_at),
            "key_back_after": self.key_back_at,
        }

    def all_expected_fired(self) -> bool:
        return all((str(m), "firing") in self.first for m in self.scenario.expected_alerts)

    def green(self, snapshot: Snapshot) -> bool:
        """Back to normal: no expected alert pending or firing, and the key signal not broken."""
        return snapshot.key.broken is False and all(
            alert_state(m, snapshot.alerts) == "inactive" for m in self.scenario.expected_alerts)


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
