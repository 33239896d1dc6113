"""What every kind of scenario shares: its running context, bounded traffic, and the fault-knob HTTP calls (the knobs
of stack/faults.py, on whichever service has them: POST, DELETE /faults and DELETE /faults/<knob>)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stack import catalog, faults, topology
from stack.profiles import Profile
from stack.scenarios.model import Scenario
from stack.traffic import SteadyTraffic

MAX_TRAFFIC_RATE = 20.0  # requests per second per traffic entry
KNOB_GRACE_SECONDS = 5.0  # knobs outlive the scenario by this much, so they heal themselves even if the driver dies
# A traffic entry: model and rate (requests/s), department; stream_share (0..1, streamed calls: time to first token);
# cacheable (repeated seeded questions after a shared system prompt: the response and prompt caches hit); max_tokens
# (caps every answer: keeps traffic to an expensive model within the classroom's small pro-rated budget).
TRAFFIC_KEYS = frozenset({"model", "rate", "department", "stream_share", "cacheable", "max_tokens"})
RECOVERY_TRAFFIC_SECONDS = 20.0  # traffic goes on this long at most after the heal, to show the signal recover
TIMEOUT = 10.0


class ScenarioFailure(RuntimeError):
    """A scenario could not break or heal something; the message says what and how to recover."""


@dataclass
class Context:
    """One run of one scenario, inside the driver process."""

    scenario: Scenario
    run: Path
    profile: Profile
    duration: float
    note: Callable[[str], None] = lambda _: None
    started_at: float = 0.0  # unix time of the trigger
    traffic: list[SteadyTraffic] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # the kind's own things (a process, a port)

    @property
    def params(self) -> Mapping[str, Any]:
        return self.scenario.params

    @property
    def knob_seconds(self) -> float:
        return self.duration + KNOB_GRACE_SECONDS

    def start_traffic(self) -> None:
        """Start the scenario's traffic entries (once). The driver stops them once the scenario is healed and back
        to green; each also stops by itself shortly after the duration plus the recovery time."""
        if self.traffic:
            return
        for entry in self.params.get("traffic", []):
            self.add_traffic(entry)
        if self.traffic:
            total = sum(float(e["rate"]) for e in self.params["traffic"])
            self.note(f"traffic started: {total:g} requests/s over {len(self.traffic)} stream(s)")

    def add_traffic(self, entry: Mapping[str, Any], peak_rate: float | None = None) -> SteadyTraffic:
        """Start one traffic entry ({model, rate, department, ...}); stopped with the others. `peak_rate`: the most
        the kind will raise it to (SteadyTraffic.set_rate), which bounds its request count."""
        rate = float(entry["rate"])
        seconds = self.duration + RECOVERY_TRAFFIC_SECONDS + 2
        stream = SteadyTraffic(entry["model"], rate, max_requests=int(max(rate, peak_rate or 0) * seconds) + 1,
                               max_seconds=seconds, department=entry.get("department", "engineering"),
                               cacheable=bool(entry.get("cacheable", False)),
                               stream_share=float(entry.get("stream_share", 0.0)), max_tokens=entry.get("max_tokens"))
        self.traffic.append(stream.__enter__())
        return stream

    def stop_traffic(self) -> None:
        if not self.traffic:
            return
        with ThreadPoolExecutor(max_workers=len(self.traffic)) as pool:  # stop every stream at once
            list(pool.map(SteadyTraffic.stop, self.traffic))
        sent = sum(stream.result.sent for stream in self.traffic)
        self.traffic.clear()
        self.note(f"traffic stopped after {sent} requests")


def validate_traffic(params: Mapping[str, Any], required: bool = False) -> None:
    entries = params.get("traffic", [])
    if not isinstance(entries, list) or (required and not entries):
        at_least = " (at least one)" if required else ""
        raise ValueError(f"traffic must be a list of {{model, rate, department}}{at_least}")
    for number, entry in enumerate(entries, 1):
        validate_traffic_entry(entry, f"traffic #{number}")


def validate_traffic_entry(entry: object, where: str, extra_keys: frozenset[str] = frozenset()) -> None:
    """One traffic entry ({model, rate, ...}, TRAFFIC_KEYS plus `extra_keys`, which the caller checks); errors start
    with `where`."""
    known = catalog.load()
    if not isinstance(entry, dict) or set(entry) - TRAFFIC_KEYS - extra_keys or "model" not in entry:
        raise ValueError(f"{where}: expected {{{', '.join(sorted(TRAFFIC_KEYS | extra_keys))}}} (model and rate "
                         f"required), got {entry!r}")
    if entry["model"] not in known.models:
        raise ValueError(f"{where}: unknown model {entry['model']!r}; models: {', '.join(known.model_names)}")
    check_rate(entry.get("rate"), f"{where}: rate")
    share = entry.get("stream_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"{where}: stream_share must be the share of streamed calls, 0 to 1")
    if not isinstance(entry.get("cacheable", False), bool):
        raise ValueError(f"{where}: cacheable must be true or false")
    max_tokens = entry.get("max_tokens", known.max_output_tokens)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or \
            not 1 <= max_tokens <= known.max_output_tokens:
        raise ValueError(f"{where}: max_tokens must be a whole number of tokens, 1 to {known.max_output_tokens} "
                         "(catalog.yaml limits.max_output_tokens)")
    department = entry.get("department", "engineering")
    if department not in known.departments:
        raise ValueError(f"{where}: unknown department {department!r}; departments: {', '.join(known.departments)}")


def check_rate(rate: object, what: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_TRAFFIC_RATE:
        raise ValueError(f"{what} must be a number of requests/s in (0, {MAX_TRAFFIC_RATE:g}]")


def check_keys(params: Mapping[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; this kind takes {', '.join(sorted(allowed))}")
    missing = sorted(required - set(params))
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")


def url(service: str) -> str:
    return topology.load().services[service].url


def _call(method: str, address: str, what: str, **kwargs: Any) -> dict:
    try:
        response = httpx.request(method, address, timeout=TIMEOUT, **kwargs)
    except httpx.HTTPError as error:
        raise ScenarioFailure(f"cannot {what}: {address} is not answering ({type(error).__name__}); is the stack up "
                              "(`make status`)?") from None
    if response.status_code != 200:
        raise ScenarioFailure(f"cannot {what}: {method} {address} answered {response.status_code}: "
                              f"{response.text[:300]}")
    return response.json()


def set_faults(knobs: Mapping[str, Any], seconds: float) -> list[str]:
    """Turn fault knobs on (names of stack/faults.py, with settings such as llmsim's `models`), each on its own
    service, healing themselves after `seconds`. Returns the services touched."""
    try:
        requests = faults.requests(knobs, seconds)
    except ValueError as error:
        raise ScenarioFailure(f"cannot set the fault knobs {dict(knobs)}: {error}") from None
    for service, request in requests.items():
        _call("POST", f"{url(service)}/faults", f"set {service}'s fault knobs",
              json=request.model_dump(mode="json", exclude_none=True))
    return list(requests)


def heal_faults(knobs: Iterable[str], strict: bool = True) -> None:
    """Heal these knobs (DELETE /faults/<knob> on each one's service). strict=False: a service that is down has no
    knobs to heal, which is fine."""
    for name in knobs:
        service = faults.KNOBS[name].service
        try:
            _call("DELETE", f"{url(service)}/faults/{name}", f"heal {service}'s fault knob {name}")
        except ScenarioFailure:
            if strict:
                raise


def heal_services(services: Iterable[str], strict: bool = True) -> None:
    """Heal every fault knob of these services (DELETE /faults)."""
    for service in services:
        try:
            _call("DELETE", f"{url(service)}/faults", f"heal {service}'s fault knobs")
        except ScenarioFailure:
            if strict:
                raise
