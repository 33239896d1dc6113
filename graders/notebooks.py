"""Grading one student's lab: nbgrader generates the assignment from solutions/ (gradebook, locked cells, hidden
tests), autogrades the submission with per-cell timeouts, the lab's stack checks run against the autograded copy,
and the feedback HTML shows every check that scored it."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI

from graders import nbconfig, stackchecks
from graders.course import GRADING_DIR, Lab
from graders.results import ExerciseResult, LabResult

RELEASE_FOR_GRADING = str(GRADING_DIR / "release")
SKIPPED_FILES = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
# Scratch space nbgrader rebuilds on every run; results that must outlive a run go to the run's folder (runs.py).
SCRATCH = ("release", "submitted", "autograded", "feedback", "exchange", "gradebook.db")
EXERCISE_NUMBER = re.compile(r"^ex(\d+)")

# (lab, autograded lab folder) -> the points of the checks run against the stack
StackChecks = Callable[[Lab, Path], list[ExerciseResult]]


class GradingError(RuntimeError):
    """nbgrader itself failed (not the student's answer)."""


def _log_tail(result: dict, lines: int = 25) -> str:
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    return "\n".join(text.strip().splitlines()[-lines:])


def _clear_scratch() -> None:
    for name in SCRATCH:
        path = GRADING_DIR / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def prepare(labs: list[Lab], feedback_dir: Path | None = None, fresh: bool = True) -> NbGraderAPI:
    """A gradebook holding every lab's grade cells, built from solutions/: a fresh one unless `fresh` is False (then
    `labs` are added to the existing gradebook and its graded submissions are kept: a class run's incremental
    re-run). Feedback HTML goes to feedback_dir (default: build/grading/feedback)."""
    if fresh:
        _clear_scratch()
    overrides = {"release_directory": RELEASE_FOR_GRADING}
    if feedback_dir is not None:
        overrides["feedback_directory"] = str(feedback_dir)
    api = nbconfig.api(**overrides)
    for lab in labs:
        result = api.generate_assignment(lab.id, force=True)
        if not result["success"]:
            raise GradingError(f"nbgrader could not read solutions/{lab.id}:\n{_log_tail(result)}")
    return api


def submit(lab: Lab, student: str, folder: Path) -> None:
    """Copy one student's lab folder into nbgrader's submitted/<student>/<lab>/."""
    target = GRADING_DIR / "submitted" / student / lab.id
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target, ignore=SKIPPED_FILES)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


def explain(outputs: list) -> str:
    """Why a test cell lost its points, in words a student can act on."""
    for output in outputs:
        if output.get("output_type") == "error":
            name, value = output.get("ename", ""), _first_line(output.get("evalue", ""))
            if name in ("AssertionError", "LabCheckFailed"):
                return value or "a check failed (the assertion has no message)"
            if name == "NotImplementedError":
                return "not attempted yet: the exercise cell still raises NotImplementedError"
            if name in ("KeyboardInterrupt", "CellTimeoutError"):
                why = "interrupted after the per-cell time limit (an endless loop, or waiting on something?)"
                return f"{why}; {value}" if name == "CellTimeoutError" and value else why
            if name == "SystemExit":
                return "the code called sys.exit() (or exit()); a notebook must not stop its own kernel"
            if name == "NameError":
                return f"{value}: run (and complete) the exercise cell above this check"
            return f"{name}: {value}" if value else name
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return f"the check printed to stderr, which counts as a failure: {_first_line(output.get('text', ''))}"
    return "no points (see the feedback HTML for the cell's output)"


def _test_cells(notebook: nbformat.NotebookNode) -> dict[str, list]:
    """grade id -> outputs of every graded code cell, in the notebook's order."""
    cells = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            cells[meta["grade_id"]] = cell.get("outputs", [])
    return cells


def in_exercise_order(grade_ids: list[str]) -> list[str]:
    """By exercise number (ex2 before ex10), then in the order given (the notebook's); ids without a number last."""
    position = {grade_id: index for index, grade_id in enumerate(grade_ids)}

    def key(grade_id: str) -> tuple[float, int]:
        number = EXERCISE_NUMBER.match(grade_id)
        return (int(number.group(1)) if number else math.inf, position[grade_id])

    return sorted(grade_ids, key=key)


def _notebook_exercises(api: NbGraderAPI, lab: Lab, student: str, autograded: Path) -> list[ExerciseResult]:
    found = []
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gradebook:
        for notebook_file in sorted(autograded.glob("*.ipynb")):
            outputs = _test_cells(nbformat.read(notebook_file, as_version=4))
            try:
                submission = gradebook.find_submission_notebook(notebook_file.stem, lab.id, student)
            except MissingEntry:
                continue
            grades = {grade.name: grade for grade in submission.grades}
            notebook_order = [name for name in outputs if name in grades] + sorted(set(grades) - set(outputs))
            for name in in_exercise_order(notebook_order):
                grade = grades[name]
                score = grade.score or 0.0
                message = "" if score >= grade.max_score else explain(outputs.get(name, []))
                found.append(ExerciseResult(lab.short, name, float(score), float(grade.max_score), message))
    return found


def _feedback(api: NbGraderAPI, lab: Lab, student: str, result: LabResult) -> str | None:
    """The feedback HTML of this lab, its summary listing every check of `result` (see graders/feedback.py)."""
    api.config.GradeSummary.lab = result.as_dict()
    try:
        outcome = api.generate_feedback(lab.id, student, force=True)
    finally:
        api.config.GradeSummary.lab = {}
    html = sorted((Path(api.coursedir.feedback_directory) / student / lab.id).glob("*.html"))
    return str(html[0]) if outcome["success"] and html else None


def autograde(api: NbGraderAPI, lab: Lab, student: str, stack_checks: StackChecks | None = None) -> LabResult:
    """Grade what submit() copied: the notebook's check cells, then (when given) the stack checks against the
    autograded copy; the feedback HTML lists them all."""
    result = LabResult(lab=lab.short, student=student)
    os.environ["LLMOBS_GRADING"] = "1"  # inherited by the grading kernel: notebooks skip plots while graded
    outcome = api.autograde(lab.id, student, force=True, create=True)
    if not outcome["success"]:
        result.problem = f"nbgrader could not grade {lab.id} for {student}: {_first_line(_log_tail(outcome, 3))}"
        return result
    autograded = GRADING_DIR / "autograded" / student / lab.id
    result.exercises.extend(_notebook_exercises(api, lab, student, autograded))
    if stack_checks is not None:
        result.exercises.extend(stack_checks(lab, autograded))
    result.feedback_html = _feedback(api, lab, student, result)
    return result


def quiet_stack_checks(lab: Lab, autograded: Path) -> list[ExerciseResult]:
    """The lab's stack checks, pytest's own output kept off the terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        return stackchecks.run(lab, autograded)


def grade(api: NbGraderAPI, lab: Lab, student: str, folder: Path,
          stack_checks: StackChecks | None = quiet_stack_checks) -> LabResult:
    """One student's lab folder, start to end: what `make grade` does per student and lab."""
    if not folder.is_dir():
        result = LabResult(lab.short, student)
        result.problem = f"no folder {folder}: nothing submitted for {lab.id}"
        return result
    missing = missing_notebooks(lab, folder)
    if missing:
        result = LabResult(lab.short, student)
        result.problem = f"{folder} lacks {', '.join(missing)} (restore it from labs/{lab.id}/ or git)"
        return result
    submit(lab, student, folder)
    return autograde(api, lab, student, stack_checks)


def missing_notebooks(lab: Lab, folder: Path) -> list[str]:
    expected = {p.name for p in lab.source.glob("*.ipynb")}
    return sorted(expected - {p.name for p in folder.glob("*.ipynb")})
