"""How much load one locust process (stack/loadgen, the `make load` traffic mix) sustains against the gateway, and
the gateway's p95 at that load, seen from both sides: locust's client-side percentiles and Prometheus'
histogram_quantile over the gateway's llm_request_duration_seconds.

The load is stepped up (more users, no think time) until throughput stops growing; each step runs for a fixed time
and records requests/s, failures, locust's p50/p95, Prometheus' p95 over the same window, and the CPU share of the
locust process and of the gateway process (which of the two is the bottleneck).

    measure()                      starts its own classroom stack (no JupyterLab) in a temp run folder, stops it
    measure_running_stack()        uses the stack that is already up (LLMOBS_PORT_OFFSET / LLMOBS_RUN_DIR)

Both return LoadgenNumbers; nothing is written to docs/.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stack import promapi, topology
from stack.loadgen import run as loadgen
from stack.loadgen.workload import CHAT_PATH
from stack.paths import REPO_ROOT, run_dir
from stack.runner import processes

USER_STEPS = (16, 48, 96, 160)
STEP_SECONDS = 15
SETTLE_SECONDS = 2.5           # after a step: let Prometheus (1 s scrapes in classroom) take the last samples
WINDOW_MARGIN_SECONDS = 3      # Prometheus window = step time minus this, so it does not reach into the ramp-up
PLATEAU_GAIN = 1.05            # stop stepping up when a step adds less than 5% requests/s
P95_QUERY = ("histogram_quantile(0.95, sum by (le) "
             "(increase(llm_request_duration_seconds_bucket{{job=\"gateway\"}}[{window}s])))")


@dataclass(frozen=True)
class Step:
    users: int
    seconds: float
    requests: int
    failures: int
    requests_per_second: float
    locust_p50_ms: float | None
    locust_p95_ms: float | None            # every request (a workflow is one request of three provider calls)
    locust_chat_p95_ms: float | None       # chat completions only: one provider call each
    prometheus_p95_ms: float | None        # provider calls as the gateway times them (histogram buckets)
    locust_cpu: float                      # CPU seconds per second: 1.0 = one core busy
    gateway_cpu: float | None
    llmsim_cpu: float | None
    machine_cpu: float                     # every process on the machine, in cores (of os.cpu_count())


@dataclass(frozen=True)
class LoadgenNumbers:
    steps: list[Step]

    @property
    def best(self) -> Step:
        """The step with the most requests/s among those without failures (or the first step)."""
        clean = [s for s in self.steps if s.failures == 0] or self.steps[:1]
        return max(clean, key=lambda s: s.requests_per_second)

    @property
    def requests_per_second(self) -> float:
        return self.best.requests_per_second

    @property
    def locust_p95_ms(self) -> float | None:
        return self.best.locust_p95_ms

    @property
    def prometheus_p95_ms(self) -> float | None:
        return self.best.prometheus_p95_ms


def _prometheus_p95_ms(window_seconds: int) -> float | None:
    try:
        with promapi.Prometheus() as prometheus:
            value = prometheus.scalar(P95_QUERY.format(window=window_seconds))
    except promapi.QueryError:
        return None
    return None if value is None or value != value else value * 1000  # NaN: no calls in the window


def _cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(users: int, seconds: float, out: Path) -> Step:
    pids = {name: processes.running_pid(run_dir(), name) for name in ("gateway", "llmsim")}
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    children_before, machine_before = _children_cpu_seconds(), _machine_cpu_seconds()
    started = time.monotonic()
    result = loadgen.run(loadgen.LoadSettings(users=users, spawn_rate=users, wait=(0.0, 0.0), duration=seconds,
                                              out=out))
    wall = time.monotonic() - started
    after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    children_after, machine_after = _children_cpu_seconds(), _machine_cpu_seconds()
    time.sleep(SETTLE_SECONDS)
    assert result.report is not None
    total = result.report.total
    chat = next((e for e in result.report.endpoints if e.name == CHAT_PATH), None)
    window = max(5, round(seconds - WINDOW_MARGIN_SECONDS + SETTLE_SECONDS))
    share = {name: None if before[name] is None or after[name] is None else (after[name] - before[name]) / wall
             for name in pids}
    return Step(users=users, seconds=seconds, requests=total.requests, failures=total.failures,
                requests_per_second=total.requests_per_second, locust_p50_ms=total.p50_ms, locust_p95_ms=total.p95_ms,
                locust_chat_p95_ms=chat.p95_ms if chat else None, prometheus_p95_ms=_prometheus_p95_ms(window),
                locust_cpu=(children_after - children_before) / wall, gateway_cpu=share["gateway"],
                llmsim_cpu=share["llmsim"], machine_cpu=(machine_after - machine_before) / wall)


def measure_running_stack(progress: Callable[[str], None] = print, user_steps: Sequence[int] = USER_STEPS,
                          seconds: float = STEP_SECONDS) -> LoadgenNumbers:
    """Step the load up on the stack that is running now; stop at the plateau or at the first failures."""
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-load-") as tmp:
        for users in user_steps:
            step = run_step(users, seconds, Path(tmp) / f"users-{users}")
            steps.append(step)
            progress(f"{users} users: {step.requests_per_second:.0f} req/s, {step.failures} failed, p95 locust "
                     f"{step.locust_p95_ms or 0:.0f} ms / Prometheus {step.prometheus_p95_ms or 0:.0f} ms, "
                     f"CPU cores: locust {step.locust_cpu:.2f}, gateway {step.gateway_cpu or 0:.2f}, llmsim "
                     f"{step.llmsim_cpu or 0:.2f}, whole machine {step.machine_cpu:.2f} of {os.cpu_count()}")
            previous = steps[-2] if len(steps) > 1 else None
            if step.failures or (previous and step.requests_per_second < previous.requests_per_second * PLATEAU_GAIN):
                break
    return LoadgenNumbers(steps)


@contextmanager
def _own_stack() -> Iterator[None]:
    busy = [s.name for s in topology.load().services.values() if processes.port_in_use(s.host, s.port)]
    if busy:
        raise SystemExit(f"the stack's ports are in use ({', '.join(busy)}); stop that stack first, or use "
                         "measure_running_stack()")
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-run-") as tmp:
        env = {**os.environ, "LLMOBS_RUN_DIR": tmp}
        previous = os.environ.get("LLMOBS_RUN_DIR")
        os.environ["LLMOBS_RUN_DIR"] = tmp
        try:
            subprocess.run([sys.executable, "-m", "stack.runner", "up", "--no-notebooks"], cwd=REPO_ROOT, env=env,
                           check=True, capture_output=True, timeout=120)
            yield
        finally:
            subprocess.run([sys.executable, "-m", "stack.runner", "down"], cwd=REPO_ROOT, env=env,
                           capture_output=True, timeout=60)
            if previous is None:
                os.environ.pop("LLMOBS_RUN_DIR", None)
            else:
                os.environ["LLMOBS_RUN_DIR"] = previous


def measure(progress: Callable[[str], None] = print, user_steps: Sequence[int] = USER_STEPS,
            seconds: float = STEP_SECONDS) -> LoadgenNumbers:
    """Start a classroom stack of its own, step the load up, stop the stack (about 1–1.5 min)."""
    with _own_stack():
        return measure_running_stack(progress, user_steps, seconds)


def describe(numbers: LoadgenNumbers) -> str:
    best = numbers.best
    return (f"{best.requests_per_second:.0f} req/s from one locust process ({best.users} users, no think time), "
            f"p95 {best.locust_p95_ms or 0:.0f} ms in locust (chat only {best.locust_chat_p95_ms or 0:.0f} ms), "
            f"{best.prometheus_p95_ms or 0:.0f} ms from Prometheus; CPU cores: locust {best.locust_cpu:.2f}, gateway "
            f"{best.gateway_cpu or 0:.2f}, llmsim {best.llmsim_cpu or 0:.2f}, whole machine {best.machine_cpu:.2f} "
            f"of {os.cpu_count()}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "own"
    found = (measure_running_stack if mode == "running" else measure)()
    for step in found.steps:
        print(step)
    print(describe(found))
