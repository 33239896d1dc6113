"""Grade a folder of student submissions through `make grade`'s own code path, as an instructor does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graders import course
from stack.paths import REPO_ROOT


def start_class(lab: course.Lab, class_dir: Path) -> None:
    """The two reference students every lab test grades: the solutions (full marks) and the released stubs (0)."""
    shutil.copytree(lab.source, class_dir / "solutions" / lab.id,
                    ignore=shutil.ignore_patterns("student_*", ".ipynb_checkpoints"))
    shutil.copytree(course.LABS_DIR / lab.id, class_dir / "released" / lab.id)


def grade_class(lab: course.Lab, class_dir: Path, timeout: float) -> dict[str, dict]:
    """student -> {"lab": the grades.json entry, "exercises": exercise -> (points, max points, message)}."""
    result = subprocess.run([sys.executable, "-m", "graders", "--lab", lab.short, "--submissions", str(class_dir)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    labs = json.loads(course.GRADES_JSON.read_text())["labs"]
    return {lab["student"]: {"lab": lab, "exercises": {e["exercise"]: (e["points"], e["max_points"], e["message"])
                                                       for e in lab["exercises"]}} for lab in labs}


@contextmanager
def short_cell_timeout(api: Any, seconds: float) -> Iterator[None]:
    """The course config interrupts a cell after at most 30 s and goes on; a shorter limit tests that path faster."""
    assert api.config.Execute.interrupt_on_timeout and 0 < api.config.Execute.timeout <= 30
    course_timeout, api.config.Execute.timeout = api.config.Execute.timeout, seconds
    try:
        yield
    finally:
        api.config.Execute.timeout = course_timeout
