"""Trigger, heal and report scenarios. One scenario runs at a time, in a detached driver process.

`start(name)` spawns `python -m stack.scenarios _drive <name>` in its own session (so closing the terminal or
Ctrl-C in the live view does not stop it) and waits until the fault is applied. The driver:

1. applies the scenario (kinds/<kind>.start) and starts its bounded traffic;
2. every second: lets the kind work (the storm's relay), reads the signature and alerts, and records each
   transition (pending, firing, notification, resolved) with its time after the trigger in the state file;
3. when the duration is over, or on SIGTERM (`heal`), heals (kinds/<kind>.heal) and keeps recording until the
   scenario is back to green or RECOVERY_WATCH_SECONDS pass, then appends the run to history.jsonl.

State lives in <run>/scenarios/: state.json (the current or last scenario), history.jsonl, driver.pid, and the
driver's log in <run>/logs/scenarios.log. Every fault knob also carries its own expiry (duration + 5 s), so a
killed driver leaves nothing broken for long; `heal` additionally resets every knob the scenarios use.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stack import profiles
from stack.paths import REPO_ROOT
from stack.runner import control, health, processes
from stack import topology
from stack.scenarios import observe, registry
from stack.scenarios.kinds.index import KINDS
from stack.scenarios.kinds.base import RECOVERY_TRAFFIC_SECONDS, Context, ScenarioFailure
from stack.scenarios.model import MAX_DURATION_SECONDS, MIN_DURATION_SECONDS, RegistryError

START_TIMEOUT_SECONDS = 60.0
HEAL_TIMEOUT_SECONDS = 100.0  # stopping traffic (<= 35 s) plus restarting a stopped gateway (<= 45 s)
RECOVERY_WATCH_SECONDS = 120.0
TICK_SECONDS = 1.0
ACTIVE_PHASES = ("starting", "running", "healing")


class StackNotRunning(ScenarioFailure):
    pass


def folder(run: Path) -> Path:
    return run / "scenarios"


def state_file(run: Path) -> Path:
    return folder(run) / "state.json"


def history_file(run: Path) -> Path:
    return folder(run) / "history.jsonl"


def log_file(run: Path) -> Path:
    return run / "logs" / "scenarios.log"


def _pid_file(run: Path) -> Path:
    return folder(run) / "driver.pid"


def read_state(run: Path) -> dict | None:
    try:
        return json.loads(state_file(run).read_text())
    except (OSError, ValueError):
        return None


def _write_state(run: Path, state: dict) -> None:
    folder(run).mkdir(parents=True, exist_ok=True)
    temporary = state_file(run).with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=1))
    os.replace(temporary, state_file(run))


def alive(pid: int | None) -> bool:
    return bool(pid) and processes.alive(pid)  # type: ignore[arg-type]


def driver_pid(run: Path) -> int | None:
    try:
        pid = int(_pid_file(run).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def is_active(state: dict | None, run: Path) -> bool:
    """A scenario is breaking things right now (its driver lives and has not healed yet)."""
    return bool(state) and state.get("phase") in ACTIVE_PHASES and driver_pid(run) is not None


@contextmanager
def _lock(run: Path) -> Iterator[None]:
    folder(run).mkdir(parents=True, exist_ok=True)
    with (folder(run) / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running_profile(run: Path) -> profiles.Profile:
    profile = control.running_profile(run)
    prometheus = topology.load().services["prometheus"]
    if profile is None or not health.healthy(prometheus.url + prometheus.health):
        raise StackNotRunning(f"the stack is not running for run folder {run} (Prometheus at {prometheus.url} does "
                              "not answer); start it with `make up` first")
    return profiles.load(profile)


def _check_duration(duration: float) -> float:
    if not MIN_DURATION_SECONDS <= duration <= MAX_DURATION_SECONDS:
        raise RegistryError(f"duration {duration:g}s is outside {MIN_DURATION_SECONDS:g}..{MAX_DURATION_SECONDS:g}s")
    return float(duration)


# ---------------------------------------------------------------------------------------------- trigger and heal

def start(name: str, run: Path, duration: float | None = None,
          on_progress: Callable[[str], None] = lambda _: None) -> dict:
    """Trigger a scenario; returns its state once the fault is applied. Triggering the scenario that is already
    running changes nothing (its state comes back with `already_running`); another one is healed first."""
    scenario = registry.get(name)
    duration = _check_duration(duration if duration is not None else scenario.duration_seconds)
    running_profile(run)
    with _lock(run):
        current = read_state(run)
        if is_active(current, run):
            if current["name"] == name:
                return {**current, "already_running": True}
            on_progress(f"healing {current['name']} first")
            _end_driver(run)
            reset_all(run)
        elif driver_pid(run) is not None:  # the last scenario's driver, still recording its recovery
            _end_driver(run)
        elif current and current.get("phase") in ACTIVE_PHASES:  # its driver died without healing
            on_progress(f"the driver of {current['name']} died; resetting every knob first")
            reset_all(run)
        _write_state(run, {"name": name, "title": scenario.title, "phase": "starting", "requested_at": time.time(),
                           "duration": duration, "events": []})
        log_file(run).parent.mkdir(parents=True, exist_ok=True)
        with log_file(run).open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "stack.scenarios", "_drive", name, "--duration", f"{duration:g}"],
                cwd=REPO_ROOT, env={**os.environ, "LLMOBS_RUN_DIR": str(run)}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _pid_file(run).write_text(str(process.pid))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            state = read_state(run) or {}
            if state.get("phase") in ("running", "healing", "healed"):
                return state
            if state.get("phase") == "failed" or process.poll() is not None:
                raise ScenarioFailure(f"scenario {name} could not start: {state.get('error') or 'driver exited'}; "
                                      f"see {log_file(run)}")
            time.sleep(0.1)
        raise ScenarioFailure(f"scenario {name} did not start within {START_TIMEOUT_SECONDS:.0f}s; see {log_file(run)}")


def heal(run: Path, on_progress: Callable[[str], None] = lambda _: None) -> dict | None:
    """Stop the running scenario now (it heals what it broke), then reset every knob the scenarios use.
    Safe to call any time; returns the last scenario's state."""
    with _lock(run):
        current = read_state(run)
        if is_active(current, run):
            on_progress(f"healing {current['name']}")
            _stop_driver(run, current)
        elif driver_pid(run) is not None:
            _stop_driver(run, current)
        for problem in reset_all(run):
            on_progress(f"[yellow]{problem}[/]")
        state = read_state(run)
        if state and state.get("phase") in ACTIVE_PHASES:  # the driver died before it could record the heal
            state.update(phase="healed", healed_at=time.time(), heal_reason="healed by `heal` (driver gone)")
            _write_state(run, state)
        return state


def _stop_driver(run: Path, state: dict | None) -> None:
    """SIGTERM the driver: a running one heals (wait for that), a recovering one stops recording."""
    pid = driver_pid(run)
    if pid is None:
        return
    healing = bool(state) and state.get("phase") in ACTIVE_PHASES
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + (HEAL_TIMEOUT_SECONDS if healing else 40)  # 40: its traffic's last calls
    while time.monotonic() < deadline:
        current = read_state(run) or {}
        if not alive(pid) or (healing and current.get("phase") in ("healed", "failed")):
            break
        _reap(pid)
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)  # a healed driver goes on recording the recovery (for `status`) until green or the next scenario


def _end_driver(run: Path) -> None:
    """Heal the driver's scenario if it is active, then end its recovery recording too: nothing of it remains."""
    for _ in range(2):
        if driver_pid(run) is None:
            return
        _stop_driver(run, read_state(run))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reset_all(run: Path) -> list[str]:
    """The safety net: undo every kind's breakage (llmsim and gateway fault knobs, the naive Alertmanager, a
    stopped gateway). Idempotent; returns what could not be reset."""
    problems = []
    for name, kind in KINDS.items():
        try:
            kind.reset(run)
        except ScenarioFailure as error:
            problems.append(f"{name}: {error}")
    return problems


def history(run: Path) -> list[dict]:
    try:
        lines = history_file(run).read_text().splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------- the driver

class _Driver:
    def __init__(self, name: str, duration: float, run: Path) -> None:
        self.run = run
        self.scenario = registry.get(name)
        self.kind = KINDS[self.scenario.kind]
        self.profile = running_profile(run)
        self.stopping = False  # set by SIGTERM/SIGINT (a plain flag: safe to set from a signal handler)
        self._reported: set[str] = set()
        self.state = read_state(run) or {"name": name, "requested_at": time.time()}
        self.state.update(name=name, title=self.scenario.title, pid=os.getpid(), duration=duration,
                          profile=self.profile.name, phase="starting", events=[])
        self.t0 = time.time()
        self.progress = observe.Progress(self.scenario, self.t0)
        self.ctx = Context(self.scenario, run, self.profile, duration, note=self.note)

    def save(self, **fields: object) -> None:
        self.state.update(fields, progress=self.progress.summary())
        current = read_state(self.run) or {}
        if current.get("pid") not in (None, os.getpid()):
            return  # another scenario's driver owns the state file now
        _write_state(self.run, self.state)

    def note(self, text: str) -> None:
        seconds = round(time.time() - self.t0, 1)
        self.state["events"].append({"t": seconds, "at": time.time(), "what": text})
        print(f"[{self.scenario.name} +{seconds:5.1f}s] {text}", flush=True)
        self.save()

    def observe(self) -> bool:
        """Record new transitions; True when the scenario is back to green."""
        snapshot = observe.take(self.scenario, self.profile, self.t0)
        for event in self.progress.update(snapshot):
            self.note(event)
        return self.progress.healed_at is not None and self.progress.green(snapshot)

    def run_scenario(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        snapshot = self._safely(observe.take, self.scenario, self.profile, time.time())
        self.t0 = self.progress.t0 = self.ctx.started_at = time.time()  # the trigger: every time counts from it
        self.save(t0=self.t0)
        for event in self.progress.before_trigger(snapshot) if snapshot else []:
            self.note(event)
        try:
            self.kind.start(self.ctx)
        except Exception as error:  # noqa: BLE001 - any failure must still heal and be reported
            self.note(f"could not break: {error}")
            self._heal(f"start failed: {error}")
            self.ctx.stop_traffic()
            self.save(phase="failed", error=str(error))
            return 1
        self.save(phase="running", ends_at=self.t0 + self.ctx.duration)
        while not self.stopping and time.time() < self.t0 + self.ctx.duration:
            self._safely(self.kind.tick, self.ctx)
            self._safely(self.observe)
            self._wait(TICK_SECONDS)
        self._heal("heal requested" if self.stopping else "duration over")
        self.stopping = False  # a second SIGTERM now only ends the recovery recording (and its traffic)
        deadline = time.time() + RECOVERY_WATCH_SECONDS
        while not self.stopping and time.time() < deadline:
            if self.ctx.traffic and time.time() > self.progress.healed_at + RECOVERY_TRAFFIC_SECONDS:
                self.ctx.stop_traffic()
            if self._safely(self.observe):
                self.note("back to green: expected alerts inactive, key signal normal")
                break
            self._wait(TICK_SECONDS)
        self.ctx.stop_traffic()
        self.save(recording=False)
        with history_file(self.run).open("a") as out:
            out.write(json.dumps({key: self.state.get(key) for key in
                                  ("name", "profile", "duration", "t0", "healed_at", "heal_reason", "progress",
                                   "events")}) + "\n")
        return 0

    def _on_signal(self, *_: object) -> None:
        self.stopping = True

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.05)

    def _heal(self, reason: str) -> None:
        self.save(phase="healing")
        self.note(f"healing ({reason})")
        try:
            self.kind.heal(self.ctx)
        except Exception as error:  # noqa: BLE001
            self.note(f"heal failed ({error}); resetting every knob")
            self.ctx.stop_traffic()
            reset_all(self.run)
        self.progress.healed_at = time.time()
        self.save(phase="healed", healed_at=self.progress.healed_at, heal_reason=reason, recording=True)

    def _safely(self, function: Callable, *args: object) -> object:
        try:
            return function(*args)
        except Exception as error:  # noqa: BLE001 - observing must never stop the scenario from healing
            print(f"[{self.scenario.name}] {function.__name__} failed: {error!r}", flush=True)
            if function.__name__ not in self._reported:  # the whole traceback once, not every second
                self._reported.add(function.__name__)
                traceback.print_exc()
            return None


def drive(name: str, duration: float, run: Path) -> int:
    """The driver process' main (python -m stack.scenarios _drive)."""
    _pid_file(run).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(run).write_text(str(os.getpid()))
    try:
        driver = _Driver(name, _check_duration(duration), run)
    except (RegistryError, ScenarioFailure) as error:
        state = read_state(run) or {"name": name}
        state.update(phase="failed", error=str(error))
        _write_state(run, state)
        print(f"[{name}] {error}", flush=True)
        return 2
    return driver.run_scenario()
