"""Steady, bounded chat traffic to the gateway: a few requests per second for tests, demos and scenarios.

Only ever sends to the gateway address in stack/topology.yaml (127.0.0.1); stops after `max_requests` or
`max_seconds`, whichever comes first, or when stopped.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from stack import topology


@dataclass
class TrafficResult:
    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0


def chat_body(model: str, user_id: str, department: str = "engineering", application: str = "chatbot",
              prompt: str = "Summarise the incident report in two sentences.") -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "attribution": {"user_id": user_id, "department": department, "application": application},
        "synthetic": True,
    }


class SteadyTraffic:
    """Sends `rate` chat requests per second from a background thread, each on its own short-lived thread so a
    slow provider does not lower the rate."""

    def __init__(self, model: str, rate: float, max_requests: int = 2000, max_seconds: float = 300.0,
                 department: str = "engineering") -> None:
        if rate <= 0 or rate > 50:
            raise ValueError("rate must be in (0, 50] requests per second")
        self.model, self.rate, self.department = model, rate, department
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.result = TrafficResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"traffic-{model}", daemon=True)
        self._url = topology.load().services["gateway"].url + "/v1/chat/completions"
        self._client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def __enter__(self) -> SteadyTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=35)
        self._client.close()

    def _send(self, number: int) -> None:
        try:
            status = self._client.post(self._url, json=chat_body(self.model, f"traffic-{number % 50}",
                                                                 self.department)).status_code
            with self._lock:
                self.result.by_status[status] += 1
        except httpx.HTTPError:
            with self._lock:
                self.result.transport_errors += 1

    def _run(self) -> None:
        started = time.monotonic()
        workers: list[threading.Thread] = []
        for number in itertools.count():
            if self._stop.is_set() or number >= self.max_requests or time.monotonic() - started > self.max_seconds:
                break
            worker = threading.Thread(target=self._send, args=(number,), daemon=True)
            worker.start()
            workers.append(worker)
            self.result.sent += 1
            self._stop.wait(1 / self.rate)
        for worker in workers:
            worker.join(timeout=30)
