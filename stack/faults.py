"""Every fault knob of the stack in one place: its service, its parameters and bounds, what it breaks.

Each service reads its own knobs from here where the failure happens (stack/llmsim/faults.py draws the provider's
errors and latency, stack/gateway/faults.py distorts the gateway's /metrics), and the failure scenarios
(stack/scenarios/registry.yaml) name knobs by the names below; the scenario registry refuses a knob that is not
here. Both services serve their knobs the same way, on their own port:

    GET    /faults          every knob of the service: its value, whether it is on, when it heals
    POST   /faults          set knobs: a JSON object {"<knob>": <value>, ..., "duration_seconds": N}; knobs left out
                            keep their value, a misspelt one is a 422 naming it. Every knob heals itself when
                            duration_seconds ends (llmsim: one clock for all its knobs, each POST restarts it;
                            gateway: one clock per knob, a POST restarts the clocks of the knobs it sets)
    DELETE /faults          heal every knob of the service
    DELETE /faults/<knob>   heal one (404 naming the service's knobs if there is no such knob)

To add a knob: a field on its service's request model below (bounds in `Field`, what it breaks in `description`),
then read it in the service where the failure happens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from stack import catalog

MAX_SERIES = 25_000  # prometheus-client renders ~100k label values in ~3 s; keep a scrape well under a second
MAX_PRESPENT_USD = 100_000  # per department: far above any monthly budget of the catalog, still a finite number
COUNTER_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*_total$"


class LlmsimFaults(BaseModel):
    """POST /faults on llmsim, the simulated provider. `models` limits every knob to those models."""

    model_config = ConfigDict(extra="forbid")  # a misspelt knob is an error, not a silent no-op

    error_rate: float | None = Field(None, ge=0, le=1, description="share of calls answered with HTTP 500")
    rate_limit_rate: float | None = Field(None, ge=0, le=1, description="share of calls answered with HTTP 429")
    retry_after_seconds: int | None = Field(None, ge=1, le=600, description="the Retry-After header of those 429s")
    added_latency_seconds: float | None = Field(None, ge=0, le=120, description="seconds added to every call")
    token_multiplier: float | None = Field(None, ge=1, le=100, description="output token blow-up factor")
    outage: bool | None = Field(None, description="answer every call with 503 (and /health too when every model "
                                                  "is out)")
    slow_first_token_seconds: float | None = Field(
        None, ge=0, le=120, description="seconds a provider queue holds every call before its prefill: the time to "
                                        "first token (and the whole call) grows by this, the time per output "
                                        "token does not")
    prompt_cache_off: bool | None = Field(
        None, description="the provider's prompt cache is off: no cached input tokens, every prompt prefilled "
                          "whole (longer time to first token) and billed at the full input price")
    cache_busting_nonce: bool | None = Field(
        None, description="a unique nonce at the start of every prompt, as a template change would add: no prompt "
                          "prefix is ever reused (cached input tokens 0) and the nonces' prefixes evict the shared "
                          "ones, so the cache is cold when it heals")
    rate_limit_scale: float | None = Field(
        None, ge=0.001, le=1, description="the models' requests- and tokens-per-minute limits (catalog.yaml "
                                          "rate_limits) times this: the x-ratelimit-remaining-* headers fall "
                                          "faster and real 429s (naming the limit) begin sooner")
    quality_drift: float | None = Field(
        None, ge=0, le=1, description="share of answers that drift off-topic: HTTP 200, on time, same tokens, but "
                                      "built from words unrelated to the question and its passages (relevance and "
                                      "groundedness 0, stack/answer_quality.py)")
    refusal_share: float | None = Field(
        None, ge=0, le=1, description="the share of the drifted answers (quality_drift) that are a refusal such as "
                                      "'I cannot help with that.' (default 0.1)")
    models: list[str] | None = Field(None, description="limit the faults to these models; empty or null = all")
    duration_seconds: float = Field(300.0, gt=0, le=3600, description="every knob heals itself after this long")


class CardinalityFault(BaseModel):
    """The gateway's cardinality knob: one series per request id, real ones and invented ones."""

    model_config = ConfigDict(extra="forbid")

    series_per_second: float = Field(100.0, ge=0, le=2000,
                                     description="invented request ids per second, on top of real requests")
    max_series: int = Field(3000, ge=1, le=MAX_SERIES, description="stop growing at this many series")


class GatewayFaults(BaseModel):
    """POST /faults on the gateway: break its own metrics, the way a bad deployment would."""

    model_config = ConfigDict(extra="forbid")

    cardinality: CardinalityFault | None = Field(
        None, description="a request_id label that bypasses the label guard: llm_requests_by_id_total gains one "
                          "series per request plus series_per_second invented ones, up to max_series")
    metrics_down: bool | None = Field(
        None, description="GET /metrics answers 503 while the process and its API are fine (false heals it)")
    rename: str | None = Field(
        None, description="llm_requests_total is exported under this counter name, as if a deployment had "
                          "renamed it (e.g. llm_calls_total)")
    prompt_template_change: bool | None = Field(
        None, description="a prompt template change: every chat request's system prompt starts with a unique token, "
                          "so no request repeats (response cache misses) and no prompt prefix is reused (the "
                          "provider's cached input tokens drop to 0); false heals it")
    budget_spent_usd: dict[str, Annotated[float, Field(ge=0, le=MAX_PRESPENT_USD)]] | None = Field(
        None, description="US dollars counted as already spent this month, per department (a key of the catalog's "
                          "budgets.monthly_usd): added to the gateway's month-to-date spend, so that department's "
                          "budget gauges, LLMDepartmentBudget and the budget policy (402 or downgrade) act at once, "
                          "without the traffic that would cost it; {} heals it")
    duration_seconds: float = Field(180.0, gt=0, le=900, description="the knobs set heal themselves after this long")

    @field_validator("budget_spent_usd")
    @classmethod
    def _budgeted_departments(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        budgets = catalog.load().monthly_budgets.monthly_usd
        unknown = sorted(set(value or {}) - set(budgets))
        if unknown:
            raise ValueError(f"no monthly budget for {', '.join(map(repr, unknown))}; departments with one: "
                             f"{', '.join(budgets)} (stack/catalog.yaml budgets.monthly_usd)")
        return value

    @field_validator("rename")
    @classmethod
    def _counter_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(COUNTER_NAME, value):
            raise ValueError(f"{value!r} is not a counter name: letters, digits, '_' or ':', not starting with a "
                             "digit, ending in _total (e.g. llm_calls_total)")
        return value


REQUESTS: dict[str, type[BaseModel]] = {"llmsim": LlmsimFaults, "gateway": GatewayFaults}
SETTINGS = frozenset({"models", "duration_seconds"})  # request fields that are not knobs


@dataclass(frozen=True)
class Knob:
    name: str
    service: str
    params: str  # its value and bounds, e.g. "0..1" or "series_per_second 0..2000 (100), max_series 1..25000 (3000)"
    breaks: str


def _bounds(info: FieldInfo) -> str:
    low = next((f">{m.gt:g}" if hasattr(m, "gt") else f"{m.ge:g}" for m in info.metadata
                if getattr(m, "ge", None) is not None or getattr(m, "gt", None) is not None), "")
    high = next((f"{m.le:g}" for m in info.metadata if getattr(m, "le", None) is not None), "")
    return f"{low}..{high}" if low or high else ""


def _params(info: FieldInfo) -> str:
    kind = next((t for t in getattr(info.annotation, "__args__", (info.annotation,)) if t is not type(None)), None)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return ", ".join(f"{name} {_bounds(sub)} (default {sub.default:g})" for name, sub in kind.model_fields.items())
    if kind is bool:
        return "true | false"
    if get_origin(kind) is dict:
        return f"{{department: USD 0..{MAX_PRESPENT_USD:g}}}"
    return _bounds(info) or "a counter name ending in _total"


def _knobs() -> dict[str, Knob]:
    return {name: Knob(name, service, _params(info), info.description or "")
            for service, model in REQUESTS.items() for name, info in model.model_fields.items()
            if name not in SETTINGS}


KNOBS: dict[str, Knob] = _knobs()


def knobs_of(service: str) -> tuple[str, ...]:
    return tuple(name for name, knob in KNOBS.items() if knob.service == service)


def requests(faults: Mapping[str, Any], duration_seconds: float | None = None) -> dict[str, BaseModel]:
    """Knobs of any service (and their settings, e.g. llmsim's `models`) as one validated request per service.
    ValueError naming the unknown knob or the field out of bounds."""
    unknown = sorted(set(faults) - set(KNOBS) - SETTINGS)
    if unknown:
        raise ValueError(f"unknown knob(s) {', '.join(unknown)}; knobs: {', '.join(KNOBS)} (stack/faults.py)")
    services = {KNOBS[name].service for name in faults if name in KNOBS}
    if not services:
        raise ValueError(f"no knob named; knobs: {', '.join(KNOBS)} (stack/faults.py)")
    bodies: dict[str, dict[str, Any]] = {service: {} for service in services}
    for name, value in faults.items():
        if name in KNOBS:
            bodies[KNOBS[name].service][name] = value
            continue
        takers = [service for service in services if name in REQUESTS[service].model_fields]
        if not takers:
            owners = ", ".join(service for service, model in REQUESTS.items() if name in model.model_fields)
            raise ValueError(f"{name} is a setting of {owners}, and none of its knobs is set here")
        for service in takers:
            bodies[service][name] = value
    if duration_seconds is not None:
        for body in bodies.values():
            body["duration_seconds"] = duration_seconds
    parsed = {}
    for service, body in bodies.items():
        try:
            parsed[service] = REQUESTS[service].model_validate(body)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ValueError(problems) from None
    return parsed
