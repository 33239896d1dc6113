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
from dataclasses import dataclass
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
from tests import notebook_cells as cells
from tests.classgrading import grade_class, start_class
from tests.conftest import LiveStack

V4 = course.select("v4")[0]
NOTEBOOK = f"{V4.id}.ipynb"
GRADING_TIMEOUT_SECONDS = 240
SOURCE = V4.source / NOTEBOOK
POINTS = cells.points(SOURCE)        # grade id -> points, from the notebook's nbgrader metadata
ANSWER_OF = cells.answer_of(SOURCE)  # check cell -> the answer cell it checks
LIVE_CHECK = "ex3 trace backend: the slow request's trace holds gateway and llmsim spans"


@dataclass(frozen=True)
class Mutation:
    exercise: str  # the graded check that must lose its points
    old: str       # text of the exercise's answer cell ...
    new: str       # ... and its replacement
    says: str      # a phrase the check's message must contain


MUTATIONS = {
    "step span not made current": Mutation(
        "ex1_span_tree", 'with tracer.start_as_current_span(f"step {step}"', 'with tracer.start_span(f"step {step}"',
        "make the step span the current span"),
    "no context propagation": Mutation(
        "ex1_propagation_errors", "        propagate.inject(headers)\n", "", "not in your trace"),
    "user id on the spans": Mutation(
        "ex1_span_attributes", '"llm.step": step, "llm.department"', '"llm.step": step, "enduser.id": '
        'attribution["user_id"], "llm.department"', "the user id is on span"),
    "cost per thousand tokens": Mutation(
        "ex1_span_attributes", "        cost = catalog.cost_usd(model, input_tokens, output_tokens)\n",
        "        price = CATALOG.models[model]\n        cost = (input_tokens * price.input_price_per_million\n"
        "                + output_tokens * price.output_price_per_million) / 1000\n", "per MILLION tokens"),
    "tokens recorded as text": Mutation(
        "ex1_span_attributes", '"gen_ai.usage.input_tokens": input_tokens,',
        '"gen_ai.usage.input_tokens": str(input_tokens),', "token counts are int attributes"),
    "provider error swallowed": Mutation(
        "ex1_propagation_errors",
        '            raise ProviderCallError(f"step {step}: the provider answered {response.status_code}",\n'
        "                                    status_code=response.status_code, step=step)\n",
        '            return "", 0.0\n', "raised nothing"),
    "error not marked on the span": Mutation(
        "ex1_propagation_errors", "with tracer.start_as_current_span(f\"chat {model}\", kind=SpanKind.CLIENT, "
        "attributes=attributes) as span:", "with tracer.start_as_current_span(f\"chat {model}\", kind=SpanKind.CLIENT, "
        "attributes=attributes, record_exception=False, set_status_on_exception=False) as span:",
        "status of the failed call's span"),
    "chat span not a CLIENT span": Mutation(
        "ex1_span_tree", 'f"chat {model}", kind=SpanKind.CLIENT,', 'f"chat {model}",', "CLIENT span"),
    "durations in milliseconds": Mutation(
        "ex2_step_latency", 'steps["seconds"] = (steps["end_ns"] - steps["start_ns"]) / 1e9\n    grouped',
        'steps["seconds"] = (steps["end_ns"] - steps["start_ns"]) / 1e6\n    grouped', "NANOseconds"),
    "chat spans counted as steps": Mutation(
        "ex2_step_latency", '    steps = spans[spans["name"].str.startswith("step ")].copy()\n    steps["seconds"] = '
        '(steps["end_ns"] - steps["start_ns"]) / 1e9\n    grouped',
        '    steps = spans[spans["step"].notna()].copy()\n    steps["seconds"] = (steps["end_ns"] - '
        'steps["start_ns"]) / 1e9\n    grouped', "the chat spans carry the step too"),
    "bottleneck of the average request": Mutation(
        "ex2_tail_bottleneck", '    slow = roots[roots["seconds"] >= roots["seconds"].quantile(quantile)]\n',
        "    slow = roots\n", "slowest step ON AVERAGE"),
    "first exemplar, not the slowest": Mutation(
        "ex3_slowest_exemplar", 'if best is None or value > best["value"]:', "if best is None:",
        "one of the quick requests"),
    "trace id matched as text": Mutation(
        "ex3_request_story",
        "        try:\n            event = json.loads(line)\n        except ValueError:\n            continue\n"
        '        if isinstance(event, dict) and event.get("trace_id") == trace_id:\n',
        "        if trace_id in line:\n            event = json.loads(line)\n", "trace_id FIELD"),
    "load-test calls analysed": Mutation(
        "ex4_downgrades", "    calls = _real_calls(db_path)\n",
        "    with sqlite3.connect(db_path) as db:\n"
        "        calls = pd.read_sql_query(\"SELECT * FROM llm_calls WHERE status = 'success'\", db)\n", "synthetic"),
    "mean instead of the 90th percentile": Mutation(
        "ex4_downgrades", '        p90 = float(group["output_tokens"].quantile(0.9))\n',
        '        p90 = float(group["output_tokens"].mean())\n', "p90"),
    "failed calls in the median": Mutation(
        "ex4_oversized", "    for (application, step, model), group in _real_calls(db_path).groupby(GROUP):\n"
        '        median = float(group["input_tokens"].median())',
        "    with sqlite3.connect(db_path) as db:\n"
        '        everything = pd.read_sql_query("SELECT * FROM llm_calls WHERE synthetic = 0", db)\n'
        "    for (application, step, model), group in everything.groupby(GROUP):\n"
        '        median = float(group["input_tokens"].median())', "failed calls record 0 tokens"),
    "savings not scaled to a month": Mutation(
        "ex4_savings", '    monthly = float(_real_calls(db_path)["cost_usd"].sum()) * MONTH_DAYS / DAYS_OF_DATA\n',
        '    monthly = float(_real_calls(db_path)["cost_usd"].sum())\n', "30-day month"),
}
# One notebook with one mistake in six different checks; the other four checks must keep their points.
GRADED_MUTATIONS = ("step span not made current", "no context propagation", "bottleneck of the average request",
                    "first exemplar, not the slowest", "load-test calls analysed", "savings not scaled to a month")


def _source() -> nbformat.NotebookNode:
    return cells.read(SOURCE)


def _mutate(notebook: nbformat.NotebookNode, name: str) -> None:
    mutation = MUTATIONS[name]
    cells.replace_once(notebook, ANSWER_OF[mutation.exercise], mutation.old, mutation.new)


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
    assert lab["max_score"] == sum(POINTS.values()) + 2 == 25


@pytest.mark.stack
def test_solutions_score_full_marks_with_the_built_in_trace_store(grades: dict[str, dict]) -> None:
    """No Phoenix: the live check finds the trace in the trace store that plain `make up` starts."""
    points, most, message = grades["solutions"]["exercises"][LIVE_CHECK]
    assert (points, most, message) == (2, 2, "")
    assert grades["solutions"]["lab"]["score"] == grades["solutions"]["lab"]["max_score"] == 25


@pytest.mark.stack
def test_released_notebook_scores_zero_and_grading_completes(grades: dict[str, dict]) -> None:
    released = grades["released"]
    assert released["lab"]["problem"] is None
    assert set(released["exercises"]) == set(grades["solutions"]["exercises"]), "every exercise is graded"
    assert released["lab"]["score"] == 0
    for name, (_, _, message) in released["exercises"].items():
        assert message, name
        if name != LIVE_CHECK:
            assert "not attempted" in message, (name, message)


@pytest.mark.stack
def test_each_mistake_costs_its_own_check_with_a_message_that_names_it(grades: dict[str, dict]) -> None:
    mistakes = grades["mistakes"]["exercises"]
    broken = {MUTATIONS[name].exercise for name in GRADED_MUTATIONS}
    assert len(broken) == len(GRADED_MUTATIONS) >= 5
    for name in GRADED_MUTATIONS:
        mutation = MUTATIONS[name]
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


@pytest.mark.parametrize("name", [n for n, m in MUTATIONS.items() if not m.exercise.startswith("ex3")])
def test_check_cells_catch_a_plausible_mistake(name: str, in_lab_folder: Path) -> None:
    mutation = MUTATIONS[name]
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
                    "arize-phoenix>): the live check is tested without a backend only")
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


def test_request_story_check_catches_matching_the_trace_id_as_text(tmp_path: Path) -> None:
    """Exercise 3's hidden log (several interleaved traces, non-JSON lines, a message naming another trace), run
    without the stack: a right answer passes, a substring match fails with a message that names the mistake."""
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
    _mutate(wrong, "trace id matched as text")
    with pytest.raises(LabCheckFailed, match="trace_id FIELD"):
        v4_traces.check_request_story(request_story(wrong), batch, log, hidden=True)
