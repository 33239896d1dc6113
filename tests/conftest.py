"""The live stack fixture: `make up` into a private run folder once per session, `make down` afterwards.

The test stack runs with its ports shifted by LLMOBS_PORT_OFFSET (1000 unless set), so `make test` works while a
student's own `make up` stack is running. Tests that are not about the live stack see the base ports, the ones
written into the generated configs. Its gateway and llmsim send their spans to an OTLP receiver inside the test
process (the `otlp_collector` fixture), so tests can look at the traces without a trace backend; the receiver
forwards every payload unchanged to the stack's built-in trace store, where `make grade`'s V4 check finds them.

`make test` runs the suite on pytest-xdist workers (`--dist loadgroup`). Each worker is its own test session: it
starts its own stack, WORKER_PORT_STRIDE ports above the previous worker's, with its own run folder. Tests of a
module that shares a module-scoped fixture (a graded class, a seeded Prometheus) stay on one worker, so that
fixture is built once; every other test goes wherever a worker is free.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack import topology
from stack.paths import REPO_ROOT
from tests import live
from tests.otlp_collector import OtlpCollector

pytest_plugins = ["tests.xdist_groups", "tests.wrong_answers.tally"]  # shared fixtures on one worker; catch rate

MAKE_TIMEOUT_SECONDS = 120
TEST_PORT_OFFSET = 1000
WORKER_PORT_STRIDE = 200  # more than the span of topology.yaml's ports, so two workers' stacks never overlap


def _worker_index() -> int:
    """0 outside pytest-xdist; N on its worker `gwN`."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


os.environ["LLMOBS_PORT_OFFSET"] = str(int(os.environ.get("LLMOBS_PORT_OFFSET") or TEST_PORT_OFFSET)
                                       + WORKER_PORT_STRIDE * _worker_index())
if os.environ.get("PYTEST_XDIST_WORKER"):
    # A worker's temporary files (and those of every process it starts) live in a folder of its own, so a test can
    # tell what its own worker left behind from what another worker is still using.
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix=f"llmobs-{os.environ['PYTEST_XDIST_WORKER']}-")
    tempfile.tempdir = None
# Grading output of the tests goes to a temp folder, never into the checkout's build/ (see graders/course.py).
# Each worker grades into its own folder: nbgrader's gradebook is one SQLite file per build folder.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["LLMOBS_BUILD_DIR"] = tempfile.mkdtemp(prefix=f"llmobs-test-build-{_worker}-",
                                                  dir=os.environ.get("LLMOBS_BUILD_DIR"))


@pytest.fixture(autouse=True)
def _base_ports_unless_live(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("stack"):
        yield
        return
    with topology.base_ports():
        yield


def _make(target: str, run: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMOBS_RUN_DIR": str(run), "COLUMNS": "160", **extra_env}
    return subprocess.run(["make", "--no-print-directory", target], cwd=REPO_ROOT, env=env, text=True,
                          capture_output=True, timeout=MAKE_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class LiveStack:
    run: Path
    up_output: str


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OtlpCollector]:
    """Receives the live stack's spans (OTLP/HTTP on a free loopback port) for the whole session."""
    with OtlpCollector() as collector:
        yield collector


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory, otlp_collector: OtlpCollector) -> Iterator[LiveStack]:
    """Starts the classroom stack exactly as a student does (`make up`), with its data in a temp folder; its spans go
    to `otlp_collector` (exported every 200 ms instead of every second), which forwards them to the trace store."""
    run = tmp_path_factory.mktemp("run")
    started = _make("up", run, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_collector.url, OTEL_BSP_SCHEDULE_DELAY="200")
    if started.returncode != 0:
        _make("down", run)
        pytest.fail(f"`make up` failed (exit {started.returncode}). If a stack of yours is running, stop it with "
                    f"`make down` first.\n{started.stdout}\n{started.stderr}", pytrace=False)
    os.environ["LLMOBS_RUN_DIR"] = str(run)
    otlp_collector.forward_to = f"{topology.load().services['tracestore'].url}/v1/traces"
    yield LiveStack(run, started.stdout)
    otlp_collector.forward_to = None
    stopped = _make("down", run)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture
def stack(live_stack: LiveStack) -> Iterator[LiveStack]:
    """The live stack with no faults and an empty receiver; faults are healed again afterwards."""
    live.heal_faults()
    live.clear_notifications()
    yield live_stack
    live.heal_faults()


@pytest.fixture
def in_lab_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run notebook cells from an empty folder, to see whether they leave files behind."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
