"""Lab V1 (structured JSON logging and per-request cost): the solutions score 100 %, the released stubs score 0,
plausible mistakes lose their exercise's points with a message that helps, and hostile notebooks (endless loop,
sys.exit, a loop that swallows the interrupt, 50 MB printed at once, a flood of lines, deleted or emptied check
cells) cost only the exercises they touch.

Grading goes through graders.notebooks (nbgrader, into build/grading/) exactly as `make grade` does; the gradebook
is prepared once for the module and each notebook is graded once. The cheaper in-process tests run the notebook's
cells with exec() to try many more wrong answers against the check cells."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from graders import notebooks
from graders.course import LABS_DIR, select
from graders.results import ExerciseResult, LabResult
from tests import notebook_cells as cells, wrong_answers
from tests.classgrading import short_cell_timeout

LAB = select("v1")[0]
NOTEBOOK = f"{LAB.id}.ipynb"
SOURCE = LAB.source / NOTEBOOK
RELEASED = LABS_DIR / LAB.id / NOTEBOOK

POINTS = cells.points(SOURCE)        # grade id -> points, from the notebook's nbgrader metadata
ANSWER_OF = cells.answer_of(SOURCE)  # check cell -> the answer cell it checks

WRONG = wrong_answers.load(LAB.short, SOURCE)  # tests/wrong_answers/v1.yaml

HOSTILE_TIMEOUT_SECONDS = 8
SWALLOWS_INTERRUPTS = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass\n"

# One mutation per exercise for the nbgrader run; ex4 stays correct (its check cell is deleted) and keeps its points.
GRADED_MUTATIONS = ["raw user id logged", "cost per thousand tokens", "failed calls not recorded in the CSV",
                    "error rate over successful calls only", "request id matched as text",
                    "TTFT measured to the last content chunk", "cost summed instead of the saved cost"]


def _source() -> nbformat.NotebookNode:
    return cells.read(SOURCE)


def _mutate(notebook: nbformat.NotebookNode, name: str) -> None:
    WRONG[name].plant(notebook)


@pytest.fixture(scope="module")
def api():
    """One gradebook for the whole module, built from solutions/ as `make grade` builds it."""
    return notebooks.prepare([LAB])


def _autograde(api, student: str, folder: Path) -> LabResult:
    notebooks.submit(LAB, student, folder)
    result = notebooks.autograde(api, LAB, student)
    assert result.problem is None, result.problem
    assert {e.exercise: e.max_points for e in result.exercises} == POINTS
    return result


def _grade(api, student: str, folder: Path) -> dict[str, ExerciseResult]:
    return {e.exercise: e for e in _autograde(api, student, folder).exercises}


def test_solutions_score_full_marks(api) -> None:
    graded = _grade(api, "test-v1-solutions", LAB.source)
    assert {name: e.points for name, e in graded.items()} == POINTS, {n: e.message for n, e in graded.items()}


def test_released_stubs_score_zero_and_say_not_attempted(api) -> None:
    cells.assert_released_from(SOURCE, RELEASED, LAB.short)
    graded = _grade(api, "test-v1-stubs", RELEASED.parent)
    for name, exercise in graded.items():
        assert exercise.points == 0, name
        assert exercise.message.startswith("not attempted yet: implement "), (name, exercise.message)


def test_plausible_mistakes_lose_their_points_with_a_useful_message(api, tmp_path: Path) -> None:
    notebook = _source()
    for name in GRADED_MUTATIONS:
        _mutate(notebook, name)
    # a deleted check of a right answer is restored: full marks
    notebook.cells.remove(cells.cell(notebook, "ex4_cost_by"))
    graded = _grade(api, "test-v1-mistakes", cells.write(notebook, tmp_path / "mistakes", NOTEBOOK))
    mutated = {WRONG[name].exercise: name for name in GRADED_MUTATIONS}
    assert len(mutated) >= 7
    for exercise, result in graded.items():
        if exercise in mutated:
            phrase = WRONG[mutated[exercise]].says
            assert result.points == 0, (exercise, mutated[exercise])
            assert phrase in result.message, (exercise, mutated[exercise], result.message)
        else:
            assert result.points == result.max_points, (exercise, result.message)
    autograded = cells.read(notebooks.GRADING_DIR / "autograded" / "test-v1-mistakes" / LAB.id / NOTEBOOK)
    assert "was missing from the submission" in cells.cell(autograded, "ex4_cost_by").source


def test_hostile_notebook_costs_only_the_exercises_it_breaks(api, tmp_path: Path) -> None:
    notebook = _source()
    notebook.cells = [c for c in notebook.cells if not c.id.endswith("_try")]  # optional demos re-call the answers
    cells.replace_once(notebook, "ex1_json_formatter_answer", "    return hashlib.sha256(",  # ex1: endless loop
                       "    while True:\n        pass\n    return hashlib.sha256(")
    cells.replace_once(notebook, "ex2_request_cost_answer", "    if model not in prices:\n",  # ex2: exits the kernel
                       "    sys.exit()\n    if model not in prices:\n")
    cells.replace_once(notebook, "ex3_logging_client_answer",  # ex3: 100k lines, then broken
                       "        self.http = http\n",
                       "        print('\\n'.join(f'debug line {n}' for n in range(100_000)))\n"
                       "        self.http = None\n")
    _mutate(notebook, "requests counted over successful calls only")   # ex4: wrong answer, check cell deleted
    notebook.cells.remove(cells.cell(notebook, "ex4_cost_by"))
    _mutate(notebook, "error rate over successful calls only")         # ex5: wrong answer, check cell emptied
    cells.cell(notebook, "ex5_top_and_error_rate").source = "pass"
    # A scratch cell of the student's own that swallows the interrupt: the kernel must be restarted, and every
    # later exercise still graded on the state the cells before it built.
    scratch = nbformat.v4.new_code_cell(SWALLOWS_INTERRUPTS, id="scratch_loop")
    notebook.cells.insert(notebook.cells.index(cells.cell(notebook, "ex1_json_formatter")) + 1, scratch)
    cells.replace_once(notebook, "ex6_request_story_answer", "def request_story(",  # ex6: right, but 50 MB printed
                       "print('x' * 50_000_000)\n\n\ndef request_story(")
    # ex7 and ex8 are left alone and must keep their points.
    folder = cells.write(notebook, tmp_path / "hostile", NOTEBOOK)

    with short_cell_timeout(api, HOSTILE_TIMEOUT_SECONDS):
        result = _autograde(api, "test-v1-hostile", folder)
    graded = {e.exercise: e for e in result.exercises}

    messages = {name: e.message for name, e in graded.items()}
    assert graded["ex1_json_formatter"].points == 0 and "time limit" in messages["ex1_json_formatter"], messages
    assert "ignored the interrupt" not in messages["ex1_json_formatter"], "a loop that stops must not restart"
    assert graded["ex2_request_cost"].points == 0 and "sys.exit()" in messages["ex2_request_cost"], messages
    assert graded["ex3_logging_client"].points == 0 and "provider calls made" in messages["ex3_logging_client"]
    assert graded["ex4_cost_by"].points == 0 and "failed calls count as requests too" in messages["ex4_cost_by"]
    assert graded["ex5_top_and_error_rate"].points == 0 and "divide by ALL calls" in messages["ex5_top_and_error_rate"]
    for untouched in ("ex6_request_story", "ex7_streamed_call", "ex8_gateway_log"):
        assert graded[untouched].points == POINTS[untouched], messages

    autograded = cells.read(notebooks.GRADING_DIR / "autograded" / "test-v1-hostile" / LAB.id / NOTEBOOK)
    restored = cells.cell(autograded, "ex4_cost_by").source
    assert "was missing from the submission" in restored and "check_cost_by" in restored
    emptied = "ex5_top_and_error_rate"
    assert cells.cell(autograded, emptied).source == cells.cell(_source(), emptied).source
    flood = "".join(o.get("text", "") for o in cells.cell(autograded, "ex3_logging_client").outputs)
    assert "debug line 0" in flood and "debug line 99999" not in flood and len(flood.splitlines()) <= 250
    stuck = [o for o in cells.cell(autograded, "scratch_loop").outputs if o.output_type == "error"]
    assert [o.ename for o in stuck] == ["CellTimeoutError"], cells.cell(autograded, "scratch_loop").outputs
    assert "ignored the interrupt" in notebooks.explain(stuck), "the student must learn why the kernel restarted"

    huge = cells.cell(autograded, "ex6_request_story_answer").outputs
    shown = "".join(o.get("text", "") for o in huge)
    assert shown.startswith("xxxx") and len(shown) <= 100_000, len(shown)
    assert any("[output cut: " in o.get("data", {}).get("text/plain", "") for o in huge), huge
    graded_file = notebooks.GRADING_DIR / "autograded" / "test-v1-hostile" / LAB.id / NOTEBOOK
    assert graded_file.stat().st_size < 3_000_000, "the 50 MB print reached the autograded notebook"
    feedback = Path(result.feedback_html)
    assert feedback.stat().st_size < 3_000_000 and "[output cut: " in feedback.read_text()


# --- in-process: the check cells against many wrong answers, without nbgrader ------------------------------------

def _run(notebook: nbformat.NotebookNode, exercise: str) -> None:
    """Setup cell, then this exercise's answer and check cell only: each exercise stands on its own."""
    cells.run(notebook, ("setup", ANSWER_OF[exercise], exercise))


@pytest.mark.parametrize("exercise", list(POINTS))
def test_each_exercise_passes_with_only_the_setup_and_its_own_answer(exercise: str, in_lab_folder: Path) -> None:
    _run(_source(), exercise)
    assert not [p for p in in_lab_folder.iterdir()], "check cells must write only to temporary folders"


@pytest.mark.wrong_answer
@pytest.mark.parametrize("name", list(WRONG))
def test_check_cells_catch_a_plausible_mistake(name: str, in_lab_folder: Path) -> None:
    wrong = WRONG[name]
    notebook = _source()
    wrong.plant(notebook)
    with pytest.raises(AssertionError) as failure:
        _run(notebook, wrong.exercise)
    assert wrong.says in cells.first_failure_line(failure), cells.first_failure_line(failure)


@pytest.mark.parametrize("exercise", list(POINTS))
def test_an_untouched_stub_fails_its_check_cell_in_one_line_naming_the_function(exercise: str,
                                                                                 in_lab_folder: Path) -> None:
    released = cells.read(RELEASED)
    with pytest.raises(AssertionError) as failure:
        cells.run(released, ("setup", ANSWER_OF[exercise], exercise))
    message = str(failure.value).strip()
    assert message.startswith("not attempted yet: implement ") and "\n" not in message, message
    function = message.removeprefix("not attempted yet: implement ").split(" ")[0].split(".")[-1]
    assert f"def {function}(" in cells.cell(released, ANSWER_OF[exercise]).source, message
