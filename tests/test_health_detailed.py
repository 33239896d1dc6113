"""GET /health/detailed in-process: all ok -> 200; a hanging provider -> down/503 within 2 s; a read-only store -> down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stack import catalog, tracing
from stack.gateway.app import create_app
from stack.gateway.settings import Settings
from tests import inprocess
from tests.inprocess import LOOPBACK_CLIENT


def test_all_dependencies_ok_is_200_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with inprocess.stack(tmp_path, monkeypatch) as stack:
        response = stack.gateway.get("/health/detailed")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {f"provider:{m}" for m in catalog.load().model_names} | {"store", "trace_exporter", "cache"}
    assert all(c["status"] == "ok" and c["detail"] for c in body["checks"].values())
    assert body["checks"]["store"]["rows"] == 0
    assert "latency_ms" in body["checks"]["provider:sim-fast"]


def test_a_hanging_provider_is_down_with_503_within_2_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging = FastAPI()

    @hanging.get("/health")
    async def never() -> dict:
        await asyncio.sleep(30)
        return {"status": "ok"}

    inprocess.provider_in_process(monkeypatch, hanging)
    settings = Settings(provider_url="http://llmsim.test", provider_timeout_seconds=60, data_dir=tmp_path,
                        instrumentation=True, user_hash_salt="s")
    with TestClient(create_app(settings, tracing=tracing.setup("gateway", enabled=False)),
                    client=LOOPBACK_CLIENT) as gateway:
        started = time.monotonic()
        response = gateway.get("/health/detailed")
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "down"
    providers = [c for name, c in body["checks"].items() if name.startswith("provider:")]
    assert providers and all(c["status"] == "down" and "1.5 s" in c["detail"] for c in providers), providers
    assert body["checks"]["store"]["status"] == "ok"


def test_a_read_only_store_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with inprocess.stack(tmp_path, monkeypatch) as stack:
        stack.gateway.app.state.gateway.store._db.execute("PRAGMA query_only=ON")  # as tests/test_booking.py does
        response = stack.gateway.get("/health/detailed")
        stack.gateway.app.state.gateway.store._db.execute("PRAGMA query_only=OFF")
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "down"
        assert response.json()["checks"]["store"]["status"] == "down"
        assert stack.gateway.get("/health/detailed").json()["status"] == "ok"


def test_one_failing_model_is_degraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}],
            "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}
    with inprocess.stack(tmp_path, monkeypatch) as stack:
        stack.llmsim.post("/faults", json={"error_rate": 1.0, "models": ["sim-fast"]})
        for _ in range(5):
            assert stack.gateway.post("/v1/chat/completions", json=body).status_code == 502
        response = stack.gateway.get("/health/detailed")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["provider:sim-fast"]["status"] == "down"
    assert response.json()["checks"]["store"]["rows"] == 5
