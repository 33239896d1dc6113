"""Wall time of `make grade` on the solutions of V1 and V2, warm (a first run fills caches)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from stack.paths import REPO_ROOT

LABS = "v1,v2"
RUNS = 3


def measure(progress: Callable[[str], None] = print) -> list[float]:
    """Seconds per warm run (the stack must be up: V2 checks run against it)."""
    times = []
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-grade-") as build:
        env = {**os.environ, "LLMOBS_BUILD_DIR": build}
        command = [sys.executable, "-m", "graders", "--lab", LABS, "--notebooks", "solutions", "--strict"]
        for attempt in range(RUNS + 1):
            started = time.monotonic()
            result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
            elapsed = time.monotonic() - started
            if result.returncode != 0:
                raise RuntimeError(f"grading the solutions lost points or failed:\n{result.stdout[-3000:]}")
            if attempt:
                times.append(elapsed)
                progress(f"make grade (V1+V2 solutions) run {attempt}/{RUNS}: {elapsed:.1f}s")
    return times
