"""Benchmarks on the embedded stack itself: `make up` time, alert latency, resident memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack import profiles, promapi, topology
from stack.paths import REPO_ROOT
from stack.runner import control, processes
from stack.traffic import SteadyTraffic

STARTS = 3
ALERT_RUNS = 3
ALERT_TIMEOUT_SECONDS = 90


@dataclass(frozen=True)
class StackNumbers:
    start_seconds: list[float]
    alert_seconds: list[float]
    alert_for_seconds: int
    rss_mib: dict[str, float]
    extras: dict[str, object]

    @property
    def stack_rss_mib(self) -> dict[str, float]:
        """The monitored system and its monitoring, without the JupyterLab workbench."""
        return {name: mib for name, mib in self.rss_mib.items() if name != "jupyter"}

    @property
    def rss_total_mib(self) -> float:
        return sum(self.stack_rss_mib.values())


def _make(target: str, run: Path) -> None:
    subprocess.run(["make", "--no-print-directory", target], cwd=REPO_ROOT, check=True, capture_output=True,
                   env={**os.environ, "LLMOBS_RUN_DIR": str(run)})


def _ports_free() -> None:
    busy = [s.name for s in topology.load().services.values() if processes.port_in_use(s.host, s.port)]
    if busy:
        raise SystemExit(f"the stack's ports are in use ({', '.join(busy)}); run `make down` before `make bench`")


def _timed_start(run: Path) -> float:
    started = time.monotonic()
    _make("up", run)
    return time.monotonic() - started


def rss_mib(run: Path) -> dict[str, float]:
    result = {}
    for status in control.status(None, run):
        if status.pid:
            for line in Path(f"/proc/{status.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    result[status.name] = int(line.split()[1]) / 1024
    return result


def _wait(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _receiver(path: str, **params: str) -> list[dict]:
    return httpx.get(topology.load().services["receiver"].url + path, params=params, timeout=5).json()[
        "notifications"]


def alert_latency(progress: Callable[[str], None]) -> float:
    """Seconds from injecting provider errors to the pager notification, under steady traffic."""
    llmsim = topology.load().services["llmsim"].url
    receiver = topology.load().services["receiver"].url
    httpx.delete(f"{llmsim}/faults", timeout=5)
    with SteadyTraffic("sim-fast", rate=4, max_requests=1000, max_seconds=240):
        rate = 'model:llm_requests:rate{model="sim-fast"}'
        _wait(lambda: (promapi.scalar(rate) or 0) >= 3, 60)
        _wait(lambda: not [a for a in promapi.alerts() if a["labels"]["alertname"] == "LLMHighErrorRatio"], 90)
        httpx.delete(f"{receiver}/api/notifications", timeout=5)
        injected = time.monotonic()
        httpx.post(f"{llmsim}/faults", json={"error_rate": 0.6, "models": ["sim-fast"], "duration_seconds": 120},
                   timeout=5)
        arrived = _wait(lambda: _receiver("/api/notifications", channel="pager", alertname="LLMHighErrorRatio",
                                          status="firing"), ALERT_TIMEOUT_SECONDS)
        latency = time.monotonic() - injected
        httpx.delete(f"{llmsim}/faults", timeout=5)
        # Close the incident before the next run: until its "resolved" is sent, Alertmanager keeps the group, and
        # a new alert in a live group waits for group_interval instead of group_wait.
        _wait(lambda: _receiver("/api/notifications", channel="pager", alertname="LLMHighErrorRatio",
                                status="resolved"), 90)
    if not arrived:
        raise RuntimeError(f"no pager notification within {ALERT_TIMEOUT_SECONDS}s of injecting errors")
    progress(f"alert latency {latency:.1f}s")
    return latency


def measure(progress: Callable[[str], None] = print,
            on_running_stack: dict[str, Callable[[Callable[[str], None]], object]] | None = None) -> StackNumbers:
    """Start-up, alert latency and memory of a fresh stack; `on_running_stack` benchmarks run on it too."""
    _ports_free()
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-run-") as tmp:
        run = Path(tmp)
        os.environ["LLMOBS_RUN_DIR"] = str(run)
        starts = []
        try:
            for attempt in range(1, STARTS + 1):
                if attempt > 1:
                    _make("down", run)
                starts.append(_timed_start(run))
                progress(f"make up {attempt}/{STARTS}: {starts[-1]:.1f}s")
            alerts = [alert_latency(progress) for _ in range(ALERT_RUNS)]
            memory = rss_mib(run)  # before the extras: the cardinality scenario and the load test grow Prometheus
            extras = {name: bench(progress) for name, bench in (on_running_stack or {}).items()}
        finally:
            _make("down", run)
    for_seconds = profiles.load("classroom").for_("LLMHighErrorRatio").seconds
    return StackNumbers(starts, alerts, for_seconds, memory, extras)


def median(values: list[float]) -> float:
    return statistics.median(values)
