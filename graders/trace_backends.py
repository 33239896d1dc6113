"""The trace backends a stack check can ask for one trace's spans: the built-in trace store (`make up`) and Phoenix
(`make up TRACES=1`), the one the running stack sends its spans to first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack import topology, tracing
from stack.runner import control
from stack.runner.services import TRACE_BACKEND, TRACE_STORE


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    span_id: str
    parent_id: str | None


@dataclass(frozen=True)
class Backend:
    label: str  # "the built-in trace store at http://…", for messages
    service: topology.Service
    fetch: Callable[[topology.Service, str], list[Span]]

    def up(self) -> bool:
        try:
            return httpx.get(self.service.url + self.service.health, timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def receives(self, endpoint: str | None) -> bool:
        return bool(endpoint) and endpoint.startswith(self.service.url)  # type: ignore[union-attr]


def _store_spans(service: topology.Service, trace_id: str) -> list[Span]:
    response = httpx.get(f"{service.url}/api/traces/{trace_id}", timeout=10)
    if response.status_code == 404:  # no span of that trace (yet)
        return []
    response.raise_for_status()
    return [Span(s["service"], s["name"], s["span_id"], s.get("parent_id")) for s in response.json()["spans"]]


def _phoenix_spans(service: topology.Service, trace_id: str) -> list[Span]:
    response = httpx.get(f"{service.url}/v1/projects/{tracing.PHOENIX_PROJECT}/spans", timeout=10,
                         params={"trace_id": trace_id, "limit": 1000})
    if response.status_code == 404:  # the project appears with its first span
        return []
    response.raise_for_status()
    return [Span(str(s.get("attributes", {}).get("service.name")), str(s.get("name", "")),
                 s["context"]["span_id"], s.get("parent_id")) for s in response.json().get("data") or []]


def known() -> list[Backend]:
    stack = topology.load()
    store, phoenix = stack.services[TRACE_STORE], stack.optional[TRACE_BACKEND]
    return [Backend(f"the built-in trace store at {store.url}", store, _store_spans),
            Backend(f"Phoenix at {phoenix.url}", phoenix, _phoenix_spans)]


def sends_to(run: Path) -> str | None:
    """The OTLP/HTTP URL the running stack's services export to (None: nowhere, or no stack runs)."""
    return control.trace_endpoint(run)


def to_ask(endpoint: str | None) -> list[Backend]:
    """The backend `endpoint` points at first, then the others that answer (a stack exporting elsewhere, e.g. to
    your own collector, may still forward to one of them)."""
    backends = known()
    chosen = [b for b in backends if b.receives(endpoint)]
    return chosen + [b for b in backends if b not in chosen and b.up()]


def hint(endpoint: str | None) -> str:
    """What to do when no backend holds a trace, given where the running stack sends its spans."""
    if endpoint is None:
        return ("the running stack sends its spans nowhere (OTEL_TRACES_EXPORTER=none, or started before it had a "
                "trace store): run `make down`, then `make up`")
    if not any(b.receives(endpoint) for b in known()):
        return (f"the running stack sends its spans to {endpoint} (your OTEL_EXPORTER_OTLP_* setting), which this "
                "check cannot ask: unset it, run `make down`, then `make up`")
    return "spans arrive about a second after the request; re-run the exercise 3 batch cell and grade again"
