"""A small client for the Prometheus HTTP API of the running stack (used by tests, graders and scenarios)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from stack import topology


class PrometheusError(RuntimeError):
    """Prometheus answered with an error (a bad query) or could not be reached."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def _url() -> str:
    return topology.load().services["prometheus"].url


def _get(path: str, params: dict[str, str] | None = None, timeout: float = 5.0) -> dict:
    try:
        response = httpx.get(f"{_url()}{path}", params=params, timeout=timeout)
    except httpx.HTTPError as error:
        raise PrometheusError(f"cannot reach Prometheus at {_url()} ({error}); is the stack up (`make status`)?") \
            from error
    body = response.json()
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus rejected {params or path}: {body.get('error', response.text)}")
    return body["data"]


def query(expr: str) -> list[Sample]:
    """An instant query; each result's labels and value."""
    data = _get("/api/v1/query", {"query": expr})
    if data["resultType"] == "scalar":
        return [Sample({}, float(data["result"][1]))]
    return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]


def scalar(expr: str) -> float | None:
    """The value of a query expected to return one series, or None when it returns none."""
    samples = query(expr)
    return samples[0].value if samples else None


def alerts(state: str | None = None) -> list[dict]:
    """Alerts Prometheus holds (pending and firing), optionally only one state."""
    found = _get("/api/v1/alerts")["alerts"]
    return [a for a in found if state is None or a["state"] == state]


def reload() -> None:
    """Ask Prometheus to re-read its config and rules (it runs with --web.enable-lifecycle)."""
    try:
        response = httpx.post(f"{_url()}/-/reload", timeout=10)
    except httpx.HTTPError as error:
        raise PrometheusError(f"cannot reach Prometheus at {_url()} ({error})") from error
    if response.status_code != 200:
        raise PrometheusError(f"Prometheus refused to reload: {response.text.strip()}")
