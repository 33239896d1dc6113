"""`make grade SUBMISSIONS=...` on a small V1 class, as an instructor runs it: graded in parallel with the scores of
grading each submission alone, a re-run grades only what changed, a hanging or crashing notebook is reported in the
summary with why, nbgrader's course layout in and out (its own generate_feedback works on the result), the LMS CSV.

The class is graded once for the module, in its own build folder (one gradebook per build folder)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from graders import course
from stack.paths import REPO_ROOT
from tests import notebook_cells as cells, wrong_answers

LAB = course.select("v1")[0]
NOTEBOOK = f"{LAB.id}.ipynb"
SOURCE = LAB.source / NOTEBOOK
WRONG = wrong_answers.load(LAB.short, SOURCE)
HANG_TIMEOUT_SECONDS = 40  # the class run's per-lab limit in this test: above a V1 grading on a loaded machine
KERNEL_DIES = "import os\nos._exit(3)\n"
# three cells each under the 30 s cell limit: nothing to interrupt, but the lab outlasts the class run's limit
SLOW_CELL = "import time\ntime.sleep(18)\n"


def _submit(course_dir: Path, student: str, notebook: nbformat.NotebookNode) -> Path:
    return cells.write(notebook, course_dir / "submitted" / student / LAB.id, NOTEBOOK)


def _with_cell(source: str, copies: int = 1) -> nbformat.NotebookNode:
    """The solution with cells of the student's own right after the setup cell."""
    notebook = cells.read(SOURCE)
    for _ in range(copies):
        notebook.cells.insert(1, nbformat.v4.new_code_cell(source))
    return notebook


def _wrong(name: str) -> nbformat.NotebookNode:
    notebook = cells.read(SOURCE)
    WRONG[name].plant(notebook)
    return notebook


def _grade(build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graders", "--lab", "v1", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200", "LLMOBS_BUILD_DIR": str(build)})


def _grades(build: Path) -> dict[str, dict]:
    return {lab["student"]: lab for lab in json.loads((build / "grades.json").read_text())["labs"]}


def _scores(lab: dict) -> dict[str, tuple[float, str]]:
    return {e["exercise"]: (e["points"], e["message"]) for e in lab["exercises"]}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """(course folder, build folder, the first run) for ada (solution), bob (a wrong answer), dan (a cell that kills
    its kernel) and eve (a notebook slower than the class run's limit), graded on two processes. (A cell that swallows
    interrupts costs only its own cell, in a class run as alone: tests/test_lab_v1.py's hostile notebook.)"""
    course_dir, build = tmp_path_factory.mktemp("course"), tmp_path_factory.mktemp("build")
    _submit(course_dir, "ada", cells.read(SOURCE))
    _submit(course_dir, "bob", _wrong("cost per thousand tokens"))
    _submit(course_dir, "dan", _with_cell(KERNEL_DIES))
    _submit(course_dir, "eve", _with_cell(SLOW_CELL, copies=3))
    first = _grade(build, "--submissions", str(course_dir), "--workers", "2", "--timeout", str(HANG_TIMEOUT_SECONDS))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return course_dir, build, first


def test_parallel_class_scores_are_those_of_grading_each_alone(graded_class, tmp_path: Path) -> None:
    course_dir, build, _ = graded_class
    together = _grades(build)
    assert together["ada"]["score"] == together["ada"]["max_score"] > 0
    assert 0 < together["bob"]["score"] < together["bob"]["max_score"]
    for student in ("ada", "bob"):
        alone_build = tmp_path / f"alone-{student}"
        alone = _grade(alone_build, "--notebooks", str(course_dir / "submitted" / student), "--student", student)
        assert alone.returncode == 0, alone.stdout[-3000:]
        assert _scores(_grades(alone_build)[student]) == _scores(together[student]), student


def test_summary_says_which_submissions_failed_and_why_without_a_line_per_check(graded_class) -> None:
    _, build, first = graded_class
    grades = _grades(build)
    assert f"stopped after {HANG_TIMEOUT_SECONDS} s" in grades["eve"]["problem"]
    assert grades["dan"]["problem"] and grades["dan"]["score"] == 0
    summary = " ".join(first.stdout.split())
    assert "could not be graded (2)" in summary
    assert f"eve v1: grading stopped after {HANG_TIMEOUT_SECONDS} s" in summary
    assert "dan v1: " + " ".join(grades["dan"]["problem"].split())[:40] in summary
    assert "class mean per exercise" in summary and "below 50%" in summary
    assert "why points were lost" not in first.stdout, "a class run prints a summary, not a table line per check"
    assert "Traceback" not in first.stdout + first.stderr


def test_nbgrader_layout_in_and_out_and_the_lms_csv(graded_class) -> None:
    _, build, _ = graded_class
    grading = build / "grading"
    grades = _grades(build)
    assert (grading / "autograded" / "ada" / LAB.id / NOTEBOOK).is_file()
    with Gradebook(f"sqlite:///{grading / 'gradebook.db'}") as gradebook:  # what formgrader reads
        for student in ("ada", "bob"):
            assert gradebook.find_submission(LAB.id, student).score == grades[student]["score"], student
    feedback = grading / "feedback" / "bob" / LAB.id / f"{LAB.id}.html"
    feedback.unlink()
    nbgrader = Path(sys.executable).with_name("nbgrader")
    again = subprocess.run([str(nbgrader), "generate_feedback", LAB.id, "--student", "bob", "--force"], cwd=grading,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and feedback.is_file(), again.stdout[-2000:] + again.stderr[-2000:]
    rows = list(csv.DictReader((build / "lms-grades.csv").open()))
    assert list(rows[0]) == ["student", "lab", "points", "max"]
    assert {(r["student"], r["lab"], float(r["points"]), float(r["max"])) for r in rows} == {
        (s, "v1", g["score"], grades["ada"]["max_score"]) for s, g in grades.items()}


def test_a_rerun_grades_only_the_submission_that_changed(graded_class) -> None:
    course_dir, build, _ = graded_class
    ada_autograded = build / "grading" / "autograded" / "ada" / LAB.id / NOTEBOOK
    ada_graded_at = ada_autograded.stat().st_mtime_ns
    shutil.copy(SOURCE, course_dir / "submitted" / "bob" / LAB.id / NOTEBOOK)  # bob fixes his answer
    rerun = _grade(build, "--submissions", str(course_dir), "--workers", "2", "--timeout", str(HANG_TIMEOUT_SECONDS))
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "graded 1 submission(s)" in rerun.stdout and "3 unchanged" in rerun.stdout, rerun.stdout[-1500:]
    grades = _grades(build)
    assert grades["bob"]["score"] == grades["bob"]["max_score"]
    assert ada_autograded.stat().st_mtime_ns == ada_graded_at, "ada's unchanged submission was graded again"
