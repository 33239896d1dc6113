"""The gateway's fault knobs (stack/faults.py: GatewayFaults): break its own metrics on purpose, for the
instructor's failure scenarios (stack/scenarios), served the way llmsim serves its own:

    GET    /faults          every knob, its values and when it heals
    POST   /faults          set knobs: {"cardinality": {"series_per_second": 100, "max_series": 3000}},
                            {"metrics_down": true}, {"rename": "llm_calls_total"}, with "duration_seconds"
    DELETE /faults          heal them all;  DELETE /faults/<knob> heals one

    cardinality   a `request_id` label that bypasses the label guard: `llm_requests_by_id_total` gains one series
                  per real request plus `series_per_second` invented ones (standing in for production traffic), up
                  to `max_series`
    metrics_down  GET /metrics answers 503: the endpoint is down while the process and its API are fine
    rename        `llm_requests_total` is exported under another name, as if a deployment had renamed it
    prompt_template_change
                  every chat request's system prompt starts with a unique token (a template change gone wrong): the
                  response cache and the provider's prompt cache stop hitting (read in stack/gateway/chat.py)
    budget_spent_usd
                  {department: USD} counted as already spent this month: added to month-to-date spend, so a
                  department crosses 80 / 90 / 100 % of its monthly budget at once (read in stack/gateway/budget.py)

Every knob is bounded (stack/faults.py: `duration_seconds` <= 900, `max_series` <= 25000) and heals itself when
its duration ends. Setting a knob again replaces its values and restarts its clock (cardinality keeps the series
it already made, up to the new `max_series`), so a scenario may apply it twice. Bad input is a 422 naming the
field, a rename onto an existing metric a 400; a rejected POST changes nothing. Only loopback clients may turn
knobs (403 otherwise); the gateway only listens on 127.0.0.1 anyway. GATEWAY_FAULTS=off removes the endpoints (404).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from pydantic import ValidationError

from stack import faults
from stack.faults import CardinalityFault, GatewayFaults
from stack.gateway import logs
from stack.web import describe_validation_error, problem

KNOBS = faults.knobs_of("gateway")
RENAMED_METRIC = "llm_requests"  # the family the rename knob hides (llm_requests_total)
EXPLOSION_METRIC = "llm_requests_by_id"  # exported as llm_requests_by_id_total{model, request_id}
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def enabled() -> bool:
    return os.environ.get("GATEWAY_FAULTS", "on").strip().lower() not in {"0", "off", "false", "no"}


@dataclass
class _Explosion:
    rate: float
    max_series: int
    expires_at: float
    anchor_time: float
    anchor_invented: int = 0
    invented: int = 0
    series: list[tuple[str, str]] = field(default_factory=list)  # (model, request_id)


class FaultState:
    """The knobs' state. Thread-safe; time comes from `clock` (monotonic seconds) so tests can move it."""

    def __init__(self, models: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.models = list(models) or ["unknown"]
        self.clock = clock
        self._lock = threading.Lock()
        self._explosion: _Explosion | None = None
        self._down_until: float | None = None
        self._rename: tuple[str, float] | None = None  # (new family name without _total, expires_at)
        self._template_until: float | None = None
        self._prespent: tuple[dict[str, float], float] | None = None  # (USD per department, expires_at)

    # ------------------------------------------------------------------ setting and healing
    def apply(self, request: GatewayFaults, exported: set[str]) -> None:
        """Set the knobs the request names. `exported`: the metric family names the gateway exports (a rename must
        not collide with one). A ValueError (a bad rename) changes nothing."""
        if request.rename is not None:
            self._check_rename(request.rename, exported)
        seconds = request.duration_seconds
        if request.cardinality is not None:
            self.set_cardinality(request.cardinality, seconds)
        if request.metrics_down is not None:
            self.set_metrics_down(request.metrics_down, seconds)
        if request.rename is not None:
            self.set_rename(request.rename, seconds, exported)
        if request.prompt_template_change is not None:
            self.set_prompt_template_change(request.prompt_template_change, seconds)
        if request.budget_spent_usd is not None:
            self.set_budget_spent(request.budget_spent_usd, seconds)

    def set_cardinality(self, knob: CardinalityFault, seconds: float) -> None:
        now = self.clock()
        with self._lock:
            current = self._live_explosion(now)
            if current is None:
                self._explosion = _Explosion(knob.series_per_second, knob.max_series, now + seconds, anchor_time=now)
                return
            self._grow(current, now)
            current.rate, current.max_series = knob.series_per_second, knob.max_series
            current.expires_at = now + seconds
            current.anchor_time, current.anchor_invented = now, current.invented
            del current.series[knob.max_series:]

    def set_metrics_down(self, down: bool, seconds: float) -> None:
        with self._lock:
            self._down_until = self.clock() + seconds if down else None

    def set_prompt_template_change(self, on: bool, seconds: float) -> None:
        with self._lock:
            self._template_until = self.clock() + seconds if on else None

    def set_budget_spent(self, usd_by_department: dict[str, float], seconds: float) -> None:
        """Replaces the pre-spent amounts (an empty mapping heals the knob)."""
        with self._lock:
            self._prespent = (dict(usd_by_department), self.clock() + seconds) if usd_by_department else None

    def set_rename(self, new_name: str, seconds: float, exported: set[str]) -> None:
        """`exported`: the metric family names the gateway exports (a rename must not collide with one)."""
        self._check_rename(new_name, exported)
        with self._lock:
            self._rename = (new_name.removesuffix("_total"), self.clock() + seconds)

    @staticmethod
    def _check_rename(new_name: str, exported: set[str]) -> None:
        base = new_name.removesuffix("_total")
        if base == RENAMED_METRIC:
            raise ValueError(f"rename {new_name!r} is the current name; pick another, e.g. llm_calls_total")
        if base in exported - {RENAMED_METRIC} or base == EXPLOSION_METRIC:
            raise ValueError(f"rename {new_name!r} is already exported by the gateway; two families with one "
                             "name would break the scrape. Pick an unused name, e.g. llm_calls_total")

    def heal(self, knob: str | None = None) -> list[str]:
        """Turn one knob (or all) off; returns the knobs that were active."""
        now = self.clock()
        with self._lock:
            was = [name for name, active in self._active(now).items() if active]
            if knob in (None, "cardinality"):
                self._explosion = None
            if knob in (None, "metrics_down"):
                self._down_until = None
            if knob in (None, "rename"):
                self._rename = None
            if knob in (None, "prompt_template_change"):
                self._template_until = None
            if knob in (None, "budget_spent_usd"):
                self._prespent = None
        return [name for name in was if knob in (None, name)]

    # ------------------------------------------------------------------ what the gateway asks while serving
    def observe_request(self, request_id: str, model: str) -> None:
        """A real request: during a cardinality explosion its id becomes a label value (the bug being shown)."""
        if self._explosion is None:
            return
        with self._lock:
            explosion = self._live_explosion(self.clock())
            if explosion is not None and len(explosion.series) < explosion.max_series:
                explosion.series.append((model, request_id))

    def metrics_down(self) -> bool:
        with self._lock:
            return self._active(self.clock())["metrics_down"]

    def template_nonce(self) -> str | None:
        """While prompt_template_change is on: a fresh token for the next request's system prompt."""
        if self._template_until is None:
            return None
        with self._lock:
            return secrets.token_hex(8) if self._active(self.clock())["prompt_template_change"] else None

    def budget_spent_usd(self) -> dict[str, float]:
        """While budget_spent_usd is on: USD per department to count as already spent this month; else nothing."""
        if self._prespent is None:
            return {}
        with self._lock:
            return dict(self._prespent[0]) if self._active(self.clock())["budget_spent_usd"] and self._prespent else {}

    def renamed_to(self) -> str | None:
        """The family name llm_requests is exported under while the rename knob is on (without _total)."""
        with self._lock:
            return self._rename[0] if self._active(self.clock())["rename"] and self._rename else None

    def explosion_series(self) -> list[tuple[str, str]]:
        now = self.clock()
        with self._lock:
            explosion = self._live_explosion(now)
            if explosion is None:
                return []
            self._grow(explosion, now)
            return list(explosion.series)

    def describe(self) -> dict:
        now = self.clock()
        with self._lock:
            active = self._active(now)
            explosion = self._live_explosion(now)
            if explosion is not None:
                self._grow(explosion, now)

            def heals_in(expires_at: float | None) -> float | None:
                return None if expires_at is None else round(max(0.0, expires_at - now), 1)

            rename = self._rename if active["rename"] else None
            template_until = self._template_until if active["prompt_template_change"] else None
            down_until = self._down_until if active["metrics_down"] else None
            prespent = self._prespent if active["budget_spent_usd"] else None
            values: dict[str, object] = {
                "cardinality": {"series_per_second": explosion.rate, "max_series": explosion.max_series}
                if explosion else None,
                "metrics_down": active["metrics_down"],
                "rename": f"{rename[0]}_total" if rename else None,
                "prompt_template_change": active["prompt_template_change"],
                "budget_spent_usd": dict(prespent[0]) if prespent else None,
            }
            return {
                "service": "gateway",
                "healthy": not any(active.values()),
                "active": {name: values[name] for name in KNOBS if active[name]},
                "knobs": {
                    "cardinality": {
                        "value": values["cardinality"],
                        "active": active["cardinality"],
                        "series": len(explosion.series) if explosion else 0,
                        "metric": f"{EXPLOSION_METRIC}_total",
                        "heals_in_seconds": heals_in(explosion.expires_at if explosion else None),
                    },
                    "metrics_down": {"value": values["metrics_down"], "active": active["metrics_down"],
                                     "heals_in_seconds": heals_in(down_until)},
                    "rename": {
                        "value": values["rename"],
                        "active": active["rename"],
                        "from": f"{RENAMED_METRIC}_total",
                        "heals_in_seconds": heals_in(rename[1] if rename else None),
                    },
                    "prompt_template_change": {"value": values["prompt_template_change"],
                                               "active": active["prompt_template_change"],
                                               "heals_in_seconds": heals_in(template_until)},
                    "budget_spent_usd": {"value": values["budget_spent_usd"], "active": active["budget_spent_usd"],
                                         "heals_in_seconds": heals_in(prespent[1] if prespent else None)},
                },
            }

    # ------------------------------------------------------------------ internals (call with the lock held)
    def _live_explosion(self, now: float) -> _Explosion | None:
        if self._explosion is not None and now >= self._explosion.expires_at:
            self._explosion = None
        return self._explosion

    def _active(self, now: float) -> dict[str, bool]:
        if self._down_until is not None and now >= self._down_until:
            self._down_until = None
        if self._rename is not None and now >= self._rename[1]:
            self._rename = None
        if self._template_until is not None and now >= self._template_until:
            self._template_until = None
        if self._prespent is not None and now >= self._prespent[1]:
            self._prespent = None
        return {"cardinality": self._live_explosion(now) is not None, "metrics_down": self._down_until is not None,
                "rename": self._rename is not None, "prompt_template_change": self._template_until is not None,
                "budget_spent_usd": self._prespent is not None}

    def _grow(self, explosion: _Explosion, now: float) -> None:
        due = explosion.anchor_invented + int(explosion.rate * (now - explosion.anchor_time))
        while explosion.invented < due and len(explosion.series) < explosion.max_series:
            model = self.models[explosion.invented % len(self.models)]
            explosion.series.append((model, secrets.token_hex(16)))
            explosion.invented += 1
        if len(explosion.series) >= explosion.max_series:
            explosion.invented = max(explosion.invented, due)

    # ------------------------------------------------------------------ the /metrics view
    def exposed(self, registry: CollectorRegistry) -> ExposedRegistry:
        return ExposedRegistry(registry, self)


class ExposedRegistry:
    """What /metrics renders: the gateway's registry as the knobs currently distort it."""

    def __init__(self, registry: CollectorRegistry, knobs: FaultState) -> None:
        self.registry, self.knobs = registry, knobs

    def collect(self) -> Iterator[Metric]:
        renamed = self.knobs.renamed_to()
        for family in self.registry.collect():
            yield _renamed(family, renamed) if renamed and family.name == RENAMED_METRIC else family
        series = self.knobs.explosion_series()
        if series:
            explosion = CounterMetricFamily(
                EXPLOSION_METRIC,
                "FAULT KNOB: provider calls by request id (an unbounded label; stack/gateway/faults.py).",
                labels=["model", "request_id"])
            for model, request_id in series:
                explosion.add_metric([model, request_id], 1.0)
            yield explosion


def _renamed(family: Metric, base: str) -> Metric:
    copy = Metric(base, family.documentation, family.type, family.unit)
    copy.samples = [sample._replace(name=base + sample.name[len(family.name):]) for sample in family.samples]
    return copy


class MetricsGate:
    """ASGI middleware: while metrics_down is on, GET /metrics answers 503 before reaching the metrics route."""

    def __init__(self, app, knobs: FaultState) -> None:  # noqa: ANN001 (an ASGI app)
        self.app, self.knobs = app, knobs

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and scope["path"] == "/metrics" and self.knobs.metrics_down():
            response = PlainTextResponse(
                "503: /metrics is switched off by the fault knob metrics_down (a failure scenario); "
                "`make heal` or DELETE /faults/metrics_down restores it\n", status_code=503)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _loopback_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        raise HTTPException(403, problem(403, f"fault knobs are for loopback clients only; {host or 'unknown'} is not"))


async def _request(request: Request) -> GatewayFaults:
    """The knobs to set, from the body. Validated here rather than by FastAPI so a typo is a 422 naming the field
    without being counted as a rejected LLM request in the gateway's metrics."""
    raw = await request.body()
    example = '{"metrics_down": true, "duration_seconds": 60}'
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        message = f"body is not valid JSON; send a JSON object such as {example}"
        raise HTTPException(422, problem(422, message)) from None
    if not isinstance(data, dict):
        raise HTTPException(422, problem(422, f"body must be a JSON object such as {example}"))
    try:
        return GatewayFaults.model_validate(data)
    except ValidationError as error:
        problems = [describe_validation_error(dict(e)) for e in error.errors()]
        fields = [".".join(str(part) for part in e["loc"]) for e in error.errors()]
        raise HTTPException(422, problem(422, "invalid fault knobs: " + "; ".join(problems), fields=fields)) from None


def install(app: FastAPI, registry: CollectorRegistry, models: list[str]) -> FaultState:
    """Add the knobs to the gateway: /faults routes and the metrics_down gate. Returns their state, whose
    `exposed(registry)` the /metrics route must render (it applies the rename and the explosion)."""
    state = FaultState(models)
    if not enabled():
        return state
    app.add_middleware(MetricsGate, knobs=state)
    log = logs.get_logger()
    router = APIRouter(prefix="/faults", tags=["faults"], dependencies=[Depends(_loopback_only)])

    def changed(action: str, knob: str, **values: object) -> dict:
        log.warning("fault_knob", action=action, knob=knob, **values)
        return state.describe()

    @router.get("")
    async def show() -> dict:
        return state.describe()

    @router.post("")
    async def set_faults(request: Request) -> dict:
        knobs = await _request(request)
        try:
            state.apply(knobs, {family.name for family in registry.collect()})
        except ValueError as error:
            raise HTTPException(400, problem(400, str(error), field="rename")) from None
        chosen = knobs.model_dump(exclude_none=True)
        return changed("set", ",".join(name for name in chosen if name in KNOBS) or "none", **chosen)

    @router.delete("")
    async def heal_all() -> dict:
        return changed("heal", "all", healed=state.heal())

    @router.delete("/{knob}")
    async def heal_one(knob: str) -> dict:
        if knob not in KNOBS:
            raise HTTPException(404, problem(404, f"the gateway has no fault knob {knob!r}; knobs: {', '.join(KNOBS)}"))
        return changed("heal", knob, healed=state.heal(knob))

    app.include_router(router)
    return state
