"""up / down / status of the embedded stack, used by the CLI, the tests and the graders."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from stack import topology, tracing
from stack.runner import health, processes
from stack.runner.services import (PHOENIX_INSTALL_HINT, TRACE_BACKEND, TRACE_STORE, TRACED_SERVICES, ServiceSpec,
                                   child_env, phoenix_python, specs)
from stack.tracestore.store import MAX_SPANS

STATE_FILE = "stack.json"
SERVICE_START_TIMEOUT = 30.0
TARGETS_UP_TIMEOUT = 45.0


class StackError(RuntimeError):
    """Something the user can act on; the message says what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    description: str
    pid: int | None
    healthy: bool


def _log_tail(run: Path, name: str, lines: int = 15) -> str:
    path = processes.log_file(run, name)
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _state(run: Path) -> dict:
    try:
        return json.loads((run / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def running_profile(run: Path) -> str | None:
    return _state(run).get("profile")


def _with_notebooks(run: Path) -> bool:
    return bool(_state(run).get("notebooks", True))


def _with_traces(run: Path) -> bool:
    return bool(_state(run).get("traces", False))


def trace_endpoint(run: Path) -> str | None:
    """Where the running stack's services send their spans (None: nowhere), as recorded by `up`."""
    return _state(run).get("trace_endpoint")


def _exporter_endpoint(spec: ServiceSpec) -> str | None:
    return tracing.exporter_endpoint(child_env(spec))


def _exporter_settings(run: Path, running: bool) -> dict[str, str]:
    """OTEL_* variables of this `up`, or, when they are unset and the stack runs, those it was started with (so a
    service restarted by a test, a scenario or a second `make up` exports where its siblings do)."""
    given = {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}
    if given or not running:
        return given
    return dict(_state(run).get("otel") or {})


def up(profile: str, run: Path, on_progress: Callable[[str], None] = lambda _: None,
       notebooks: bool = True, traces: bool = False) -> list[ServiceStatus]:
    """Start what is not running yet (JupyterLab too unless notebooks=False, Phoenix when traces=True), wait until
    all is healthy. Asking for traces on a running stack starts Phoenix and restarts the traced services."""
    run.mkdir(parents=True, exist_ok=True)
    current = running_profile(run)
    notebooks = notebooks or (current is not None and _with_notebooks(run))
    traces = traces or (current is not None and _with_traces(run))
    exporter_settings = _exporter_settings(run, current is not None)
    for name, value in exporter_settings.items():  # a restart keeps the OTEL_* settings the stack started with
        os.environ.setdefault(name, value)
    wanted = specs(profile, run, notebooks, traces)
    if current and current != profile and any(processes.running_pid(run, s.name) for s in wanted):
        raise StackError(f"the stack is running with the {current!r} profile; run `make down` first, "
                         f"then `make up PROFILE={profile}`")
    if traces:
        python = phoenix_python()
        if python is None:
            raise StackError(f"the trace backend (Phoenix) is not installed: {PHOENIX_INSTALL_HINT}")
        wanted = [replace(s, argv=[python, *s.argv[1:]]) if s.name == TRACE_BACKEND else s for s in wanted]
    endpoint = next((_exporter_endpoint(s) for s in wanted if s.name in TRACED_SERVICES), None)
    if current and traces and not _with_traces(run):
        for spec in wanted:  # Phoenix joins a running stack: restart the traced services so they export to it
            if spec.name in TRACED_SERVICES and processes.stop(run, spec.name):
                on_progress(f"restarting {spec.name} to send its spans to {endpoint or 'nowhere'}")
    traced_started = False
    for spec in wanted:
        if processes.running_pid(run, spec.name):
            on_progress(f"{spec.name} already running")
            continue
        service = topology.load()[spec.name]
        if processes.port_in_use(service.host, service.port):
            raise StackError(
                f"port {service.port} ({spec.name}) is in use by a process this run folder ({run}) did not start. "
                f"Stop it (e.g. `make down` in the checkout that started it, or `ss -ltnp | grep {service.port}`) "
                "or change the port in stack/topology.yaml and run `make generate`."
            )
        processes.start(spec, run)
        traced_started = traced_started or spec.name in TRACED_SERVICES
        on_progress(f"started {spec.name}")
    if current and not traced_started:
        endpoint = trace_endpoint(run)  # the traced services kept running with the exporter they started with
    (run / STATE_FILE).write_text(json.dumps({"profile": profile, "notebooks": notebooks, "traces": traces,
                                              "trace_endpoint": endpoint, "otel": exporter_settings,
                                              "started_at": time.time()}))
    for spec in wanted:
        _wait_healthy(spec, run)
        on_progress(f"{spec.name} healthy")
    on_progress("waiting for Prometheus to scrape every target (its first scrape takes ~5 s)")
    if not health.wait_until(health.all_targets_up, TARGETS_UP_TIMEOUT, interval=0.2):
        down_targets = [t for t in health.scrape_targets() if t.health != "up"]
        details = "; ".join(f"{t.job} ({t.instance}): {t.health} {t.last_error}" for t in down_targets)
        raise StackError(f"Prometheus does not see every target up after {TARGETS_UP_TIMEOUT:.0f}s: {details}. "
                         f"Logs are in {run / 'logs'}.")
    on_progress("every Prometheus target is up")
    return status(profile, run, notebooks, traces)


def _wait_healthy(spec: ServiceSpec, run: Path) -> None:
    def ready() -> bool:
        if processes.running_pid(run, spec.name) is None:
            raise StackError(f"{spec.name} exited during start-up. Last lines of "
                             f"{processes.log_file(run, spec.name)}:\n{_log_tail(run, spec.name)}")
        return health.healthy(spec.health_url)

    timeout = max(SERVICE_START_TIMEOUT, spec.start_timeout)
    if not health.wait_until(ready, timeout):
        raise StackError(f"{spec.name} did not become healthy at {spec.health_url} within "
                         f"{timeout:.0f}s. Last lines of its log:\n{_log_tail(run, spec.name)}")


def down(run: Path, on_progress: Callable[[str], None] = lambda _: None) -> list[str]:
    profile = running_profile(run) or "classroom"
    stopped = []
    for spec in reversed(specs(profile, run, notebooks=True, traces=True)):
        if processes.stop(run, spec.name):
            stopped.append(spec.name)
            on_progress(f"stopped {spec.name}")
    (run / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(profile: str | None, run: Path, notebooks: bool | None = None,
           traces: bool | None = None) -> list[ServiceStatus]:
    profile = profile or running_profile(run) or "classroom"
    notebooks = _with_notebooks(run) if notebooks is None else notebooks
    traces = _with_traces(run) if traces is None else traces
    return [
        ServiceStatus(spec.name, spec.url, spec.description, processes.running_pid(run, spec.name),
                      health.healthy(spec.health_url, timeout=0.5))
        for spec in specs(profile, run, notebooks, traces)
    ]


def traces_note(run: Path) -> str:
    """One sentence for `make up` / `make status`: where the spans of the running stack go."""
    if running_profile(run) is None:
        return "Traces: the stack is not running."
    endpoint = trace_endpoint(run)
    backend = topology.load().optional[TRACE_BACKEND]
    store = topology.load().services[TRACE_STORE]
    if _with_traces(run) and endpoint and endpoint.startswith(backend.url):
        return f"Traces: sent to Phoenix; open {backend.url} (project llmobs) to see them."
    if endpoint and endpoint.startswith(store.url):
        return (f"Traces: kept by the built-in trace store (the most recent {MAX_SPANS} spans): {store.url}/api/traces "
                "lists them; `make up TRACES=1` sends them to the Phoenix UI instead.")
    if endpoint:
        return f"Traces: sent over OTLP/HTTP to {endpoint} (your OTEL_EXPORTER_OTLP_* setting)."
    return ("Traces: no trace backend is running. Requests still get trace ids (in log lines and exemplars) but no "
            "span is kept; `make up TRACES=1` starts Phoenix, or see docs/tracing.md to use Jaeger or Tempo.")
