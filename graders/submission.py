"""Grade one student's lab: nbgrader autogrades the notebook (graders/notebooks.py), then the lab's stack checks run
against the autograded copy (graders/stackchecks.py). `make grade` and every worker of a class run call this."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from nbgrader.apps import NbGraderAPI

from graders import notebooks
from graders.course import Lab
from graders.results import ExerciseResult, LabResult

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
    """notebooks.grade, with `stack_lock` held while this student's grading uses the live stack (a live notebook
    for its whole grading, else the stack checks), so parallel graders never mix their traffic and faults."""
    unfit = not_gradable(lab, student, folder)
    if unfit is not None:
        return unfit
    if lab.live_notebook:
        with stack_lock():
            return notebooks.grade(api, lab, student, folder)

    def locked_stack_checks(checked: Lab, autograded: Path) -> list[ExerciseResult]:
        with stack_lock():
            return notebooks.quiet_stack_checks(checked, autograded)

    return notebooks.grade(api, lab, student, folder, stack_checks=locked_stack_checks)
