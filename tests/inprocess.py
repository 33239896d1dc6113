"""The three services in the test process: a gateway whose provider is an in-process llmsim (no sockets), a receiver,
each with its data in a temporary folder; and what they have billed, counted and stored so far."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from stack import tracing
from stack.gateway import provider as provider_module
from stack.gateway.app import create_app as create_gateway
from stack.gateway.settings import Settings as GatewaySettings
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.settings import Settings as LlmsimSettings
from stack.receiver.app import create_app as create_receiver
from stack.web import CLIENT_KEEPALIVE_EXPIRY_SECONDS

LOOPBACK_CLIENT = ("127.0.0.1", 50000)


def metric_sum(registry: CollectorRegistry, family: str) -> float:
    """Sum of a counter family's `_total` samples, read from the registry (no scrape, no exposition)."""
    return sum(sample.value for metric in registry.collect() if metric.name == family
               for sample in metric.samples if sample.name == f"{family}_total")


@dataclass
class Stack:
    gateway: TestClient
    llmsim: TestClient
    receiver: TestClient
    data: Path

    def provider_calls(self) -> float:
        return metric_sum(self.llmsim.app.state.registry, "llmsim_requests")

    def billed(self) -> tuple[float, float, float]:
        """The gateway's call counter, its token counter and its cost counter."""
        registry = self.gateway.app.state.gateway.metrics.registry
        return (metric_sum(registry, "llm_requests"), metric_sum(registry, "llm_tokens"),
                metric_sum(registry, "llm_cost_usd"))

    def cache_hits(self) -> float:
        return metric_sum(self.gateway.app.state.gateway.metrics.registry, "llm_response_cache_hits")

    def answered(self) -> float:
        """Calls booked in the metrics: provider calls plus answers from the response cache (one row each)."""
        return self.billed()[0] + self.cache_hits()

    def rows(self) -> int:
        with sqlite3.connect(self.data / "gateway" / "attribution.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0])

    def notifications(self) -> int:
        with sqlite3.connect(self.data / "receiver" / "notifications.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM notifications").fetchone()[0])

    def side_effects(self) -> tuple[object, ...]:
        return (self.provider_calls(), self.billed(), self.cache_hits(), self.rows(), self.notifications())


def provider_in_process(monkeypatch: pytest.MonkeyPatch, llmsim: FastAPI) -> None:
    """The gateway's provider client talks to `llmsim` through ASGI instead of a socket."""

    def init(self: provider_module.ProviderClient, base_url: str, timeout: float) -> None:
        self._client = httpx.AsyncClient(base_url="http://llmsim.test", timeout=timeout,
                                         transport=httpx.ASGITransport(app=llmsim),
                                         limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY_SECONDS))

    monkeypatch.setattr(provider_module.ProviderClient, "__init__", init)


@contextmanager
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    llmsim_app = create_llmsim(LlmsimSettings(seed=7, latency_scale=0.0), tracing=tracing.setup("llmsim", enabled=False))
    provider_in_process(monkeypatch, llmsim_app)
    settings = GatewaySettings(provider_url="http://llmsim.test", provider_timeout_seconds=5,
                               data_dir=tmp_path / "gateway", instrumentation=True, user_hash_salt="test-salt")
    gateway_app = create_gateway(settings, tracing=tracing.setup("gateway", enabled=False))
    with (TestClient(gateway_app, client=LOOPBACK_CLIENT) as gateway,
          TestClient(llmsim_app, client=LOOPBACK_CLIENT) as llmsim,
          TestClient(create_receiver(data_dir=tmp_path / "receiver"), client=LOOPBACK_CLIENT) as receiver):
        yield Stack(gateway, llmsim, receiver, tmp_path)
