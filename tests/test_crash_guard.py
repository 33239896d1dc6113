"""An exception no handler expected: a JSON 500 with the request id, no traceback to the client, one log line, and the
keep-alive connection stays open for the client's next request (a real uvicorn server, one socket)."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from stack.receiver.app import create_app as create_receiver
from stack.receiver.store import NotificationStore
from tests import inprocess

ALERT = {"status": "firing", "receiver": "pager",
         "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2026-01-01T00:00:00Z"}]}


def _serve(app: FastAPI) -> Iterator[int]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (server.started and server.servers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def receiver_port(tmp_path: Path) -> Iterator[int]:
    yield from _serve(create_receiver(data_dir=tmp_path))


def _boom(*_: object, **__: object) -> int:
    raise RuntimeError("disk on fire\nsecond line")


def test_an_unexpected_exception_answers_json_and_keeps_the_connection(
        receiver_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(NotificationStore, "add", _boom)
    connection = http.client.HTTPConnection("127.0.0.1", receiver_port, timeout=10)
    with caplog.at_level(logging.INFO):
        connection.request("POST", "/hook/pager", body=json.dumps(ALERT), headers={"Content-Type": "application/json"})
        failed = connection.getresponse()
        body = json.loads(failed.read())
    socket = connection.sock
    assert failed.status == 500 and failed.getheader("connection") != "close"
    request_id = body["error"]["request_id"]
    assert failed.getheader("x-request-id") == request_id
    assert "Traceback" not in json.dumps(body) and "disk on fire" not in json.dumps(body)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and request_id in errors[0] and "\n" not in errors[0], errors
    assert "RuntimeError" in errors[0] and "Traceback" not in caplog.text

    connection.request("GET", "/health")  # the same socket: the server did not close it
    again = connection.getresponse()
    assert again.status == 200 and json.loads(again.read()) == {"status": "ok"}
    assert socket is not None and connection.sock is socket


def test_a_gateway_crash_is_answered_with_the_request_id_of_its_log_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        monkeypatch.setattr("stack.gateway.app.require_model", _boom)
        with caplog.at_level(logging.INFO):
            response = services.gateway.post("/v1/chat/completions", json={
                "model": "sim-fast", "messages": [{"role": "user", "content": "hi"}],
                "attribution": {"user_id": "u", "department": "support", "application": "chatbot"}})
        assert response.status_code == 500
        request_id = response.json()["error"]["request_id"]
        assert [r for r in caplog.records if request_id in r.getMessage()]
        assert services.gateway.get("/health").status_code == 200
        assert services.provider_calls() == 0 and services.rows() == 0
