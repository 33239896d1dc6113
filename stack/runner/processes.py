"""Start, find and stop the stack's processes through pid files in the run folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from stack.paths import REPO_ROOT
from stack.runner.services import ServiceSpec, child_env

STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.05


def pid_file(run: Path, name: str) -> Path:
    return run / "pids" / f"{name}.pid"


def log_file(run: Path, name: str) -> Path:
    return run / "logs" / f"{name}.log"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def running_pid(run: Path, name: str) -> int | None:
    """The pid of the service this run folder started, if that process still lives."""
    path = pid_file(run, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def start(spec: ServiceSpec, run: Path) -> int:
    log_path = log_file(run, spec.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file(run, spec.name).parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            spec.argv, cwd=REPO_ROOT, env=child_env(spec), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    pid_file(run, spec.name).write_text(str(process.pid))
    return process.pid


def stop(run: Path, name: str) -> bool:
    """Stop one service (its whole process group). True if something was running."""
    pid = running_pid(run, name)
    pid_file(run, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(POLL_SECONDS)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the runner itself is the parent (tests), so no zombie lingers."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
