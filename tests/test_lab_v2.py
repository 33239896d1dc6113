"""Lab V2 graded end to end against the live stack, in one `make grade` run over a class of three: the solutions
score full marks, the released notebook scores 0 with "not attempted" and grading still completes, and a copy of the
solutions with one typical mistake per broken exercise loses exactly the points of the exercises it breaks, each with
a message that names the mistake (a wrong exercise 3 query costs exercise 3, not the dashboard that shows it too).

Every wrong answer of tests/wrong_answers/v2.yaml is also planted on its own, in-process: the solutions notebook runs
once in this process without its check cells (the setup, both known batches, every correct answer), then each wrong
answer replaces its answer cell and runs its exercise's check cell, whose first line must name the mistake."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import prometheus_client
import pytest

from graders import course
from stack import promapi, topology
from tests import live
from tests import notebook_cells as cells
from tests import wrong_answers
from tests.classgrading import grade_class, start_class
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

V2 = course.select("v2")[0]
NOTEBOOK = f"{V2.id}.ipynb"
SOURCE = V2.source / NOTEBOOK
RELEASED = course.LABS_DIR / V2.id / NOTEBOOK
GRADING_TIMEOUT_SECONDS = 300
STACK_CHECKS = 3  # graders/checks/test_v2.py: the dashboard's core panels and queries, the heatmap's query

WRONG = wrong_answers.load(V2.short, SOURCE)  # tests/wrong_answers/v2.yaml

# Planted together in the graded class's "mistakes" student: one per exercise they break; the others stay right.
GRADED_MUTATIONS = [
    "cost per thousand tokens", "scrape target on the wrong port",
    "exporter serves the notebook's registry, not its argument", "ratio of unaggregated series",
    "le summed away",  # the dashboard shows this query too: it must cost exercise 3 only
    "cost per second", "request id kept as a label", "request-latency buckets reused for TPOT",
    "TTFT measured to the last chunk", "TTFT quantile with le summed away", "average of per-model hit ratios",
    "output tokens per minute", "heatmap drawn from time series",
]

# Answer cells the in-process namespace does not run: the exporter binds the lab port (its wrong answers start and
# stop their own).
NOT_IN_NAMESPACE = {"ex2_exporter_answer"}


def _mutated_copy(target: Path) -> None:
    shutil.copytree(V2.source, target, ignore=shutil.ignore_patterns("student_*", ".ipynb_checkpoints"))
    notebook = cells.read(SOURCE)
    for name in GRADED_MUTATIONS:
        WRONG[name].plant(notebook)
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
    assert lab["score"] == lab["max_score"] == 37
    stack_checks = [e for e in lab["exercises"] if e["source"] == "stack"]
    assert len(stack_checks) == STACK_CHECKS, "the stack checks (graders/checks/test_v2.py) did not all run"


def test_released_notebook_scores_zero_and_says_not_attempted(grades: dict[str, dict]) -> None:
    cells.assert_released_from(SOURCE, RELEASED, V2.short)
    released = grades["released"]
    assert released["lab"]["problem"] is None
    assert set(released["exercises"]) == set(grades["solutions"]["exercises"]), "every exercise is graded"
    assert released["lab"]["score"] == 0
    assert all(message for _, _, message in released["exercises"].values()), "every lost point says why"
    for name in cells.points(SOURCE):
        message = released["exercises"][name][2]
        assert message.startswith("not attempted yet"), (name, message)


def test_each_mistake_costs_its_own_exercise_with_a_message_that_names_it(grades: dict[str, dict]) -> None:
    mistakes = grades["mistakes"]["exercises"]
    broken = {WRONG[name].exercise for name in GRADED_MUTATIONS}
    assert len(broken) == len(GRADED_MUTATIONS), "one planted mistake per exercise"
    for name in GRADED_MUTATIONS:
        wrong = WRONG[name]
        points, _, message = mistakes[wrong.exercise]
        assert points == 0, f"{wrong.exercise} kept its points despite {name!r}"
        assert wrong.says in message, f"{wrong.exercise} ({name}): {message!r} does not say {wrong.says!r}"
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


# --- in-process: every wrong answer against its own check cell --------------------------------------------------

@dataclass
class LabNamespace:
    globals: dict[str, Any]
    folder: Path  # the notebook's working folder (the dashboard files it wrote)


def _exec(notebook: nbformat.NotebookNode, cell_id: str, namespace: dict[str, Any]) -> None:
    exec(compile(cells.cell(notebook, cell_id).source, f"<{cell_id}>", "exec"), namespace)


@pytest.fixture(scope="module")
def lab_namespace(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNamespace]:
    """The solutions notebook run once, top to bottom, without its check cells and demos."""
    live.heal_faults()
    folder = tmp_path_factory.mktemp("v2-in-process")
    notebook = cells.read(SOURCE)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    start = Path.cwd()
    os.chdir(folder)
    try:
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta and not meta.get("grade") and meta["grade_id"] not in NOT_IN_NAMESPACE:
                _exec(notebook, meta["grade_id"], namespace)
    finally:
        os.chdir(start)
    yield LabNamespace(namespace, folder)
    live.heal_faults()


@contextlib.contextmanager
def _no_leftovers(namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a wrong answer starts or registers in this process is undone: exporters it started (the lab port is
    free again for the next test and for graded kernels), metrics it put on the global default registry."""
    started = []
    start_http_server = prometheus_client.start_http_server

    def tracked(*args: Any, **kwargs: Any) -> Any:
        server, thread = start_http_server(*args, **kwargs)
        started.append(server)
        return server, thread

    monkeypatch.setattr(prometheus_client, "start_http_server", tracked)
    registered = set(prometheus_client.REGISTRY._collector_to_names)
    try:
        yield
    finally:
        for server in started:
            server.shutdown()
            server.server_close()
        namespace.pop("EXPORTER", None)
        for collector in set(prometheus_client.REGISTRY._collector_to_names) - registered:
            prometheus_client.REGISTRY.unregister(collector)


@pytest.mark.wrong_answer
@pytest.mark.parametrize("name", list(WRONG))
def test_each_wrong_answer_fails_its_check_with_a_message_that_names_it(
        name: str, lab_namespace: LabNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = WRONG[name]
    solutions, planted = cells.read(SOURCE), cells.read(SOURCE)
    wrong.plant(planted)
    namespace = lab_namespace.globals
    monkeypatch.chdir(lab_namespace.folder)
    with _no_leftovers(namespace, monkeypatch):
        try:
            with contextlib.suppress(Exception):  # nbgrader runs the check cell even when the answer cell raised
                _exec(planted, wrong.cell, namespace)
            with pytest.raises(AssertionError) as failure:
                _exec(planted, wrong.exercise, namespace)
        finally:
            if wrong.cell not in NOT_IN_NAMESPACE:
                _exec(solutions, wrong.cell, namespace)  # the right answer again, for the next wrong one
    line = cells.first_failure_line(failure)
    assert wrong.says in line, line
    assert "not attempted" not in line, line
