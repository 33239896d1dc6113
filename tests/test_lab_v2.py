"""Lab V2 graded end to end against the live stack, in one `make grade` run over a class of three: the solutions
score full marks, the released notebook scores 0 and grading still completes, and a copy of the solutions with
typical mistakes loses exactly the points of the exercises it breaks, each with a message that names the mistake."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from graders import course
from stack import promapi, topology
from tests import live
from tests.classgrading import grade_class, start_class
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

V2 = course.select("v2")[0]
NOTEBOOK = f"{V2.id}.ipynb"
GRADING_TIMEOUT_SECONDS = 240


@dataclass(frozen=True)
class Mutation:
    cell: str      # the solution cell's id (its nbgrader grade_id)
    old: str
    new: str
    exercise: str  # the graded exercise that must lose its points
    says: str      # ... with a message containing this


MUTATIONS = (
    Mutation("ex1_instrument", "buckets=LATENCY_BUCKETS, ", "", "ex1_metric_definitions", "largest bucket is 10 s"),
    Mutation("ex1_instrument", "COST.labels(model).inc(catalog.cost_usd(model, input_tokens, output_tokens))",
             "price = CATALOG.models[model]  # prices per thousand tokens, or so they thought\n"
             "    COST.labels(model).inc((input_tokens * price.input_price_per_million\n"
             "                            + output_tokens * price.output_price_per_million) / 1000)",
             "ex1_recorded_calls", "factor of 1000"),
    Mutation("ex2_scrape_job_answer", '["{LAB.address}"]', '["{LAB.host}:{LAB.port + 1}"]', "ex2_scrape_job",
             "the job's targets"),
    Mutation("ex3_error_ratio_answer",
             "ERROR_RATIO = ('sum by (model) (rate(llm_requests_total{job=\"gateway\",status=\"error\"}[1m]))\\n'\n"
             "               '/\\n'\n"
             "               'sum by (model) (rate(llm_requests_total{job=\"gateway\"}[1m]))')",
             "ERROR_RATIO = 'rate(llm_requests_total{status=\"error\"}[1m]) / rate(llm_requests_total[1m])'",
             "ex3_promql_error_ratio", "ratio of unaggregated series"),
    Mutation("ex3_p95_answer", '(rate(llm_request_duration_seconds_bucket{job="gateway"}[1m])))',
             '(llm_request_duration_seconds_bucket{job="gateway"}))', "ex3_promql_p95_latency", "raw buckets"),
    Mutation("ex3_cost_answer", "[1m])) * 3600'", "[1m]))'", "ex3_promql_cost_per_hour", "x 3600"),
    Mutation("ex4_bounded_answer", '["model", "status"]', '["model", "status", "request_id"]',
             "ex4_bounded_labels", "series"),
    Mutation("ex4_bounded_answer",
             'requests.labels(model=model, status=status).inc(exemplar={"request_id": request_id})',
             "requests.labels(model=model, status=status, request_id=request_id).inc()",
             "ex4_bounded_labels", "series"),
)


def _mutated_copy(target: Path) -> None:
    shutil.copytree(V2.source, target)
    notebook = nbformat.read(V2.source / NOTEBOOK, as_version=4)
    cells = {cell.id: cell for cell in notebook.cells}
    for mutation in MUTATIONS:
        source = cells[mutation.cell].source
        assert source.count(mutation.old) == 1, f"mutation no longer applies to {mutation.cell}: {mutation.old!r}"
        cells[mutation.cell].source = source.replace(mutation.old, mutation.new)
    nbformat.write(notebook, target / NOTEBOOK)


@pytest.fixture(scope="module")
def grades(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """student -> {"lab": the grades.json entry, "exercises": exercise -> (points, max points, message)}."""
    live.heal_faults()
    class_dir = tmp_path_factory.mktemp("class")
    start_class(V2, class_dir)
    _mutated_copy(class_dir / "mistakes" / V2.id)
    try:
        return grade_class(V2, class_dir, GRADING_TIMEOUT_SECONDS)
    finally:
        live.heal_faults()


def test_solutions_score_full_marks(grades: dict[str, dict]) -> None:
    lab = grades["solutions"]["lab"]
    assert lab["problem"] is None
    lost = {name: message for name, (points, most, message) in grades["solutions"]["exercises"].items()
            if points < most}
    assert not lost, lost
    assert lab["score"] == lab["max_score"] == 24
    stack_checks = [e for e in lab["exercises"] if e["source"] == "stack"]
    assert len(stack_checks) == 2, "the dashboard's stack checks (graders/checks/test_v2.py) did not run"


def test_released_notebook_scores_zero_and_grading_completes(grades: dict[str, dict]) -> None:
    released = grades["released"]
    assert released["lab"]["problem"] is None
    assert set(released["exercises"]) == set(grades["solutions"]["exercises"]), "every exercise is graded"
    assert released["lab"]["score"] == 0
    assert all(message for _, _, message in released["exercises"].values()), "every lost point says why"


def test_each_mistake_costs_its_own_exercise_with_a_message_that_names_it(grades: dict[str, dict]) -> None:
    mistakes = grades["mistakes"]["exercises"]
    broken = {mutation.exercise for mutation in MUTATIONS}
    for mutation in MUTATIONS:
        points, _, message = mistakes[mutation.exercise]
        assert points == 0, f"{mutation.exercise} kept its points despite {mutation.new!r}"
        assert mutation.says in message, f"{mutation.exercise}: {message!r} does not say {mutation.says!r}"
    kept = {name: message for name, (points, most, message) in mistakes.items()
            if name not in broken and points < most}
    assert not kept, f"mistakes elsewhere cost these exercises points: {kept}"
    assert len(set(mistakes) - broken) >= 6, "enough exercises are left untouched to show the others keep theirs"


def test_wrong_scrape_target_message_names_the_lab_address(grades: dict[str, dict]) -> None:
    _, _, message = grades["mistakes"]["exercises"]["ex2_scrape_job"]
    assert topology.load()["lab"].address in message, message


def test_lab_target_being_down_never_triggers_target_down(grades: dict[str, dict]) -> None:
    """Between (and before) the graded notebooks nothing serves the lab port: normal, so TargetDown ignores it.
    ALERTS holds a series for every pending or firing alert, so an empty history means the rule never matched."""
    assert promapi.scalar('min_over_time(up{job="lab"}[1h])') == 0.0, "the lab target was never down: no test"
    assert promapi.scalar('max_over_time(up{job="lab"}[1h])') == 1.0, "no graded notebook's exporter was scraped"
    assert promapi.query('count_over_time(ALERTS{alertname="TargetDown",job="lab"}[1h])') == []
