"""Grading processes for a class run: one per core, each grading one student's lab at a time with the gradebook the
run prepared once. A student's crash or timeout stays that student's: the process (with its notebook kernel) is
killed, the student gets a problem saying why, and a fresh process takes the next submission.

Labs whose grading uses the live stack hold a file lock while they do (graders/submission.py `stack_lock`), so two
students' traffic and provider faults never mix; the scheduler hands such work to one process at a time and keeps the
others busy with the rest.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from graders import nbconfig, notebooks
from graders.course import GRADING_DIR, Lab
from graders.results import LabResult
from graders.submission import grade_one

LIVE_STACK_LOCK = GRADING_DIR / ".live-stack.lock"
LOG_DIR = GRADING_DIR / "logs"
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Task:
    student: str
    lab: Lab
    folder: Path

    @property
    def uses_live_stack(self) -> bool:
        return self.lab.live_notebook


@contextmanager
def live_stack_lock() -> Iterator[None]:
    """Held while one student's grading uses the live stack; the kernel releases it if the process dies."""
    LIVE_STACK_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LIVE_STACK_LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _quiet(log_path: Path) -> None:
    """Everything this process and its kernels print goes to its log file, not under the progress bar."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    warnings.filterwarnings("ignore")
    logging.getLogger("traitlets").setLevel(logging.ERROR)


def _serve(connection: Connection, log_path: Path) -> None:
    os.setsid()  # its own process group: a timeout kills it with everything it started
    _quiet(log_path)
    api = nbconfig.api(release_directory=notebooks.RELEASE_FOR_GRADING)
    while (task := connection.recv()) is not None:
        try:
            result = grade_one(api, task.lab, task.student, task.folder, stack_lock=live_stack_lock)
        except Exception as error:  # noqa: BLE001 - one student's grading failing must not stop the class
            result = LabResult(task.lab.short, task.student)
            result.problem = f"grading failed: {type(error).__name__}: {error}"
        connection.send(result)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (a kernel may start its own session, so the process group is not enough)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


class _Worker:
    def __init__(self, index: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, LOG_DIR / f"worker-{index}.log"),
                                       daemon=True, name=f"grader-{index}")
        self.process.start()
        child_end.close()
        self.index = index
        self.task: Task | None = None
        self.started = 0.0

    def give(self, task: Task) -> None:
        self.task, self.started = task, time.monotonic()
        self.connection.send(task)

    def kill(self) -> None:
        pid = self.process.pid
        if pid is None:
            return
        for victim in [pid, *_descendants(pid)]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.join(5)

    def stop(self) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.kill()


def _failed(task: Task, why: str) -> LabResult:
    result = LabResult(task.lab.short, task.student)
    result.problem = why
    return result


def _next(pending: list[Task], busy: list[_Worker]) -> Task:
    """Live-stack work only when no other process is doing some (it would wait for the lock), other work first."""
    live_running = any(w.task is not None and w.task.uses_live_stack for w in busy)
    if live_running:
        other = next((t for t in pending if not t.uses_live_stack), None)
        if other is not None:
            pending.remove(other)
            return other
    live = next((t for t in pending if t.uses_live_stack), pending[0])
    pending.remove(live)
    return live


def grade(tasks: list[Task], workers: int, timeout: float, started: Callable[[list[Task]], None],
          finished: Callable[[Task, LabResult], None]) -> None:
    """Grade every task on `workers` processes; `started(running)` when the set of running tasks changes,
    `finished(task, result)` as each one ends (in the order they end)."""
    pending = list(tasks)
    pool = [_Worker(index) for index in range(max(1, min(workers, len(tasks))))]
    try:
        while pending or any(w.task for w in pool):
            for worker in pool:
                if worker.task is None and pending:
                    worker.give(_next(pending, [w for w in pool if w.task]))
            started([w.task for w in pool if w.task])
            busy = [w for w in pool if w.task]
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_SECONDS)
            for position, worker in enumerate(pool):
                task = worker.task
                if task is None:
                    continue
                result: LabResult | None = None
                if worker.connection in ready:
                    try:
                        result = worker.connection.recv()
                    except (EOFError, OSError):
                        result = None
                if result is None and (worker.process.sentinel in ready or not worker.process.is_alive()):
                    worker.process.join(1)
                    result = _failed(task, f"the grading process died (exit code {worker.process.exitcode}) while "
                                           f"running this notebook; see {LOG_DIR / f'worker-{worker.index}.log'}")
                    pool[position] = _Worker(worker.index)
                elif result is None and time.monotonic() - worker.started > timeout:
                    worker.kill()
                    result = _failed(task, f"grading stopped after {timeout:.0f} s (a cell that never ends and "
                                           "ignores interrupts?); the notebook must run top to bottom in minutes")
                    pool[position] = _Worker(worker.index)
                if result is not None:
                    worker.task = None
                    finished(task, result)
    finally:
        for worker in pool:
            if worker.task is None:
                worker.stop()
            else:
                worker.kill()
