"""The stack's recording rules (rules.py) and the queries its alert rules build on, evaluated in Python over one alert
case's input series (series.Timeline), so the expected values of the promtool unit tests are predicted, not copied
from promtool. Each alert's own expression is modelled beside its cases, in alert_cases.py."""

from __future__ import annotations

from typing import Callable, Sequence

from stack.profiles import Profile
from stack.prometheus.series import Labels, Timeline, Vector, bucket_quantile, labels_of, ratio, sum_by
from stack.prometheus.series import avg as avg_over_time


class Model:
    """The recording rules of rules.py (and the rates alert rules share) over one case's input."""

    def __init__(self, profile: Profile, timeline: Timeline) -> None:
        self.p, self.tl = profile, timeline
        self._memo: dict[tuple[str, int], Vector] = {}

    def _cached(self, name: str, t: int, compute: Callable[[int], Vector]) -> Vector:
        if (name, t) not in self._memo:
            self._memo[name, t] = compute(t)
        return self._memo[name, t]

    def sum_rate(self, by: Sequence[str], t: int, name: str, **matchers: str) -> Vector:
        window = self.p.rate_window
        return sum_by(by, ((s, self.tl.rate(s, t, window)) for s in self.tl.select(name, **matchers)))

    def requests(self, t: int) -> Vector:
        return self._cached("requests", t, lambda at: self.sum_rate(
            ("model",), at, "llm_requests_total", job="gateway"))

    def errors(self, t: int) -> Vector:
        return self._cached("errors", t, lambda at: self.sum_rate(
            ("model",), at, "llm_requests_total", job="gateway", status="error"))

    def error_ratio(self, t: int) -> Vector:
        requests = self.requests(t)
        return {model: ratio(errors, requests[model]) for model, errors in self.errors(t).items() if model in requests}

    def _p95_by_model(self, histogram: str, t: int) -> Vector:
        rates = self.sum_rate(("le", "model"), t, f"{histogram}_bucket", job="gateway")
        buckets: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in rates.items():
            label = dict(labels)
            buckets.setdefault(labels_of({"model": label["model"]}), []).append((float(label["le"]), value))
        return {model: bucket_quantile(0.95, sorted(pairs)) for model, pairs in buckets.items()}

    def p95(self, t: int) -> Vector:
        return self._p95_by_model("llm_request_duration_seconds", t)

    def streamed_requests(self, t: int) -> Vector:
        return self._cached("streamed", t, lambda at: self.sum_rate(
            ("model",), at, "llm_streamed_requests_total", job="gateway"))

    def time_to_first_token_p95(self, t: int) -> Vector:
        return self._p95_by_model("llm_time_to_first_token_seconds", t)

    def _cache_hits(self, t: int) -> Vector:
        return self.sum_rate(("job",), t, "llm_response_cache_hits_total", job="gateway")

    def cache_lookups(self, t: int) -> Vector:
        return self._cached("lookups", t, self._lookups)

    def _lookups(self, t: int) -> Vector:
        hits, misses = self._cache_hits(t), self.sum_rate(("job",), t, "llm_response_cache_misses_total", job="gateway")
        return {job: value + misses[job] for job, value in hits.items() if job in misses}

    def cache_hit_ratio(self, t: int) -> Vector:
        """All hits over all lookups, per job."""
        hits, lookups = self._cache_hits(t), self.cache_lookups(t)
        return {job: ratio(value, lookups[job]) for job, value in hits.items() if job in lookups}

    def routed(self, t: int) -> Vector:
        """requested_model:llm_routed_requests:rate."""
        return self._cached("routed", t, lambda at: self.sum_rate(
            ("requested_model",), at, "llm_routed_requests_total", job="gateway"))

    def fallback_ratio(self, t: int) -> Vector:
        """requested_model:llm_fallback_ratio:rate: answers another model served over all answers, per requested
        model; 0 (not absent) for a model nothing fell back from."""
        window = self.p.rate_window
        elsewhere = sum_by(("requested_model",), (
            (s, self.tl.rate(s, t, window)) for s in self.tl.select("llm_routed_requests_total", job="gateway")
            if s.labels["served_model"] != s.labels["requested_model"]))
        return {k: ratio(elsewhere[k] if k in elsewhere else 0 * v, v) for k, v in self.routed(t).items()}

    def cost_rate(self, t: int) -> Vector:
        return self._cached("cost", t, lambda at: self.sum_rate(("job",), at, "llm_cost_usd_total", job="gateway"))

    def cost_baseline(self, t: int) -> Vector:
        step, points = self.tl.interval.seconds, {}
        for at in range(max(0, t - self.p.baseline_window.seconds), t + 1, step):
            for labels, value in self.cost_rate(at).items():
                points.setdefault(labels, []).append(value)
        return {labels: avg_over_time(values) for labels, values in points.items()}



Evaluate = Callable[[Model, int], Vector]  # an alert expression at time t: its series and their values
