"""The live stack fixture: `make up` into a private run folder once per session, `make down` afterwards.

The test stack runs with its ports shifted by LLMOBS_PORT_OFFSET (1000 unless set), so `make test` works while a
student's own `make up` stack is running. Tests that are not about the live stack see the base ports, the ones
written into the generated configs. Its gateway and llmsim send their spans to an OTLP receiver inside the test
process (the `otlp_collector` fixture), so tests can look at the traces without a trace backend.
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
from tests.otlp_collector import OtlpCollector
from stack.paths import REPO_ROOT
from tests import live

MAKE_TIMEOUT_SECONDS = 120
TEST_PORT_OFFSET = "1000"
os.environ.setdefault("LLMOBS_PORT_OFFSET", TEST_PORT_OFFSET)
# Grading output of the tests goes to a temp folder, never into the checkout's build/ (see graders/course.py).
os.environ.setdefault("LLMOBS_BUILD_DIR", tempfile.mkdtemp(prefix="llmobs-test-build-"))


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
    to `otlp_collector` (exported every 200 ms instead of every second)."""
    run = tmp_path_factory.mktemp("run")
    started = _make("up", run, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_collector.url, OTEL_BSP_SCHEDULE_DELAY="200")
    if started.returncode != 0:
        _make("down", run)
        pytest.fail(f"`make up` failed (exit {started.returncode}). If a stack of yours is running, stop it with "
                    f"`make down` first.\n{started.stdout}\n{started.stderr}", pytrace=False)
    os.environ["LLMOBS_RUN_DIR"] = str(run)
    yield LiveStack(run, started.stdout)
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
