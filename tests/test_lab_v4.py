"""Lab V4 (tracing, exemplars and cost optimization): graded end to end against the live stack in one `make grade`
run over a class of four — the solutions score every notebook point, the released notebook scores 0 and grading
completes, a copy with typical mistakes loses exactly the points of the exercises it breaks (each with a message that
names the mistake), and a hostile copy costs only its own exercises. The live check finds the trace in the built-in
trace store (no Phoenix needed); with Phoenix installed, a last test runs that check against a real Phoenix.

The cheaper in-process tests run the notebook's cells with exec() to try many more wrong answers against the
exercises that need no stack (1, 2 and 4)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from graders import course, stackchecks
from graders.labcheck import LabCheckFailed
from graders.v4 import traces as v4_traces
from graders.v4.traces import TRACE_FILE
from stack import topology
from tests.otlp_collector import OtlpCollector
from stack.paths import run_dir
from stack.runner import processes
from stack.runner.services import phoenix_python, phoenix_spec
from tests import live
from tests import notebook_cells as cells, wrong_answers
from tests.classgrading import grade_class, start_class
from tests.conftest import LiveStack

V4 = course.select("v4")[0]
NOTEBOOK = f"{V4.id}.ipynb"
GRADING_TIMEOUT_SECONDS = 240
SOURCE = V4.source / NOTEBOOK
POINTS = cells.points(SOURCE)        # grade id -> points, from the notebook's nbgrader metadata
ANSWER_OF = cells.answer_of(SOURCE)  # check cell -> the answer cell it checks
LIVE_CHECK = "ex3 trace backend: the slow request's trace holds gateway and llmsim spans"


WRONG = wrong_answers.load(V4.short, SOURCE)  # tests/wrong_answers/v4.yaml
# One notebook with one mistake in seven different checks; the other six checks must keep their points.
GRADED_MUTATIONS = ("step span not made current", "no context propagation", "bottleneck of the average request",
                    "first exemplar, not the slowest", "load-test calls analysed", "savings not scaled to a month",
                    "first-token event at the last chunk")


def _source() -> nbformat.NotebookNode:
    return cells.read(SOURCE)


def _mutate(notebook: nbformat.NotebookNode, name: str) -> None:
    WRONG[name].plant(notebook)


def _write(notebook: nbformat.NotebookNode, folder: Path) -> None:
    """V4's folder holds data files beside the notebook: the copy takes them along."""
    shutil.copytree(V4.source, folder, ignore=shutil.ignore_patterns("student_*", ".ipynb_checkpoints"))
    cells.write(notebook, folder, NOTEBOOK)


def _hostile() -> nbformat.NotebookNode:
    notebook = _source()
    docstring = ('    """count, mean_s, p50_s, p95_s, total_s of each step\'s spans, '
                 'indexed classify, answer, format."""\n')
    cells.replace_once(notebook, "ex2_bottleneck_answer", docstring,  # ex2 (a): stops its kernel when called
                       docstring + "    import sys\n    sys.exit()\n")
    group = 'GROUP = ["application", "step", "model"]\n'
    cells.replace_once(notebook, "ex4_optimize_answer", group,  # ex4: floods, still right
                       group + 'print("\\n".join(f"debug line {n}" for n in range(100_000)))\n')
    notebook.cells.remove(cells.cell(notebook, "ex1_span_tree"))  # a deleted check is put back and scored
    cells.cell(notebook, "ex3_request_story").source = "pass"     # an emptied locked check is restored
    return notebook


# --- the class, graded once through `make grade`'s code path ----------------------------------------------------


@pytest.fixture(scope="module")
def grades(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """student -> {"lab": the grades.json entry, "exercises": exercise -> (points, max points, message)}."""
    live.heal_faults()
    class_dir = tmp_path_factory.mktemp("class")
    start_class(V4, class_dir)
    mistakes = _source()
    for name in GRADED_MUTATIONS:
        _mutate(mistakes, name)
    _write(mistakes, class_dir / "mistakes" / V4.id)
    _write(_hostile(), class_dir / "hostile" / V4.id)
    started = time.monotonic()
    try:
        graded = grade_class(V4, class_dir, GRADING_TIMEOUT_SECONDS)
    finally:
        live.heal_faults()
    print(f"graded 4 lab V4 notebooks in {time.monotonic() - started:.1f}s")
    return graded


@pytest.mark.stack
def test_solutions_score_every_notebook_point(grades: dict[str, dict]) -> None:
    lab = grades["solutions"]["lab"]
    assert lab["problem"] is None
    exercises = grades["solutions"]["exercises"]
    assert {name: most for name, (_, most, _) in exercises.items() if name != LIVE_CHECK} == POINTS
    lost = {name: message for name, (points, most, message) in exercises.items()
            if points < most and name != LIVE_CHECK}
    assert not lost, lost
    assert lab["max_score"] == sum(POINTS.values()) + 2 == 33


@pytest.mark.stack
def test_solutions_score_full_marks_with_the_built_in_trace_store(grades: dict[str, dict]) -> None:
    """No Phoenix: the live check finds the trace in the trace store that plain `make up` starts."""
    points, most, message = grades["solutions"]["exercises"][LIVE_CHECK]
    assert (points, most, message) == (2, 2, "")
    assert grades["solutions"]["lab"]["score"] == grades["solutions"]["lab"]["max_score"] == 33


@pytest.mark.stack
def test_released_notebook_scores_zero_and_grading_completes(grades: dict[str, dict]) -> None:
    released = grades["released"]
    assert released["lab"]["problem"] is None
    assert set(released["exercises"]) == set(grades["solutions"]["exercises"]), "every exercise is graded"
    assert released["lab"]["score"] == 0
    for name, (_, _, message) in released["exercises"].items():
        assert message, name
        if name != LIVE_CHECK:  # one line naming what to write, not a bare NotImplementedError
            assert message.startswith("not attempted yet: implement "), (name, message)


@pytest.mark.stack
def test_each_mistake_costs_its_own_check_with_a_message_that_names_it(grades: dict[str, dict]) -> None:
    mistakes = grades["mistakes"]["exercises"]
    broken = {WRONG[name].exercise for name in GRADED_MUTATIONS}
    assert len(broken) == len(GRADED_MUTATIONS) >= 5
    for name in GRADED_MUTATIONS:
        mutation = WRONG[name]
        points, _, message = mistakes[mutation.exercise]
        assert points == 0, f"{mutation.exercise} kept its points despite {name!r}"
        assert mutation.says in message, f"{mutation.exercise} ({name}): {message!r} does not say {mutation.says!r}"
    kept = {name: message for name, (points, most, message) in mistakes.items()
            if name not in broken and name != LIVE_CHECK and points < most}
    assert not kept, f"mistakes elsewhere cost these checks points: {kept}"
    assert len(set(POINTS) - broken) >= 4, "enough checks are left untouched to show the others keep theirs"


@pytest.mark.stack
def test_hostile_notebook_costs_only_the_exercises_it_breaks(grades: dict[str, dict]) -> None:
    hostile = grades["hostile"]["exercises"]
    points, _, message = hostile["ex2_step_latency"]
    assert points == 0 and "sys.exit()" in message, message
    kept = {name: message for name, (points, most, message) in hostile.items()
            if name not in ("ex2_step_latency", LIVE_CHECK) and points < most}
    assert not kept, f"the hostile notebook cost other checks their points: {kept}"
    autograded = course.GRADING_DIR / "autograded" / "hostile" / V4.id / NOTEBOOK
    graded = cells.read(autograded)
    assert "was missing from the submission" in cells.cell(graded, "ex1_span_tree").source
    assert cells.cell(graded, "ex3_request_story").source == cells.cell(_source(), "ex3_request_story").source
    flood = "".join(o.get("text", "") for o in cells.cell(graded, "ex4_optimize_answer").outputs)
    assert "debug line 0" in flood and "debug line 99999" not in flood and len(flood.splitlines()) <= 250


# --- in-process: the check cells against many wrong answers, without nbgrader ------------------------------------


def _run(notebook: nbformat.NotebookNode, check: str) -> None:
    """The setup cell, the data cell of the exercise (if any), its answer and one check cell."""
    exercise = check[:3]
    ids = ["setup", *(["ex2_data"] if exercise == "ex2" else []), ANSWER_OF[check], check]
    cells.run(notebook, ids, namespace={"__name__": "__main__", "display": lambda *_: None})


OFFLINE_CHECKS = [name for name in POINTS if not name.startswith("ex3")]


@pytest.mark.parametrize("check", OFFLINE_CHECKS)
def test_each_offline_check_passes_with_only_the_setup_and_its_own_answer(check: str, in_lab_folder: Path) -> None:
    _run(_source(), check)
    assert not list(in_lab_folder.iterdir()), "check cells must write only to temporary folders"


@pytest.mark.wrong_answer
@pytest.mark.parametrize("name", [n for n, m in WRONG.items() if not m.exercise.startswith("ex3")])
def test_check_cells_catch_a_plausible_mistake(name: str, in_lab_folder: Path) -> None:
    mutation = WRONG[name]
    notebook = _source()
    _mutate(notebook, name)
    with pytest.raises(AssertionError) as failure:
        _run(notebook, mutation.exercise)
    assert mutation.says in cells.first_failure_line(failure), cells.first_failure_line(failure)


def test_released_notebook_is_the_release_of_the_solutions() -> None:
    cells.assert_released_from(V4.source / NOTEBOOK, course.LABS_DIR / V4.id / NOTEBOOK, V4.short)


# --- the live check against a real Phoenix (only where the `traces` extra is installed) ---------------------------


@pytest.mark.stack
def test_live_check_awards_its_points_when_the_trace_reaches_phoenix(
        grades: dict[str, dict], stack: LiveStack, otlp_collector: OtlpCollector, tmp_path: Path) -> None:
    python = phoenix_python()
    if python is None:
        pytest.skip("Phoenix is not installed (`make traces-backend`, or LLMOBS_PHOENIX_PYTHON=<a python with "
                    "arize-phoenix>): the live check is tested with the built-in trace store only")
    spec = phoenix_spec(stack.run, python)
    processes.start(spec, stack.run)
    forwarding = otlp_collector.forward_to
    try:
        live.eventually(lambda: httpx.get(spec.health_url, timeout=2).status_code == 200, 120, "Phoenix healthy")
        otlp_collector.forward_to = topology.load()["phoenix"].url + "/v1/traces"  # the stack's spans go there too
        reply = httpx.post(f"{live.url('gateway')}/v1/agent/workflow", timeout=30, json={
            "question": "Did my trace arrive?", "attribution": {"user_id": "t", "department": "research",
                                                                  "application": "agent"}})
        assert reply.status_code == 200, reply.text
        request_id = reply.json()["request_id"]
        log = run_dir() / "logs" / "gateway.log"
        trace_id = live.eventually(lambda: next((json.loads(line)["trace_id"] for line in log.read_text().splitlines()
                                                 if request_id in line and line.startswith("{")), None),
                                   5, "the request's log line")
        (tmp_path / TRACE_FILE).write_text(json.dumps({"request_id": request_id, "trace_id": trace_id}))
        results = stackchecks.run(V4, tmp_path)
        assert [(r.points, r.max_points, r.message) for r in results] == [(2.0, 2.0, "")], results
    finally:
        otlp_collector.forward_to = forwarding
        processes.stop(stack.run, "phoenix")


STORY_WRONG = [name for name, wrong in WRONG.items() if wrong.exercise == "ex3_request_story"]


@pytest.mark.wrong_answer
@pytest.mark.parametrize("name", STORY_WRONG)
def test_request_story_check_catches_its_wrong_answers(name: str, tmp_path: Path) -> None:
    """Exercise 3's hidden log (several interleaved traces, non-JSON lines, a message naming another trace), run
    without the stack: a right answer passes, each wrong answer fails with a message that names the mistake."""
    trace = "ab" * 16
    steps = [("classify", 80.0), ("answer", 1900.0), ("format", 95.0)]
    lines = [json.dumps({"event": "llm_call", "step": step, "duration_ms": ms, "trace_id": trace, "span_id": f"{n:016x}",
                         "timestamp": f"2026-11-23T10:00:0{n}.000000Z"}) for n, (step, ms) in enumerate(steps)]
    log = tmp_path / "gateway.log"
    log.write_text("\n".join(["INFO: started", *reversed(lines)]) + "\n")
    batch = v4_traces.Batch(0.0, 0.0, 0.0, "r", trace, ())

    def request_story(notebook: nbformat.NotebookNode):  # noqa: ANN202
        namespace = {"__name__": "__main__", "json": json, "Path": Path, "httpx": httpx}
        return cells.run(notebook, [ANSWER_OF["ex3_request_story"]], namespace)["request_story"]

    v4_traces.check_request_story(request_story(_source()), batch, log, hidden=True)
    wrong = _source()
    WRONG[name].plant(wrong)
    with pytest.raises(LabCheckFailed) as failure:
        v4_traces.check_request_story(request_story(wrong), batch, log, hidden=True)
    assert WRONG[name].says in str(failure.value), str(failure.value)
