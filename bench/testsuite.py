"""`make bench-tests`: time `bash .ci/run` on a clean clone, as CI runs it, and write the figure, the test count and
the slowest tests into docs/performance.md (its "Test suite" section; `make bench` keeps that section as it is).

The clone is of the committed HEAD, in a temporary folder: it creates its own virtualenv (pip's cache is warm on a
developer machine, as on CI) and runs the whole suite with `--durations`. OS packages are assumed installed.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.sections import Section
from stack.paths import DOCS_DIR, REPO_ROOT

REPORT = DOCS_DIR / "performance.md"
BEGIN, END = "<!-- test-suite: written by `make bench-tests` -->", "<!-- /test-suite -->"
SECTION = Section(BEGIN, END)
GOAL_SECONDS = 8 * 60
SLOWEST = 15
SUMMARY = re.compile(r"^=* ?(?P<counts>\d+ passed.*?) in (?P<seconds>[\d.]+)s", re.M)
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown) +(?P<test>\S+)$", re.M)
CI_TIMEOUT_SECONDS = 30 * 60

console = Console()


@dataclass(frozen=True)
class SuiteRun:
    commit: str
    wall_seconds: float
    pytest_seconds: float
    counts: str
    slowest: list[tuple[float, str, str]]  # (seconds, phase, test)


def run_clean_clone() -> SuiteRun:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="llmobs-suite-") as folder:
        clone = Path(folder) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
        env = {**os.environ, "PYTEST_ARGS": f"--durations={SLOWEST} -q -p no:cacheprovider"}
        env.pop("LLMOBS_RUN_DIR", None)
        started = time.monotonic()
        result = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, capture_output=True, text=True,
                                timeout=CI_TIMEOUT_SECONDS)
        wall = time.monotonic() - started
    summary = SUMMARY.search(result.stdout)
    if result.returncode != 0 or not summary:
        raise SystemExit(f"`bash .ci/run` failed (exit {result.returncode}); nothing written.\n"
                         f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    slowest = [(float(m["seconds"]), m["phase"], m["test"]) for m in DURATION.finditer(result.stdout)][:SLOWEST]
    return SuiteRun(commit, wall, float(summary["seconds"]), summary["counts"], slowest)


def test_workers() -> int:
    """`make test`'s number of pytest-xdist workers (TEST_WORKERS in the Makefile, where it is set)."""
    found = re.search(r"^TEST_WORKERS \?= (\d+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    return int(found.group(1)) if found else 1


def section(run: SuiteRun, when: str) -> str:
    verdict = "met" if run.wall_seconds <= GOAL_SECONDS else "**not met**"
    lines = [BEGIN, "## Test suite", "",
             f"`bash .ci/run` on a clean clone of {run.commit} ({when}; it creates its own virtualenv, OS packages "
             f"already installed): **{run.wall_seconds / 60:.1f} min** wall clock, of which pytest "
             f"{run.pytest_seconds:.0f} s on {test_workers()} pytest-xdist workers; {run.counts}. Goal ≤ "
             f"{GOAL_SECONDS // 60} min: {verdict}.", "",
             f"The {len(run.slowest)} slowest test phases (`--durations`):", "",
             "| seconds | phase | test |", "| ---: | --- | --- |"]
    lines += [f"| {seconds:.1f} | {phase} | `{test}` |" for seconds, phase, test in run.slowest]
    lines += ["", "A `setup` row is a shared fixture built once for the tests that use it (a class graded through "
              "`make grade`'s code path, a stack started by `make up`).", END]
    return "\n".join(lines) + "\n"


def main() -> None:
    with console.status("running `bash .ci/run` on a clean clone (about 8 minutes)…"):
        run = run_clean_clone()
    console.print(f"{run.counts}: {run.wall_seconds:.0f} s wall clock, pytest {run.pytest_seconds:.0f} s")
    REPORT.write_text(SECTION.replace(REPORT.read_text(), section(run, datetime.date.today().isoformat())))
    console.print(f"wrote the test-suite section of {REPORT}")


if __name__ == "__main__":
    main()
