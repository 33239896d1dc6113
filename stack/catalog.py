"""Models, prices, label sets and budgets, loaded from stack/catalog.yaml (the only place they are written)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from stack.paths import STACK_DIR

CATALOG_FILE = STACK_DIR / "catalog.yaml"
TOKENS_PER_PRICE_UNIT = 1_000_000
OTHER = "other"  # what a label value outside its allow-list becomes, and the budget those departments share
BUDGET_POLICIES = ("refuse", "downgrade")


@dataclass(frozen=True)
class LatencyProfile:
    """Time to first token = base_seconds + prefill_seconds_per_1k_prompt_tokens per 1000 (uncached) prompt tokens;
    then seconds_per_output_token per output token; both times a seeded jitter factor of 1 ± jitter."""

    base_seconds: float
    prefill_seconds_per_1k_prompt_tokens: float
    seconds_per_output_token: float
    jitter: float


@dataclass(frozen=True)
class RateLimits:
    """What the simulated provider admits of one model per minute (stack/llmsim/rate_limits.py)."""

    requests_per_minute: int
    tokens_per_minute: int


@dataclass(frozen=True)
class Model:
    name: str
    tier: str
    input_price_per_million: float
    cached_input_price_per_million: float  # a prompt token read from the provider's prompt cache
    output_price_per_million: float
    latency: LatencyProfile
    min_output_tokens: int
    max_output_tokens: int
    rate_limits: RateLimits
    fallbacks: tuple[str, ...] = ()  # tried in order when a call to this model fails

    def cost_usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """`input_tokens` counts every prompt token, the cached ones included (as OpenAI's `prompt_tokens` does);
        `cached_input_tokens` of them are priced at the cached-input price."""
        if not 0 <= cached_input_tokens <= input_tokens:
            raise ValueError(f"cached_input_tokens {cached_input_tokens} must be between 0 and input_tokens "
                             f"{input_tokens}")
        return (
            (input_tokens - cached_input_tokens) * self.input_price_per_million
            + cached_input_tokens * self.cached_input_price_per_million
            + output_tokens * self.output_price_per_million
        ) / TOKENS_PER_PRICE_UNIT


@dataclass(frozen=True)
class PromptCacheSettings:
    """The simulated provider's prompt cache (stack/llmsim/prompt_cache.py)."""

    max_entries: int
    ttl_seconds: float
    min_prefix_tokens: int


@dataclass(frozen=True)
class CircuitBreakerSettings:
    """The gateway's circuit breaker per model (stack/gateway/routing.py)."""

    failure_threshold: int
    reset_seconds: float


@dataclass(frozen=True)
class ResponseCacheSettings:
    """The gateway's response cache (stack/gateway/response_cache.py)."""

    max_entries: int
    ttl_seconds: float


@dataclass(frozen=True)
class MonthlyBudgetSettings:
    """Monthly budget per department (USD; `other` is shared by every department not listed) and what the gateway
    does once a department has spent it: `refuse` (HTTP 402) or `downgrade` (the cheapest model serves)."""

    monthly_usd: Mapping[str, float]
    policy: str

    def budget_key(self, department: str) -> str:
        """The budget a department spends: its own, or `other` when the catalog does not list it."""
        return department if department in self.monthly_usd else OTHER


class CatalogError(ValueError):
    """stack/catalog.yaml is missing a value or holds a wrong one; the message names the field."""


@dataclass(frozen=True)
class Catalog:
    models: dict[str, Model]
    departments: tuple[str, ...]
    applications: tuple[str, ...]
    max_values_per_label: int
    daily_budget_usd: float
    monthly_budgets: MonthlyBudgetSettings
    prompt_cache: PromptCacheSettings
    response_cache: ResponseCacheSettings
    circuit_breaker: CircuitBreakerSettings
    max_prompt_chars: int
    max_output_tokens: int
    max_prompt_tokens: int
    max_messages_per_request: int
    max_body_bytes: dict[str, int]
    max_json_depth: int
    max_annotation_bytes: int
    notifications_page_bytes: int

    @property
    def model_names(self) -> list[str]:
        return sorted(self.models)

    @property
    def cheapest_model(self) -> str:
        """The model with the lowest input + output price per million tokens (ties: the first name): what serves a
        department over its monthly budget under the `downgrade` policy."""
        return min(self.models.values(),
                   key=lambda m: (m.input_price_per_million + m.output_price_per_million, m.name)).name


class UnknownModelError(KeyError):
    """A model name that is not in the catalog."""


def _model(name: str, spec: dict) -> Model:
    return Model(
        name=name,
        tier=spec["tier"],
        input_price_per_million=float(spec["price_per_million"]["input"]),
        cached_input_price_per_million=float(spec["price_per_million"]["cached_input"]),
        output_price_per_million=float(spec["price_per_million"]["output"]),
        latency=LatencyProfile(**spec["latency"]),
        min_output_tokens=int(spec["output_tokens"]["min"]),
        max_output_tokens=int(spec["output_tokens"]["max"]),
        rate_limits=RateLimits(requests_per_minute=int(spec["rate_limits"]["requests_per_minute"]),
                               tokens_per_minute=int(spec["rate_limits"]["tokens_per_minute"])),
        fallbacks=tuple(spec.get("fallbacks") or ()),
    )


def _check_fallbacks(models: dict) -> None:
    for name, spec in models.items():
        chain = list(spec.get("fallbacks") or ())
        unknown = [m for m in chain if m not in models]
        if unknown:
            raise ValueError(f"{CATALOG_FILE}: models.{name}.fallbacks names unknown model(s) {unknown}; models: "
                             f"{', '.join(models)}")
        if name in chain or len(set(chain)) != len(chain):
            raise ValueError(f"{CATALOG_FILE}: models.{name}.fallbacks {chain} repeats a model or names {name} itself")


def _usd(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CatalogError(f"{CATALOG_FILE.name}: {field} is {value!r}; it must be a positive number of US dollars")
    return float(value)


def monthly_budgets(raw: Any, departments: tuple[str, ...]) -> MonthlyBudgetSettings:
    """`budgets` of catalog.yaml, checked: a budget for every department of labels.department and for `other`,
    nothing else, each a positive amount; a known policy. CatalogError names the field otherwise."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("monthly_usd"), Mapping):
        raise CatalogError(f"{CATALOG_FILE.name}: budgets.monthly_usd is missing; give every department of "
                           f"labels.department and {OTHER!r} a monthly budget in USD")
    amounts = raw["monthly_usd"]
    expected = (*departments, OTHER)
    missing = [f"budgets.monthly_usd.{name}" for name in expected if name not in amounts]
    if missing:
        raise CatalogError(f"{CATALOG_FILE.name}: {', '.join(missing)} missing: every department of "
                           f"labels.department, and {OTHER!r} (the departments not listed share it), needs a "
                           "monthly budget in USD")
    unknown = [f"budgets.monthly_usd.{name}" for name in amounts if name not in expected]
    if unknown:
        raise CatalogError(f"{CATALOG_FILE.name}: {', '.join(unknown)}: not a department of labels.department "
                           f"({', '.join(departments)}) nor {OTHER!r}")
    policy = raw.get("policy")
    if policy not in BUDGET_POLICIES:
        raise CatalogError(f"{CATALOG_FILE.name}: budgets.policy is {policy!r}; it must be one of "
                           f"{', '.join(BUDGET_POLICIES)}")
    return MonthlyBudgetSettings(
        monthly_usd={name: _usd(amounts[name], f"budgets.monthly_usd.{name}") for name in expected}, policy=policy)


@cache
def load() -> Catalog:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    _check_fallbacks(raw["models"])
    departments = tuple(raw["labels"]["department"])
    return Catalog(
        models={name: _model(name, spec) for name, spec in raw["models"].items()},
        departments=departments,
        applications=tuple(raw["labels"]["application"]),
        max_values_per_label=int(raw["labels"]["max_values_per_label"]),
        daily_budget_usd=float(raw["budget"]["daily_usd"]),
        monthly_budgets=monthly_budgets(raw.get("budgets"), departments),
        prompt_cache=PromptCacheSettings(max_entries=int(raw["prompt_cache"]["max_entries"]),
                                         ttl_seconds=float(raw["prompt_cache"]["ttl_seconds"]),
                                         min_prefix_tokens=int(raw["prompt_cache"]["min_prefix_tokens"])),
        response_cache=ResponseCacheSettings(max_entries=int(raw["response_cache"]["max_entries"]),
                                             ttl_seconds=float(raw["response_cache"]["ttl_seconds"])),
        circuit_breaker=CircuitBreakerSettings(
            failure_threshold=int(raw["circuit_breaker"]["failure_threshold"]),
            reset_seconds=float(raw["circuit_breaker"]["reset_seconds"])),
        max_prompt_chars=int(raw["limits"]["max_prompt_chars"]),
        max_output_tokens=int(raw["limits"]["max_output_tokens"]),
        max_prompt_tokens=int(raw["limits"]["max_prompt_tokens"]),
        max_messages_per_request=int(raw["limits"]["max_messages_per_request"]),
        max_body_bytes={service: int(size) for service, size in raw["limits"]["max_body_bytes"].items()},
        max_json_depth=int(raw["limits"]["max_json_depth"]),
        max_annotation_bytes=int(raw["limits"]["max_annotation_bytes"]),
        notifications_page_bytes=int(raw["limits"]["notifications_page_bytes"]),
    )


def cost_usd(model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
    """Cost of one call from the shared pricing table; unknown models raise instead of costing 0. `input_tokens`
    includes the `cached_input_tokens` (usage.prompt_tokens_details.cached_tokens), which cost the cached-input
    price."""
    catalog = load()
    if model not in catalog.models:
        raise UnknownModelError(f"unknown model {model!r}; known models: {', '.join(catalog.model_names)}")
    return catalog.models[model].cost_usd(input_tokens, output_tokens, cached_input_tokens)
