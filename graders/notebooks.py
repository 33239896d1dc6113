"""The notebook half of grading: nbgrader generates the assignment from solutions/ (gradebook, locked cells,
hidden tests), autogrades each submission with per-cell timeouts, and writes feedback HTML."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI

from graders import nbconfig
from graders.course import GRADING_DIR, Lab
from graders.results import ExerciseResult, LabResult

RELEASE_FOR_GRADING = str(GRADING_DIR / "release")
SKIPPED_FILES = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")


class GradingError(RuntimeError):
    """nbgrader itself failed (not the student's answer)."""


def _log_tail(result: dict, lines: int = 25) -> str:
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    return "\n".join(text.strip().splitlines()[-lines:])


def prepare(labs: list[Lab], fresh: bool = True) -> NbGraderAPI:
    """A gradebook holding every lab's grade cells, built from solutions/ (a fresh one unless `fresh` is False:
    then `labs` are added to the existing gradebook and its graded submissions are kept)."""
    if fresh:
        shutil.rmtree(GRADING_DIR, ignore_errors=True)
    api = nbconfig.api(release_directory=RELEASE_FOR_GRADING)
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
                return "interrupted after the per-cell time limit (an endless loop, or waiting on something?)"
            if name == "SystemExit":
                return "the code called sys.exit() (or exit()); a notebook must not stop its own kernel"
            if name == "NameError":
                return f"{value}: run (and complete) the exercise cell above this check"
            return f"{name}: {value}" if value else name
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return f"the check printed to stderr, which counts as a failure: {_first_line(output.get('text', ''))}"
    return "no points (see the feedback HTML for the cell's output)"


def _test_cells(notebook: nbformat.NotebookNode) -> dict[str, list]:
    cells = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            cells[meta["grade_id"]] = cell.get("outputs", [])
    return cells


def autograde(api: NbGraderAPI, lab: Lab, student: str) -> LabResult:
    result = LabResult(lab=lab.short, student=student)
    os.environ["LLMOBS_GRADING"] = "1"  # inherited by the grading kernel: notebooks skip plots while graded
    outcome = api.autograde(lab.id, student, force=True, create=True)
    if not outcome["success"]:
        result.problem = f"nbgrader could not grade {lab.id} for {student}: {_first_line(_log_tail(outcome, 3))}"
        return result
    autograded = GRADING_DIR / "autograded" / student / lab.id
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gradebook:
        for notebook_file in sorted(autograded.glob("*.ipynb")):
            notebook = nbformat.read(notebook_file, as_version=4)
            outputs = _test_cells(notebook)
            try:
                submission = gradebook.find_submission_notebook(notebook_file.stem, lab.id, student)
            except MissingEntry:
                continue
            for grade in sorted(submission.grades, key=lambda g: g.cell.name):
                score = grade.score or 0.0
                message = "" if score >= grade.max_score else explain(outputs.get(grade.name, []))
                result.exercises.append(ExerciseResult(lab.short, grade.name, float(score), float(grade.max_score),
                                                       message))
    feedback = api.generate_feedback(lab.id, student, force=True)
    html = sorted((GRADING_DIR / "feedback" / student / lab.id).glob("*.html"))
    if feedback["success"] and html:
        result.feedback_html = str(html[0])
    return result


def missing_notebooks(lab: Lab, folder: Path) -> list[str]:
    expected = {p.name for p in lab.source.glob("*.ipynb")}
    return sorted(expected - {p.name for p in folder.glob("*.ipynb")})
