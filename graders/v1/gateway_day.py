"""Lab V1's gateway day (exercise 8): one seeded day of the course gateway's log file, its `llm_call` lines written
as stack/gateway/calls.py writes them (structlog JSON: `event`, the call's fields, `level`, `timestamp`), with the
uvicorn access lines and other events a real `.run/logs/gateway.log` holds between them.

What happens to the day's chat requests, as the gateway does it: some are answered from the response cache (one line,
`cache: "hit"`, cost 0, `saved_cost_usd` what the provider call would have cost); some fail on the model asked for and
are served by the next model of its fallback chain (catalog.yaml `fallbacks`): the failed attempt is a line of its
own (`status: "fallback"`, same request_id), the serving call has step `chat:fallback<n>` and `requested_model`; some
are routed past an open circuit breaker straight to a fallback (one line, step `chat`, `requested_model` set); some
fail on every model of the chain (the last line `status: "error"`). Returned with the truth the checks compare with,
written down while the day is made, never read back from the lines."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from graders.v1.fixtures import SALT, SEED, USERS
from stack import catalog
from stack.gateway.logs import user_hash

DAY_START = datetime(2026, 5, 5, 0, 0, tzinfo=timezone.utc)
FAILURES = ("server_error", "timeout", "unavailable")


@dataclass
class GatewayDayTruth:
    """saved_usd: what the response cache saved (the sum over its hits); served_by_fallback: request_id ->
    (model asked for, model that answered) for every request answered by another model than the one asked for;
    never_served: requests on which every model of the chain failed."""

    saved_usd: float = 0.0
    cache_hits: int = 0
    served_by_fallback: dict[str, tuple[str, str]] = field(default_factory=dict)
    never_served: list[str] = field(default_factory=list)
    circuit_open_routes: list[str] = field(default_factory=list)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class _DayWriter:
    def __init__(self, rng: random.Random, salt: str) -> None:
        self.rng = rng
        self.salt = salt
        self.prices = catalog.load()
        self.lines: list[str] = []
        self.truth = GatewayDayTruth()

    def call(self, moment: datetime, request_id: str, step: str, user: str, department: str, model: str, *,
             status: str = "success", error_type: str | None = None, requested_model: str | None = None,
             cache_hit: bool = False, streamed: bool = False) -> float:
        """One llm_call line, as CallRecorder.book logs it. Returns the cost the call had (or would have had)."""
        spec = self.prices.models[model]
        input_tokens = self.rng.randint(40, 2400)
        cached = self.rng.choice([0, 0, input_tokens // 2]) if input_tokens > 64 else 0
        output_tokens = self.rng.randint(spec.min_output_tokens, spec.max_output_tokens)
        cost = catalog.cost_usd(model, input_tokens, output_tokens, cached)
        answered = status == "success" and not cache_hit
        duration = (spec.latency.base_seconds + spec.latency.seconds_per_output_token * output_tokens
                    if answered else self.rng.uniform(0.001, 0.004) if cache_hit else self.rng.uniform(0.2, 3.0))
        fields: dict[str, object] = {}
        if streamed:
            ttft = spec.latency.base_seconds if answered else duration if cache_hit else None
            fields.update(streamed=True, ttft_ms=None if ttft is None else round(1000 * ttft, 1))
        if requested_model:
            fields["requested_model"] = requested_model
        if cache_hit:
            fields.update(cache="hit", saved_cost_usd=round(cost, 8))
        line = {
            "event": "llm_call", "request_id": request_id, "step": step,
            "user_hash": user_hash(user, self.salt), "department": department, "application": "chatbot",
            "model": model, "input_tokens": input_tokens if answered else 0,
            "output_tokens": output_tokens if answered else 0,
            "cached_input_tokens": cached if answered else 0, "cost_usd": round(cost, 8) if answered else 0.0,
            "duration_ms": round(duration * 1000, 1), "status": status,
            "finish_reason": "stop" if status == "success" else None, "error_type": error_type,
            "error": f"provider {error_type} on {model}" if error_type else None, "synthetic": False, **fields,
            "level": "info" if status == "success" else "warning", "timestamp": _stamp(moment),
        }
        self.lines.append(json.dumps(line))
        self.lines.append(f'INFO:     127.0.0.1:{self.rng.randint(30000, 60000)} - "POST /v1/chat/completions '
                          f'HTTP/1.1" {200 if status == "success" else 502} OK')
        return cost

    def request(self, moment: datetime) -> None:
        rng = self.rng
        request_id = f"{rng.getrandbits(48):012x}"
        user = rng.choice(USERS)
        department = rng.choice(self.prices.departments)
        names = self.prices.model_names
        requested = rng.choices(names, [2 if name != "sim-fast" else 4 for name in names])[0]
        chain = [requested, *self.prices.models[requested].fallbacks]
        roll = rng.random()
        streamed = rng.random() < 0.4
        common = {"streamed": streamed}
        if roll < 0.18:
            self.truth.saved_usd += round(self.call(moment, request_id, "chat", user, department, requested,
                                                    cache_hit=True, **common), 8)
            self.truth.cache_hits += 1
            return
        if len(chain) == 1 or roll >= 0.45:
            self.call(moment, request_id, "chat", user, department, requested,
                      **({"status": "error", "error_type": "rate_limited"} if roll > 0.97 else {}), **common)
            return
        if roll < 0.24:   # the breaker of the model asked for is open: straight to its first fallback
            self.call(moment, request_id, "chat", user, department, chain[1], requested_model=requested, **common)
            self.truth.served_by_fallback[request_id] = (requested, chain[1])
            self.truth.circuit_open_routes.append(request_id)
            return
        every_model_fails = roll < 0.27
        served_at = len(chain) if every_model_fails else rng.randint(1, len(chain) - 1)
        for position, model in enumerate(chain[:served_at + 1]):
            moment += timedelta(milliseconds=rng.randint(200, 3000))
            step = "chat" if position == 0 else f"chat:fallback{position}"
            asked = requested if position else None
            last_try = position == len(chain) - 1
            if position < served_at:
                self.call(moment, request_id, step, user, department, model, requested_model=asked,
                          status="error" if last_try else "fallback", error_type=rng.choice(FAILURES), **common)
            else:
                self.call(moment, request_id, step, user, department, model, requested_model=asked, **common)
                self.truth.served_by_fallback[request_id] = (requested, model)
        if every_model_fails:
            self.truth.never_served.append(request_id)


def gateway_day(seed: int = SEED, n: int = 300, salt: str = SALT) -> tuple[list[str], GatewayDayTruth]:
    """(the day's gateway log lines, what happened to its requests); the same for the same seed."""
    writer = _DayWriter(random.Random(seed), salt)
    writer.lines.append(json.dumps({"provider_url": "http://127.0.0.1:18701", "event": "gateway_started",
                                    "level": "info", "timestamp": _stamp(DAY_START)}))
    moment = DAY_START
    for number in range(n):
        moment += timedelta(seconds=writer.rng.expovariate(n / 86_400))
        writer.request(moment)
        if number % 50 == 7:
            writer.lines.append(json.dumps({"action": "set", "knob": "error_rate", "event": "fault_knob",
                                            "level": "warning", "timestamp": _stamp(moment)}))
    writer.truth.saved_usd = round(writer.truth.saved_usd, 8)
    return writer.lines, writer.truth
