"""Run the locustfile in a child process for a bounded time and read its report back (used by the CLI and bench).

Locust runs as `python -m locust` in its own process (it monkey-patches the standard library with gevent, which
must not happen in a process that also runs pytest, httpx or rich). The child gets `--run-time` and is also
stopped by this process when a hard deadline passes, so a run can never outlive `duration` by more than the
stop grace. Reports go to one folder, overwritten by each run:

    <out>/load_stats.csv, load_stats_history.csv, load_failures.csv, load_exceptions.csv  (locust --csv)
    <out>/load_cache.csv                                             (X-Cache counts, by the locustfile)
    <out>/load_report.html                                                               (locust --html)
    <out>/locust.log                                                                      (locust's output)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from stack import topology
from stack.loadgen import report, target
from stack.loadgen.workload import Mix
from stack.paths import REPO_ROOT
from stack.runner import processes

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_OUT = REPO_ROOT / "build" / "load"
CSV_PREFIX = "load"
HTML_NAME = "load_report.html"
LOG_NAME = "locust.log"

DEFAULT_USERS = 10
DEFAULT_DURATION_SECONDS = 60
DEFAULT_UI_DURATION_SECONDS = 600
MAX_DURATION_SECONDS = 3600          # hard maximum of one run, web UI included
MAX_USERS = 1000
MAX_RATE = 5000.0                    # requests/s; one locust process sustains far less anyway
STOP_TIMEOUT_SECONDS = 10            # users finish the request under way when the run time is over
STARTUP_GRACE_SECONDS = 30           # locust import and start-up, before its own run timer starts
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


class LoadError(RuntimeError):
    """The run cannot start (bad arguments, stack down, port busy) or locust failed without a report."""


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '5m' or '1h'."""
    match = _DURATION.match(str(text))
    if not match:
        raise LoadError(f"duration {text!r} is not a number of seconds (e.g. 60, 90s, 5m)")
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]


@dataclass(frozen=True)
class LoadSettings:
    users: int = DEFAULT_USERS
    spawn_rate: float | None = None            # users started per second; default: all within ~2 s
    rate: float | None = None                  # requests/s of the whole run; None: each user waits `wait`
    wait: tuple[float, float] = (1.0, 3.0)     # seconds each user thinks between requests
    duration: float | None = None              # seconds; default 60 headless, 600 with the web UI
    seed: int = Mix.seed
    workflow_share: float = Mix.workflow_share
    host: str | None = None                    # default: the gateway in stack/topology.yaml
    ui: bool = False
    out: Path = DEFAULT_OUT

    @property
    def target(self) -> str:
        return self.host or target.default_host()

    @property
    def seconds(self) -> float:
        if self.duration is not None:
            return self.duration
        return DEFAULT_UI_DURATION_SECONDS if self.ui else DEFAULT_DURATION_SECONDS

    @property
    def users_per_second(self) -> float:
        return self.spawn_rate if self.spawn_rate is not None else max(1.0, self.users / 2)


def validate(settings: LoadSettings) -> str:
    """Check every argument before anything starts; return the target URL. Raises LoadError or TargetError."""
    if not 1 <= settings.users <= MAX_USERS:
        raise LoadError(f"--users must be between 1 and {MAX_USERS} (got {settings.users})")
    if settings.spawn_rate is not None and not settings.spawn_rate > 0:
        raise LoadError(f"--spawn-rate must be more than 0 users/s (got {settings.spawn_rate:g})")
    if not 1 <= settings.seconds <= MAX_DURATION_SECONDS:
        raise LoadError(f"--duration must be between 1 s and the hard maximum of {MAX_DURATION_SECONDS} s "
                        f"({MAX_DURATION_SECONDS // 60} min); got {settings.seconds:g} s")
    if settings.rate is not None and not 0 < settings.rate <= MAX_RATE:
        raise LoadError(f"--rate must be more than 0 and at most {MAX_RATE:g} requests/s (got {settings.rate:g})")
    low, high = settings.wait
    if not 0 <= low <= high <= 600:
        raise LoadError(f"--wait must be MIN:MAX seconds with 0 <= MIN <= MAX <= 600 (got {low:g}:{high:g})")
    if not 0 <= settings.workflow_share <= 1:
        raise LoadError(f"--workflow-share must be between 0 and 1 (got {settings.workflow_share:g})")
    return target.check_loopback(settings.target)


def ui_service() -> topology.Service:
    return topology.load().workbench["locust"]


def preflight(url: str, ui: bool) -> None:
    """The gateway answers and, for the web UI, its port is free; clear errors otherwise."""
    try:
        response = httpx.get(f"{url}/health", timeout=3)
    except httpx.HTTPError as error:
        raise LoadError(f"cannot reach the gateway at {url} ({type(error).__name__}). Is the stack up? "
                        "Start it with `make up`; `make status` shows each component.") from None
    if response.status_code != 200:
        raise LoadError(f"the gateway at {url} is not healthy (GET /health answered {response.status_code}); "
                        "see `make status` and `make logs SERVICE=gateway`")
    if ui:
        service = ui_service()
        if processes.port_in_use(service.host, service.port):
            raise LoadError(f"port {service.port} for the locust web UI is in use (another `make load UI=1`?); "
                            f"the port is set in stack/topology.yaml under workbench: locust")


@dataclass
class LoadResult:
    settings: LoadSettings
    url: str
    exit_code: int                     # locust's: 0 no failures, 1 some requests failed
    elapsed_seconds: float
    out: Path
    report: report.Report | None = None
    stopped_early: bool = False        # interrupted (Ctrl+C) or stopped at the hard deadline
    interrupted: bool = False          # Ctrl+C
    files: list[Path] = field(default_factory=list)

    @property
    def csv_prefix(self) -> Path:
        return self.out / CSV_PREFIX

    @property
    def html(self) -> Path:
        return self.out / HTML_NAME

    @property
    def log(self) -> Path:
        return self.out / LOG_NAME


def locust_argv(settings: LoadSettings, url: str) -> list[str]:
    out = settings.out
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url,
            "-u", str(settings.users), "-r", f"{settings.users_per_second:g}",
            "--csv", str(out / CSV_PREFIX), "--html", str(out / HTML_NAME),
            "--stop-timeout", str(STOP_TIMEOUT_SECONDS), "--only-summary",
            "--llmobs-seed", str(settings.seed), "--llmobs-workflow-share", f"{settings.workflow_share:g}",
            "--llmobs-rate", f"{settings.rate or 0:g}",
            "--llmobs-wait-min", f"{settings.wait[0]:g}", "--llmobs-wait-max", f"{settings.wait[1]:g}"]
    if settings.ui:
        service = ui_service()
        argv += ["--web-host", service.host, "--web-port", str(service.port)]
    else:
        argv += ["--headless", "--run-time", f"{max(1, round(settings.seconds))}s"]
    return argv


def _clear_previous(out: Path) -> None:
    for path in out.glob(f"{CSV_PREFIX}_*.csv"):
        path.unlink()
    for name in (HTML_NAME, LOG_NAME):
        (out / name).unlink(missing_ok=True)


def live_totals(out: Path) -> tuple[int, int] | None:
    """(requests, failures) so far, from the stats CSV locust rewrites every second."""
    try:
        total = report.read(out / CSV_PREFIX).total
    except (OSError, KeyError, ValueError):
        return None
    return total.requests, total.failures


def _stop(child: subprocess.Popen, grace: float, ui: bool) -> None:
    """Stop the users (web UI: through its /stop, so requests under way finish and count), then SIGINT (locust
    writes its HTML report and final CSV), then SIGKILL after `grace` seconds."""
    if ui and child.poll() is None:
        try:
            httpx.post(f"{ui_service().url}/stop", timeout=STOP_TIMEOUT_SECONDS + 5)
        except httpx.HTTPError:
            pass
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def run(settings: LoadSettings, progress: Callable[[str], None] | None = None) -> LoadResult:
    """Validate, check the stack, run locust until its run time or the hard deadline, and read the report."""
    try:
        url = validate(settings)
    except target.TargetError as error:
        raise LoadError(str(error)) from None
    preflight(url, settings.ui)
    out = settings.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    settings = replace(settings, out=out)
    # Headless: locust stops itself after --run-time; the deadline only catches a hung child.
    # Web UI: the deadline is the run time (the UI has no run timer of its own unless one is typed in).
    deadline_seconds = settings.seconds + (0 if settings.ui else STOP_TIMEOUT_SECONDS + STARTUP_GRACE_SECONDS)
    started = time.monotonic()
    stopped_early = interrupted = False
    with (out / LOG_NAME).open("wb") as log:
        child = subprocess.Popen(locust_argv(settings, url), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            while child.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > deadline_seconds:
                    stopped_early = not settings.ui
                    _stop(child, STOP_TIMEOUT_SECONDS + 10, settings.ui)
                    break
                if progress:
                    totals = live_totals(out)
                    so_far = f" · {totals[0]} requests, {totals[1]} failed" if totals else ""
                    progress(f"{min(elapsed, settings.seconds):.0f} s of {settings.seconds:.0f} s{so_far}")
                time.sleep(0.5)
        except KeyboardInterrupt:
            stopped_early = interrupted = True
            _stop(child, STOP_TIMEOUT_SECONDS + 10, settings.ui)
        finally:
            if child.poll() is None:  # never leave locust running
                child.kill()
                child.wait(timeout=10)
    elapsed = time.monotonic() - started
    result = LoadResult(settings, url, child.returncode, elapsed, out, stopped_early=stopped_early,
                        interrupted=interrupted)
    result.files = sorted(p for p in out.iterdir() if p.is_file())
    stats = out / f"{CSV_PREFIX}_stats.csv"
    if not stats.exists():
        tail = "\n".join((out / LOG_NAME).read_text(errors="replace").splitlines()[-15:])
        raise LoadError(f"locust exited (code {child.returncode}) without writing {stats}; its log "
                        f"{out / LOG_NAME} ends with:\n{tail}")
    result.report = report.read(out / CSV_PREFIX)
    return result
