"""Grade one student's lab: nbgrader autogrades the notebook (graders/notebooks.py), then the lab's stack checks run
against the autograded copy (graders/stackchecks.py). `make grade` and every worker of a class run call this."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from nbgrader.apps import NbGraderAPI

from graders import notebooks, stackchecks
from graders.course import GRADING_DIR, Lab
from graders.results import LabResult

StackLock = Callable[[], AbstractContextManager[object]]


def _no_lock() -> AbstractContextManager[object]:
    return nullcontext()


def not_gradable(lab: Lab, student: str, folder: Path) -> LabResult | None:
    """The result of a submission that cannot be graded (nothing submitted, a notebook missing), else None."""
    problem = None
    if not folder.is_dir():
        problem = f"no folder {folder}: nothing submitted for {lab.id}"
    elif missing := notebooks.missing_notebooks(lab, folder):
        problem = f"{folder} lacks {', '.join(missing)} (restore it from labs/{lab.id}/ or git)"
    if problem is None:
        return None
    result = LabResult(lab.short, student)
    result.problem = problem
    return result


def grade_one(api: NbGraderAPI, lab: Lab, student: str, folder: Path, stack_lock: StackLock = _no_lock) -> LabResult:
    """`stack_lock` is held while this student's grading uses the live stack (a live notebook, the stack checks),
    so parallel graders never mix their traffic and faults."""
    unfit = not_gradable(lab, student, folder)
    if unfit is not None:
        return unfit
    notebooks.submit(lab, student, folder)
    with stack_lock() if lab.live_notebook else nullcontext():
        result = notebooks.autograde(api, lab, student)
    if result.problem is None and stackchecks.checks_file(lab).exists():
        autograded = GRADING_DIR / "autograded" / student / lab.id
        with stack_lock(), contextlib.redirect_stdout(io.StringIO()):
            result.exercises.extend(stackchecks.run(lab, autograded))
    return result
