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
from nbformat.v4 import new_output

from graders import course, notebooks, outputcap, runs
from graders.release import differences, release
from graders.results import ExerciseResult
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


def test_lab_names_are_accepted_in_any_case_as_the_docs_write_them() -> None:
    assert course.select("V1") == course.select("v1") == course.select("V1_Logging_Cost") == [V1]
    assert course.select("V1, v1") == [V1]


def test_grade_table_lists_exercises_by_number_then_notebook_order() -> None:
    in_notebook = ["ex1_a", "ex10_alerts", "ex11_routes", "ex12_quality", "ex2_cost", "ex2_cost_hidden", "summary"]
    assert notebooks.in_exercise_order(in_notebook) == [
        "ex1_a", "ex2_cost", "ex2_cost_hidden", "ex10_alerts", "ex11_routes", "ex12_quality", "summary"]
    assert notebooks.in_exercise_order(["ex3_b", "ex3_a"]) == ["ex3_b", "ex3_a"], "same exercise: notebook order"


def _feedback_text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text()))


def _feedback_total(text: str) -> tuple[float, float]:
    score = re.search(r"\(Score: ([\d.]+) / ([\d.]+)\)", text)
    assert score, "the feedback page shows no total"
    return float(score.group(1)), float(score.group(2))


def test_feedback_shows_the_stack_checks_and_the_same_total_as_the_grades(tmp_path: Path) -> None:
    """A V2-V4 student's feedback must list the checks run against the stack too, not only the notebook's."""
    stack = [ExerciseResult("v1", "exporter serves llm_requests_total", 0.0, 3.0,
                            "expected a counter at 127.0.0.1:9464, got nothing | hint: start_http_server", "stack"),
             ExerciseResult("v1", "alert rules load in Prometheus", 2.0, 2.0, "", "stack")]
    api = notebooks.prepare([V1], feedback_dir=tmp_path / "feedback")
    notebooks.submit(V1, "dee", V1.source)
    result = notebooks.autograde(api, V1, "dee", stack_checks=lambda lab, folder: stack)
    assert result.problem is None and result.exercises[-2:] == stack
    assert result.score == result.max_score - 3 and Path(result.feedback_html).is_relative_to(tmp_path)
    text = _feedback_text(Path(result.feedback_html))
    assert _feedback_total(text) == (result.score, result.max_score)
    for exercise in result.exercises:
        assert exercise.exercise in text, f"{exercise.exercise} is missing from the feedback"
    assert "expected a counter at 127.0.0.1:9464, got nothing | hint: start_http_server" in text


def _hidden_test_lines(notebook: Path) -> list[str]:
    """Lines that only occur inside hidden-test blocks (so finding one in feedback means a leak)."""
    source = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    visible = {line.strip() for line in HIDDEN.sub("", source).splitlines()}
    return [line.strip() for block in HIDDEN.findall(source) for line in block.splitlines()
            if len(line.strip()) > 12 and line.strip() not in visible]


def test_grading_a_class_writes_csv_feedback_and_hides_hidden_tests(tmp_path: Path) -> None:
    submitted = tmp_path / "class-of-2026" / "submitted"
    shutil.copytree(V1.source, submitted / "ada" / V1.id)
    shutil.copytree(course.LABS_DIR / V1.id, submitted / "bob" / V1.id)
    (submitted / "cyd").mkdir()  # submitted nothing
    result = _grade("--lab", "v1", "--submissions", str(submitted.parent))
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
        assert _feedback_total(text) == (float(rows[student]["score"]), float(rows[student]["max_score"]))

    # Grading again (here the solutions, as an instructor checks a release) must not destroy the class's results.
    class_run = Path(rows["ada"]["feedback_html"]).parents[3]
    assert class_run.parent == runs.RUNS_DIR and "class-of-2026" in class_run.name
    assert f"this run: {class_run}" in " ".join(result.stdout.split())
    again = _grade("--lab", "V1", "--notebooks", "solutions", "--run", "release-check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "this run: " in again.stdout and "release-check" in again.stdout
    for student in ("ada", "bob"):
        assert Path(rows[student]["feedback_html"]).is_file(), "a later run deleted the class's feedback"
    assert {row["student"] for row in csv.DictReader((class_run / "grades.csv").open())} == {"ada", "bob", "cyd"}
    assert json.loads((class_run / "grades.json").read_text())["labs"][0]["student"] == "ada"
    assert runs.LATEST.resolve() == runs.RUNS_DIR / "release-check"
    assert json.loads(course.GRADES_JSON.read_text()) == json.loads((runs.LATEST / "grades.json").read_text())
    taken = _grade("--lab", "v1", "--notebooks", "solutions", "--run", "release-check")
    assert taken.returncode == 2 and "already exists" in taken.stdout and "Traceback" not in taken.stdout


def test_strict_mode_fails_when_points_are_lost_and_grades_json_explains_why() -> None:
    result = _grade("--lab", "V1", "--strict")
    assert result.returncode == 1, result.stdout
    grades = json.loads(course.GRADES_JSON.read_text())["labs"]
    assert grades[0]["score"] == 0 and grades[0]["max_score"] > 0
    assert all(exercise["message"] for exercise in grades[0]["exercises"]), "every lost point needs a reason"
    assert "v1" in result.stdout and "total" in result.stdout


def test_output_over_the_byte_limits_is_cut_but_never_what_scores_a_cell() -> None:
    """Printing megabytes must neither reach the feedback nor hide an error (which scores the check cell 0)."""
    budget = outputcap.OutputBudget(per_cell=1_000, per_notebook=1_500)
    budget.start_cell()
    flood = new_output("stream", name="stdout", text="x" * 5_000)
    assert budget.admit(flood) and flood.text == "x" * 1_000
    assert not budget.admit(new_output("stream", name="stdout", text="more")), "a full cell keeps no more output"
    error = new_output("error", ename="LabCheckFailed", evalue="cost: expected 0.5, got 5.0" + " pad" * 10_000,
                       traceback=["line"] * 5_000)
    stderr = new_output("stream", name="stderr", text="oops")
    assert budget.admit(error) and budget.admit(stderr), "errors and stderr must survive: nbgrader scores them 0"
    assert error.evalue.startswith("cost: expected 0.5, got 5.0") and outputcap.size(error) <= 4_000
    assert budget.cell_cut > 50_000

    budget = outputcap.OutputBudget(per_cell=1_000, per_notebook=1_500)
    for cell_output in ("a" * 900, "b" * 900):
        budget.start_cell()
        budget.admit(new_output("stream", name="stdout", text=cell_output))
    assert budget.notebook_used == 1_500, "the notebook's limit is reached before the second cell's"
    assert outputcap.cut_marker(budget.cell_cut) == "[output cut: 300 bytes]"
