"""Timing per profile (`production`, `classroom`), loaded from stack/profiles.yaml (the only place it is written)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Mapping

import yaml

from stack.paths import STACK_DIR

PROFILES_FILE = STACK_DIR / "profiles.yaml"
PROFILE_NAMES = ("production", "classroom")

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(\d+)([dhms])$")


class ProfileError(ValueError):
    """stack/profiles.yaml holds a value the stack cannot run with."""


@dataclass(frozen=True, order=True)
class Duration:
    """A whole number of seconds, written the Prometheus way (`90s`, `5m`, `1d`)."""

    seconds: int

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(str(text).strip())
        if not match:
            raise ProfileError(f"duration {text!r} is not a number followed by one of d, h, m, s (e.g. 30s, 5m)")
        return cls(int(match.group(1)) * _UNITS[match.group(2)])

    def __str__(self) -> str:
        for unit, size in _UNITS.items():
            if self.seconds and self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.seconds + other.seconds)

    def __mul__(self, factor: int) -> Duration:
        return Duration(self.seconds * factor)

    def steps(self, interval: Duration) -> int:
        """How many `interval`s fit in this duration (it must be a whole multiple)."""
        if self.seconds % interval.seconds:
            raise ProfileError(f"{self} is not a whole multiple of {interval}")
        return self.seconds // interval.seconds


@dataclass(frozen=True)
class AlertmanagerTiming:
    group_wait: Duration
    group_interval: Duration
    repeat_interval: Duration
    watchdog_group_interval: Duration
    watchdog_repeat_interval: Duration


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    scrape_interval: Duration
    scrape_timeout: Duration
    evaluation_interval: Duration
    rate_window: Duration
    baseline_window: Duration
    budget_window: Duration
    min_request_rate: float
    gateway_sample_limit: int
    for_durations: Mapping[str, Duration]
    alertmanager: AlertmanagerTiming

    def for_(self, alertname: str) -> Duration:
        """How long an alert's condition must hold before it fires (`default` unless overridden)."""
        return self.for_durations.get(alertname, self.for_durations["default"])


_TOP_LEVEL_DURATIONS = (
    "scrape_interval", "scrape_timeout", "evaluation_interval", "rate_window", "baseline_window", "budget_window",
)


def _check(profile: Profile) -> None:
    problems = []
    if profile.scrape_timeout > profile.scrape_interval:
        problems.append("scrape_timeout must not exceed scrape_interval")
    if profile.rate_window.seconds < 4 * profile.scrape_interval.seconds:
        problems.append("rate_window must hold at least 4 scrapes (rate() needs two samples, with room for a miss)")
    for name in ("rate_window", "baseline_window", "budget_window"):
        if getattr(profile, name).seconds % profile.scrape_interval.seconds:
            problems.append(f"{name} must be a whole multiple of scrape_interval")
    if profile.baseline_window <= profile.rate_window:
        problems.append("baseline_window must be longer than rate_window")
    if profile.budget_window.seconds > _UNITS["d"]:
        problems.append("budget_window must not exceed 1d (the budget is a daily one)")
    if "default" not in profile.for_durations:
        problems.append("for: needs a `default` entry")
    if problems:
        raise ProfileError(f"{PROFILES_FILE.name}: profile {profile.name!r}: " + "; ".join(problems))


def _profile(name: str, raw: dict) -> Profile:
    try:
        am = raw["alertmanager"]
        profile = Profile(
            name=name,
            description=raw["description"],
            **{key: Duration.parse(raw[key]) for key in _TOP_LEVEL_DURATIONS},
            min_request_rate=float(raw["min_request_rate"]),
            gateway_sample_limit=int(raw["gateway_sample_limit"]),
            for_durations=MappingProxyType({alert: Duration.parse(value) for alert, value in raw["for"].items()}),
            alertmanager=AlertmanagerTiming(**{key: Duration.parse(value) for key, value in am.items()}),
        )
    except KeyError as missing:
        raise ProfileError(f"{PROFILES_FILE.name}: profile {name!r} lacks {missing}") from None
    except TypeError as error:
        raise ProfileError(f"{PROFILES_FILE.name}: profile {name!r}: {error}") from None
    _check(profile)
    return profile


@cache
def load_all() -> dict[str, Profile]:
    raw = yaml.safe_load(PROFILES_FILE.read_text())
    missing = [name for name in PROFILE_NAMES if name not in raw]
    if missing:
        raise ProfileError(f"{PROFILES_FILE.name} lacks profile(s) {', '.join(missing)}")
    return {name: _profile(name, raw[name]) for name in PROFILE_NAMES}


def load(name: str) -> Profile:
    profiles = load_all()
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; known profiles: {', '.join(profiles)}")
    return profiles[name]
