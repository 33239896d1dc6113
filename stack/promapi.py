"""The one client for the Prometheus HTTP API (used by the stack's tools, tests, graders, scenarios and benchmarks).

    from stack import promapi
    promapi.scalar('sum(llm_requests_total{job="gateway"})')     # the running stack's Prometheus, one call
    with promapi.Prometheus() as prometheus:                      # many calls on one connection (or url=...)
        prometheus.range("up", start, end, step=15)

Errors: `QueryError` when Prometheus rejects a request (bad PromQL, bad parameters), `PrometheusUnreachable`
when it cannot be reached; both are `PrometheusError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from stack import topology

DEFAULT_TIMEOUT = 10.0


class PrometheusError(RuntimeError):
    """Prometheus answered with an error (a bad query) or could not be reached."""


class PrometheusUnreachable(PrometheusError):
    """No answer from Prometheus (not running, wrong port)."""


class QueryError(PrometheusError):
    """Prometheus rejected a request; `reason` is Prometheus' own error text."""

    def __init__(self, request: str, reason: str) -> None:
        super().__init__(f"Prometheus rejected {request}: {reason}")
        self.request = request
        self.reason = reason


@dataclass(frozen=True)
class Sample:
    """One series of an instant query: its labels and its value (NaN and ±Inf included)."""
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and its (unix time, value) points."""
    labels: dict[str, str]
    points: list[tuple[float, float]]


def stack_url() -> str:
    """The running stack's Prometheus (stack/topology.yaml, moved by LLMOBS_PORT_OFFSET)."""
    return topology.load().services["prometheus"].url


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _time(seconds: float) -> str:
    return f"{seconds:.3f}"


class Prometheus:
    """A connection to one Prometheus (by default the running stack's); close it, or use it as a context manager."""

    def __init__(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = (url or stack_url()).rstrip("/")
        self._client = httpx.Client(timeout=timeout)
        self._metric_names: set[str] | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------ queries

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query (at `at`, unix seconds, or now); each result's labels and value. A string result
        is no series: []."""
        params = {"query": expr} if at is None else {"query": expr, "time": _time(at)}
        data = self._request("POST", "/api/v1/query", params, expr)
        if data["resultType"] == "scalar":
            return [Sample({}, _float(data["result"][1]))]
        if data["resultType"] == "string":
            return []
        return [Sample(r["metric"], _float(r["value"][1])) for r in data["result"]]

    def scalar(self, expr: str) -> float | None:
        """The value of a query expected to return one series, or None when it returns none."""
        samples = self.query(expr)
        return samples[0].value if samples else None

    def range(self, expr: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """A range query from `start` to `end` every `step` seconds; each series' labels and points."""
        params = {"query": expr, "start": _time(start), "end": _time(end), "step": f"{max(step, 0.001):g}"}
        data = self._request("POST", "/api/v1/query_range", params, expr)
        return [RangeSeries(r["metric"], [(float(t), _float(v)) for t, v in r.get("values") or []])
                for r in data["result"]]

    def exemplars(self, expr: str, start: float, end: float) -> list[dict]:
        """Exemplars of the series `expr` selects between `start` and `end`: [{seriesLabels, exemplars}]."""
        params = {"query": expr, "start": _time(start), "end": _time(end)}
        return self._request("GET", "/api/v1/query_exemplars", params, expr)

    # ------------------------------------------------------------ metadata

    def label_values(self, label: str, match: str | None = None, start: float | None = None,
                     end: float | None = None) -> list[str]:
        """The values `label` takes (on the series `match` selects, between `start` and `end`), sorted."""
        params: dict[str, str] = {}
        if start is not None and end is not None:
            params.update(start=_time(start), end=_time(end))
        if match:
            params["match[]"] = match
        return sorted(self._request("GET", f"/api/v1/label/{label}/values", params, match or f"values of {label}"))

    def series(self, selector: str, start: float, end: float) -> list[dict[str, str]]:
        """The label sets of the series `selector` matches between `start` and `end`."""
        params = {"match[]": selector, "start": _time(start), "end": _time(end)}
        return self._request("GET", "/api/v1/series", params, selector)

    def metric_names(self) -> set[str]:
        """Every metric name Prometheus holds (read once per connection)."""
        if self._metric_names is None:
            self._metric_names = set(self.label_values("__name__"))
        return self._metric_names

    def alerts(self, state: str | None = None) -> list[dict]:
        """Alerts Prometheus holds (pending and firing), optionally only one state."""
        found = self._request("GET", "/api/v1/alerts", {}, "the alerts list")["alerts"]
        return [a for a in found if state is None or a["state"] == state]

    def targets(self, state: str = "active") -> list[dict]:
        """The scrape targets (`active` or `dropped`), each with its labels, health and lastError."""
        key = "activeTargets" if state == "active" else "droppedTargets"
        return self._request("GET", "/api/v1/targets", {"state": state}, "the targets list")[key]

    def config_yaml(self) -> str:
        """The configuration Prometheus runs with (YAML text)."""
        return self._request("GET", "/api/v1/status/config", {}, "its configuration")["yaml"]

    def reload(self) -> None:
        """Ask Prometheus to re-read its config and rules (it runs with --web.enable-lifecycle)."""
        response = self._send("POST", "/-/reload", {})
        if response.status_code != 200:
            raise QueryError("the reload", response.text.strip())

    # ------------------------------------------------------------ transport

    def _send(self, method: str, path: str, params: Mapping[str, str]) -> httpx.Response:
        try:
            if method == "POST":
                return self._client.post(f"{self.url}{path}", data=dict(params))
            return self._client.get(f"{self.url}{path}", params=dict(params))
        except httpx.HTTPError as error:
            raise PrometheusUnreachable(f"cannot reach Prometheus at {self.url} ({error}); is the stack up "
                                        "(`make status`, `make up`)?") from error

    def _request(self, method: str, path: str, params: Mapping[str, str], what: str) -> Any:
        response = self._send(method, path, params)
        try:
            body = response.json()
        except ValueError:
            raise QueryError(what, f"HTTP {response.status_code}: {response.text.strip()[:300]}") from None
        if body.get("status") != "success":
            raise QueryError(what, str(body.get("error") or response.text))
        return body["data"]


# ---------------------------------------------------------------- one call to the running stack's Prometheus


def query(expr: str) -> list[Sample]:
    """An instant query now; each result's labels and value."""
    with Prometheus(timeout=5.0) as prometheus:
        return prometheus.query(expr)


def scalar(expr: str) -> float | None:
    """The value of a query expected to return one series, or None when it returns none."""
    with Prometheus(timeout=5.0) as prometheus:
        return prometheus.scalar(expr)


def alerts(state: str | None = None) -> list[dict]:
    """Alerts Prometheus holds (pending and firing), optionally only one state."""
    with Prometheus(timeout=5.0) as prometheus:
        return prometheus.alerts(state)


def reload() -> None:
    """Ask Prometheus to re-read its config and rules (it runs with --web.enable-lifecycle)."""
    with Prometheus() as prometheus:
        prometheus.reload()
