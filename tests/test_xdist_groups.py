"""`make test`'s parallel workers keep the tests of a module-scoped fixture together (tests/xdist_groups.py): a graded
class is built once, not once per worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stack.paths import REPO_ROOT

SUITE = '''
import os
import pytest

@pytest.fixture(scope="module")
def graded_class():
    with open(os.environ["BUILDS"], "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("student", range(6))
def test_student(graded_class, student):
    with open(os.environ["RUNS"], "a") as out:
        out.write(f"shared {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("n", range(8))
def test_independent(n):
    with open(os.environ["RUNS"], "a") as out:
        out.write(f"free {os.environ['PYTEST_XDIST_WORKER']}\\n")
'''


def test_a_shared_fixture_is_built_once_and_independent_tests_still_spread(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    builds, runs = tmp_path / "builds.txt", tmp_path / "runs.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "BUILDS": str(builds), "RUNS": str(runs)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("LLMOBS_XDIST_GROUPS_FILE", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-n", "2", "--dist",
                             "loadgroup", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(builds.read_text().split()) == 1, f"the module fixture was built on {builds.read_text().split()}"
    lines = [line.split() for line in runs.read_text().splitlines()]
    assert len({worker for kind, worker in lines if kind == "shared"}) == 1
    assert len(lines) == 14
