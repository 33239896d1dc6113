"""`make grade` and `make release` as an instructor and a student use them (the V1 lab as the example)."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from graders import course
from graders.release import differences, release
from stack.paths import REPO_ROOT

V1 = course.select("v1")[0]
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def _grade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graders", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_labs_folder_is_what_solutions_release(tmp_path: Path) -> None:
    released = tmp_path / "labs"
    release(course.existing_labs(), released)
    assert differences(course.existing_labs(), released, course.LABS_DIR) == [], "run `make release`"


def test_released_notebooks_hold_no_solutions_or_hidden_tests() -> None:
    for notebook_path in course.LABS_DIR.glob("*/*.ipynb"):
        text = notebook_path.read_text()
        assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text, notebook_path


def test_unknown_lab_and_missing_folder_are_clear_errors() -> None:
    unknown = _grade("--lab", "v9")
    assert unknown.returncode == 2 and "no lab called 'v9'" in unknown.stdout and "v1" in unknown.stdout
    missing = _grade("--submissions", "/nonexistent/class")
    assert missing.returncode == 2 and "no such folder" in missing.stdout
    assert "Traceback" not in unknown.stdout + unknown.stderr + missing.stdout + missing.stderr


def _hidden_test_lines(notebook: Path) -> list[str]:
    """Lines that only occur inside hidden-test blocks (so finding one in feedback means a leak)."""
    source = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    visible = {line.strip() for line in HIDDEN.sub("", source).splitlines()}
    return [line.strip() for block in HIDDEN.findall(source) for line in block.splitlines()
            if len(line.strip()) > 12 and line.strip() not in visible]


def test_grading_a_class_writes_csv_feedback_and_hides_hidden_tests(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    shutil.copytree(V1.source, submitted / "ada" / V1.id)
    shutil.copytree(course.LABS_DIR / V1.id, submitted / "bob" / V1.id)
    (submitted / "cyd").mkdir()  # submitted nothing
    result = _grade("--lab", "v1", "--submissions", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, "the grading kernels' log warnings reach the terminal"
    rows = {row["student"]: row for row in csv.DictReader((course.BUILD_DIR / "grades.csv").open())}
    assert set(rows) == {"ada", "bob", "cyd"}
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) > 0
    assert float(rows["bob"]["score"]) == 0
    assert "nothing submitted" in rows["cyd"]["problem"]
    hidden = _hidden_test_lines(V1.source / f"{V1.id}.ipynb")
    assert hidden, "the V1 solutions should have hidden tests"
    for student in ("ada", "bob"):
        feedback = Path(rows[student]["feedback_html"])
        assert feedback.is_file()
        text = html.unescape(re.sub(r"<[^>]+>", "", feedback.read_text()))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"hidden tests leak into {student}'s feedback: {leaked[:2]}"


def test_strict_mode_fails_when_points_are_lost_and_grades_json_explains_why() -> None:
    result = _grade("--lab", "v1", "--strict")
    assert result.returncode == 1, result.stdout
    grades = json.loads(course.GRADES_JSON.read_text())["labs"]
    assert grades[0]["score"] == 0 and grades[0]["max_score"] > 0
    assert all(exercise["message"] for exercise in grades[0]["exercises"]), "every lost point needs a reason"
    assert "v1" in result.stdout and "total" in result.stdout
