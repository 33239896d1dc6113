"""What Prometheus would have scraped from the stack over one alert case: the gateway's request counters per model and
status, latency and time-to-first-token histograms (with the gateway's buckets), streamed calls, response-cache
lookups, cost counters, the daily budget gauge and the departments' monthly budget gauges, circuit-breaker states and
the degradation tier, answered requests by requested and served model (with the fallback hand-overs they imply),
rate-limit headroom, `up` of every target.

One `World` is the input of one promtool test group. It serves both the generated promtool tests of the stack's own
rules (alert_cases.py, sampled every profile's test interval) and the V3 rule grader (graders/v3/rules.py, sampled
every second and replayed by graders/v3/timelines.py). Phases are (duration, ...) tuples; a duration is a `Duration` or
whole seconds, and the phases of one series always add up to the world's length. Named shapes of traffic both use are
in shapes.py.

A scrape gap (`gap`) and a vanished series (`end`) are rendered with staleness markers: promtool replays them, but the
model of alert_cases.py does not predict them, so the stack's own cases use neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from stack import catalog, topology
from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS
from stack.profiles import Duration
from stack.prometheus.scrape import SCRAPED_SERVICES, lab_jobs
from stack.prometheus.series import CaseError, InputSeries, Phase, counter, gauge, histogram, number, ramp, selector

Span = Duration | int  # a phase's length: a Duration or whole seconds
ONE_SECOND = Duration(1)


def target(job: str, instance: str | None = None) -> dict[str, str]:
    """The job and instance labels Prometheus gives a target's series (docs/contract.md; always the base ports of
    topology.yaml, like the generated configs). A job that is no service of topology.yaml gets `<job>:9090`."""
    with topology.base_ports():
        address = topology.load()[job].address if job in {*SCRAPED_SERVICES, *lab_jobs()} else f"{job}:9090"
    return {"job": job, "instance": instance or address}


GATEWAY = target("gateway")


def as_duration(span: Span) -> Duration:
    """A phase length as a Duration."""
    return span if isinstance(span, Duration) else Duration(span)


@dataclass
class World:
    """The series of one case, `seconds` long, sampled every `interval` (samples at 0, interval, ..., seconds)."""

    seconds: int
    interval: Duration = ONE_SECOND
    series: list[InputSeries | Explicit] = field(default_factory=list)
    gaps: list[tuple[str, int, int]] = field(default_factory=list)  # (job, first missed scrape, how many), seconds
    ends: dict[str, int] = field(default_factory=dict)              # series -> last sample (s), then staleness

    @property
    def length(self) -> Duration:
        return Duration(self.seconds)

    def _phases(self, phases: Sequence[tuple[Span, float]], what: str = "phases") -> list[Phase]:
        total = sum(as_duration(span).seconds for span, _ in phases)
        if total != self.seconds:
            raise CaseError(f"{what} last {total}s, the case {self.seconds}s")
        return [Phase(as_duration(span), value) for span, value in phases]

    # ---------------------------------------------------------------- any series

    def counter(self, name: str, labels: Mapping[str, str], phases: Sequence[tuple[Span, float]]) -> World:
        """A counter from 0, growing at each phase's rate (per second)."""
        self.series.append(counter(name, labels, self.interval, self._phases(phases)))
        return self

    def gauge(self, name: str, labels: Mapping[str, str], phases: Sequence[tuple[Span, float]]) -> World:
        """A gauge at each phase's level."""
        self.series.append(gauge(name, labels, self.interval, self._phases(phases)))
        return self

    def ramp(self, name: str, labels: Mapping[str, str], start: float, hold: Span, step: float) -> World:
        """A gauge at `start` for `hold`, then changing by `step` every interval until the end."""
        held = as_duration(hold)
        self.series.append(ramp(name, labels, self.interval, start, held, step, Duration(self.seconds - held.seconds)))
        return self

    # ---------------------------------------------------------------- the gateway

    def requests(self, model: str, phases: Sequence[tuple[Span, float, float]], where: Mapping[str, str] = GATEWAY,
                 name: str = "llm_requests_total") -> World:
        """Requests of one model from phases of (duration, requests/s, share that fails)."""
        for status in ("success", "error"):
            per_second = [(span, rate * (share if status == "error" else 1 - share)) for span, rate, share in phases]
            self.counter(name, {**where, "model": model, "status": status}, per_second)
        return self

    def idle(self, model: str, where: Mapping[str, str] = GATEWAY) -> World:
        """An idle model: both children exported at 0 (the gateway pre-initialises them)."""
        for status in ("success", "error"):
            self.gauge("llm_requests_total", {**where, "model": model, "status": status}, [(self.seconds, 0)])
        return self

    def _histogram(self, name: str, buckets: Sequence[float], labels: Mapping[str, str], rate: float,
                   phases: Sequence[tuple[Span, Mapping[float, float]]]) -> World:
        """`rate` observations/s spread over buckets by share, per phase."""
        durations = self._phases([(span, 0) for span, _ in phases], f"{name} phases")
        per_second = [(phase.duration, {bound: share * rate for bound, share in shares.items()})
                      for phase, (_, shares) in zip(durations, phases)]
        self.series += histogram(self.interval, name, labels, buckets, per_second)
        return self

    def latency(self, model: str, rate: float, phases: Sequence[tuple[Span, Mapping[float, float]]],
                where: Mapping[str, str] = GATEWAY) -> World:
        """llm_request_duration_seconds of one model: `rate` requests/s spread over buckets by share, per phase."""
        return self._histogram("llm_request_duration_seconds", LATENCY_BUCKETS_SECONDS, {**where, "model": model},
                               rate, phases)

    def streamed(self, model: str, rate: float, phases: Sequence[tuple[Span, Mapping[float, float]]],
                 where: Mapping[str, str] = GATEWAY) -> World:
        """`rate` streamed calls/s of one model (llm_streamed_requests_total), their first tokens spread over the
        llm_time_to_first_token_seconds buckets by share, per phase."""
        self.counter("llm_streamed_requests_total", {**where, "model": model}, [(span, rate) for span, _ in phases])
        return self._histogram("llm_time_to_first_token_seconds", TTFT_BUCKETS_SECONDS, {**where, "model": model},
                               rate, phases)

    def cache_lookups(self, model: str, phases: Sequence[tuple[Span, float, float]],
                      where: Mapping[str, str] = GATEWAY) -> World:
        """Response-cache lookups of one model from phases of (duration, lookups/s, share that hits):
        llm_response_cache_hits_total and llm_response_cache_misses_total."""
        for name, hits in (("llm_response_cache_hits_total", True), ("llm_response_cache_misses_total", False)):
            per_second = [(span, rate * (share if hits else 1 - share)) for span, rate, share in phases]
            self.counter(name, {**where, "model": model}, per_second)
        return self

    def provider_errors(self, model: str, error_type: str, phases: Sequence[tuple[Span, float]]) -> World:
        """llm_provider_errors_total of one model and error type from phases of (duration, errors/s)."""
        return self.counter("llm_provider_errors_total", {**GATEWAY, "model": model, "error_type": error_type}, phases)

    def cost(self, model: str, department: str, phases: Sequence[tuple[Span, float]]) -> World:
        """llm_cost_usd_total of one model and department from phases of (duration, USD per hour)."""
        return self.counter("llm_cost_usd_total", {**GATEWAY, "model": model, "department": department},
                            [(span, usd / 3600) for span, usd in phases])

    def budget(self, usd_per_day: float) -> World:
        return self.gauge("llm_daily_budget_usd", GATEWAY, [(self.seconds, usd_per_day)])

    def department_budget(self, department: str, monthly_usd: float, spent: Sequence[tuple[Span, float]],
                          projected: float | None = None) -> World:
        """One department's monthly budget gauges: llm_budget_monthly_usd, llm_budget_spent_usd (month to date, USD)
        in phases of (duration, USD spent), and llm_budget_projected_usd (month-end pace) when given."""
        labels = {**GATEWAY, "department": department}
        self.gauge("llm_budget_monthly_usd", labels, [(self.seconds, monthly_usd)])
        if projected is not None:
            self.gauge("llm_budget_projected_usd", labels, [(self.seconds, projected)])
        return self.gauge("llm_budget_spent_usd", labels, spent)

    # ---------------------------------------------------------------- fallbacks, circuit breakers, rate limits

    def breaker(self, model: str, phases: Sequence[tuple[Span, float]]) -> World:
        """llm_circuit_breaker_state of one model from phases of (duration, state): 0 closed, 1 open, 2 half-open
        (stack/gateway/metrics.py STATE_VALUES)."""
        return self.gauge("llm_circuit_breaker_state", {**GATEWAY, "model": model}, phases)

    def tier(self, phases: Sequence[tuple[Span, float]]) -> World:
        """llm_degradation_tier from phases of (duration, tier): 1 full service ... 4 cache only
        (stack/gateway/routing.py)."""
        return self.gauge("llm_degradation_tier", GATEWAY, phases)

    def routed(self, requested: str, rate: float, phases: Sequence[tuple[Span, Mapping[str, float]]],
               where: Mapping[str, str] = GATEWAY) -> World:
        """`rate` answered requests/s for `requested`, shared per phase among the models of its fallback chain
        (catalog.yaml) that served them: llm_routed_requests_total{requested_model,served_model}, and
        llm_fallbacks_total of the hand-overs each answer took (every model before the one that served failed).
        A series exists for every served model and hand-over that occurs in some phase."""
        chain = (requested, *catalog.load().models[requested].fallbacks)
        unknown = {served for _, shares in phases for served in shares} - set(chain)
        if unknown:
            raise CaseError(f"{requested} falls back to {list(chain[1:])}, not to {sorted(unknown)}")
        served_models = [m for m in chain if any(shares.get(m) for _, shares in phases)]
        for served in served_models:
            self.counter("llm_routed_requests_total", {**where, "requested_model": requested,
                                                       "served_model": served},
                         [(span, rate * shares.get(served, 0.0)) for span, shares in phases])
        for hand_over in dict.fromkeys(h for served in served_models for h in _hand_overs(chain, served)):
            from_model, to_model, outcome = hand_over
            self.counter("llm_fallbacks_total", {**where, "from_model": from_model, "to_model": to_model,
                                                 "outcome": outcome},
                         [(span, sum(rate * share for served, share in shares.items()
                                     if hand_over in _hand_overs(chain, served))) for span, shares in phases])
        return self

    def ratelimit(self, model: str, kind: str, limit: float, phases: Sequence[tuple[Span, float]]) -> World:
        """The provider's rate-limit headers as the gateway exports them for one model and kind (requests or
        tokens): llm_ratelimit_limit at `limit`, llm_ratelimit_remaining from phases of (duration, share of it
        left)."""
        labels = {**GATEWAY, "model": model, "kind": kind}
        self.gauge("llm_ratelimit_limit", labels, [(span, limit) for span, _ in phases])
        return self.gauge("llm_ratelimit_remaining", labels, [(span, share * limit) for span, share in phases])


    # ---------------------------------------------------------------- answer quality

    def quality(self, model: str, evaluator: str, phases: Sequence[tuple[Span, float, float]]) -> World:
        """llm_quality_score_count and _sum of one model and evaluator from phases of (duration, scored answers/s,
        their mean score). The rules read only the mean (sum over count), so the buckets are left out."""
        labels = {**GATEWAY, "model": model, "evaluator": evaluator}
        self.counter("llm_quality_score_count", labels, [(span, rate) for span, rate, _ in phases])
        return self.counter("llm_quality_score_sum", labels, [(span, rate * mean) for span, rate, mean in phases])

    def feedback(self, model: str, phases: Sequence[tuple[Span, float, float]]) -> World:
        """llm_feedback_total of one model from phases of (duration, ratings/s, share rated `down`)."""
        for rating in ("up", "down"):
            per_second = [(span, rate * (share if rating == "down" else 1 - share)) for span, rate, share in phases]
            self.counter("llm_feedback_total", {**GATEWAY, "model": model, "rating": rating}, per_second)
        return self

    # ---------------------------------------------------------------- targets

    def up_phases(self, phases: Mapping[str, Sequence[tuple[Span, float]]] = {}) -> World:
        """`up` of every scraped job (1) and of the lab exporters (0: no notebook runs), in phases where given."""
        for job, level in _up_levels().items():
            self.gauge("up", target(job), phases.get(job, [(self.seconds, level)]))
        return self

    def up(self, down: Mapping[str, Sequence[tuple[int, int]]] = {}) -> World:
        """`up` of every scraped job (1) and of the lab exporters (0: no notebook runs); `down` maps a job to
        (first second, seconds) periods it fails its scrapes. Written sample by sample."""
        step = self.interval.seconds
        for job, level in _up_levels().items():
            values = [level] * (self.seconds // step + 1)
            for start, seconds in down.get(job, ()):
                first, count = start // step, seconds // step
                values[first:first + count] = [0] * len(values[first:first + count])
            self.series.append(Explicit("up", target(job), tuple(float(v) for v in values)))
        return self

    def gap(self, job: str, start: int, seconds: int) -> World:
        """`job` fails its scrapes for `seconds` from `start`: `up` is 0 and its other series are stale then."""
        self.gaps.append((job, start, seconds))
        return self

    def end(self, name: str, at: int) -> World:
        """Series called `name` are exported until `at` (seconds), then vanish (a staleness marker, then nothing)."""
        self.ends[name] = at
        return self

    # ---------------------------------------------------------------- as promtool reads it

    @property
    def input(self) -> tuple[InputSeries, ...]:
        """The series for the model of alert_cases.py: refused if the world has gaps or vanishing series."""
        if self.gaps or self.ends or any(isinstance(s, Explicit) for s in self.series):
            raise CaseError("the alert-case model predicts neither scrape gaps, vanishing series nor "
                            "sample-by-sample series: build `up` with up_phases()")
        return tuple(s for s in self.series if isinstance(s, InputSeries))

    def input_series(self) -> list[dict[str, str]]:
        """promtool's input_series: each series in its expanding notation, or sample by sample where a gap or an
        end makes some samples stale."""
        step, rendered = self.interval.seconds, []
        for s in self.series:
            gaps = [(start // step, seconds // step) for job, start, seconds in self.gaps if s.labels.get("job") == job]
            end = self.ends.get(s.name)
            if not gaps and end is None:
                rendered.append(s.as_dict())
                continue
            values: list[str] = [number(v) for v in s.samples]
            for first, count in gaps:  # a failed scrape: `up` is 0, every other series of the target is stale
                missed = "0" if s.name == "up" else "stale"
                values[first:first + count] = [missed] * len(values[first:first + count])
            if end is not None:
                values = values[:end // step + 1] + ["stale"]
            rendered.append({"series": s.series, "values": " ".join(values)})
        return rendered


def _hand_overs(chain: Sequence[str], served: str) -> list[tuple[str, str, str]]:
    """(from_model, to_model, outcome) of each hand-over an answer from `served` took along `chain`: every model
    before it failed; the last hand-over, to `served`, succeeded."""
    position = chain.index(served)
    return [(chain[i], chain[i + 1], "success" if i + 1 == position else "error") for i in range(position)]


def _up_levels() -> dict[str, int]:
    return {**{job: 1 for job in SCRAPED_SERVICES}, **{job: 0 for job in lab_jobs()}}


@dataclass(frozen=True)
class Explicit:
    """A series written sample by sample (for `up` with outages)."""

    name: str
    labels: Mapping[str, str]
    samples: tuple[float, ...]

    @property
    def series(self) -> str:
        return selector(self.name, self.labels)

    def as_dict(self) -> dict[str, str]:
        return {"series": self.series, "values": " ".join(number(v) for v in self.samples)}
