"""Lab V3 (attribution, chargeback, retention, alert rules, Alertmanager routing, alert quality): the solutions score
100 % with the live check included, the released stubs score 0 and grading completes, plausible mistakes lose their
exercise's points with a message that names the mistake, a hostile notebook costs only its own exercise, and the live
check heals the fault and stops what it started.

The class (solutions, released stubs, a notebook full of mistakes) is graded once, by `python -m graders` exactly as
`make grade SUBMISSIONS=...` does, against the live stack. The cheaper in-process tests run the notebook's cells with
exec() to try more wrong answers against the check cells, and check the grading helpers on their own."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import nbformat
import pytest
import yaml

from graders import notebooks
from graders.v3 import quality as v3_quality, rules as v3_rules, timelines as v3_timelines
from graders.v3 import alertmanager as v3_alertmanager
from graders.course import LABS_DIR, select
from graders.results import ExerciseResult
from stack import topology
from stack.paths import REPO_ROOT, STACK_DIR
from tests import live
from tests import notebook_cells as cells
from tests import wrong_answers
from tests.classgrading import grade_class, short_cell_timeout, start_class
from tests.conftest import LiveStack

LAB = select("v3")[0]
NOTEBOOK = f"{LAB.id}.ipynb"
SOURCE = LAB.source / NOTEBOOK
RELEASED = LABS_DIR / LAB.id / NOTEBOOK
GRADING_TIMEOUT_SECONDS = 240
# the alert-quality replay (fifteen timelines through promtool) must fit in it on a busy machine: measured 12+ s
# with the load of a whole `make test`
HOSTILE_TIMEOUT_SECONDS = 20
LIVE = "live: a provider fault pages through your rules and routing"

POINTS = cells.points(SOURCE)        # grade id -> points, from the notebook's nbgrader metadata
ANSWER_OF = cells.answer_of(SOURCE)  # check cell -> the answer cell it checks


WRONG = wrong_answers.load("v3", SOURCE)  # tests/wrong_answers/v3.yaml: realistic wrong answers, one per entry

# One notebook with a mistake in (nearly) every exercise, graded by nbgrader and the live check. Exercises 6, 9, 10's
# grouping, 12's recall and the live check stay correct and must keep their points.
GRADED = ("attribution columns nullable", "no validation at all (booked to nobody)", "load tests billed",
          "cost charged to the requested model after a fallback", "retention drops the load tests' money",
          "ratio of unaggregated series", "fallback ratio without a traffic guard", "latency without runbook",
          "quality drift without a traffic guard", "budget typed into the rule", "every budget step labelled critical",
          "TargetDown without for", "warning routed to the pager", "inhibition without equal",
          "budget steps that all page", "silence by alertname")


def _source() -> nbformat.NotebookNode:
    return cells.read(SOURCE)


def _mutate(notebook: nbformat.NotebookNode, name: str) -> None:
    WRONG[name].plant(notebook)


# --- the class, graded end to end against the live stack ----------------------------------------------------------

@pytest.fixture(scope="module")
def grades(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """student -> {"lab": the grades.json entry, "exercises": exercise -> (points, max points, message)}."""
    live.heal_faults()
    class_dir = tmp_path_factory.mktemp("class")
    start_class(LAB, class_dir)
    notebook = _source()
    for name in GRADED:
        _mutate(notebook, name)
    cells.write(notebook, class_dir / "mistakes" / LAB.id, NOTEBOOK)
    return grade_class(LAB, class_dir, GRADING_TIMEOUT_SECONDS)


@pytest.mark.stack
def test_solutions_score_full_marks_with_the_live_check(grades: dict[str, dict]) -> None:
    lab = grades["solutions"]["lab"]
    assert lab["problem"] is None
    lost = {name: message for name, (points, most, message) in grades["solutions"]["exercises"].items()
            if points < most}
    assert not lost, lost
    assert {name: most for name, (_, most, _) in grades["solutions"]["exercises"].items()} == {**POINTS, LIVE: 2}
    assert lab["score"] == lab["max_score"] == 45
    assert [e["exercise"] for e in lab["exercises"] if e["source"] == "stack"] == [LIVE]


@pytest.mark.stack
def test_released_notebook_scores_zero_and_grading_completes(grades: dict[str, dict]) -> None:
    released = grades["released"]
    assert released["lab"]["problem"] is None
    assert set(released["exercises"]) == set(grades["solutions"]["exercises"]), "every exercise is graded"
    assert released["lab"]["score"] == 0
    assert all(message for _, _, message in released["exercises"].values()), "every lost point says why"
    stubs = {"ex1_store_schema": "create_store", "ex1_attribution_required": "create_store",
             "ex2_chargeback": "chargeback", "ex2b_bill": "llm_bill", "ex3_retention": "apply_retention",
             "ex11_silence": "maintenance_silence"}
    for name, function in stubs.items():
        message = released["exercises"][name][2]
        assert message == f"not attempted yet: implement {function} in the exercise cell above", message
    assert "is not set" in released["exercises"]["ex4_error_ratio"][2]
    assert "exercise 4" in released["exercises"][LIVE][2], "the live check says what is missing, without waiting"


@pytest.mark.stack
def test_each_mistake_costs_its_own_exercise_with_a_message_that_names_it(grades: dict[str, dict]) -> None:
    mistakes = grades["mistakes"]["exercises"]
    broken: set[str] = set()
    for name in GRADED:
        wrong = WRONG[name]
        broken |= {wrong.exercise, *wrong.also}
        points, _, message = mistakes[wrong.exercise]
        assert points == 0, f"{wrong.exercise} kept its points despite {name!r}"
        assert wrong.says in message, f"{name}: {message!r} does not say {wrong.says!r}"
    assert {WRONG[name].exercise for name in GRADED} >= {
        "ex1_store_schema", "ex1_attribution_required", "ex2_chargeback", "ex2b_bill", "ex3_retention",
        "ex4_error_ratio", "ex4b_fallback", "ex5_latency", "ex6b_quality_drift", "ex7_budget",
        "ex7b_department_budget", "ex8_availability", "ex10_routing", "ex10_inhibition", "ex10_budget_tiers",
        "ex11_silence"}
    kept = {name: message for name, (points, most, message) in mistakes.items()
            if name not in broken and points < most}
    assert not kept, f"mistakes elsewhere cost these exercises points: {kept}"
    assert {"ex6_cost_anomaly", "ex9_burn_rate", "ex10_grouping", "ex12_recall", LIVE} <= set(mistakes) - broken
    _, _, precision = mistakes["ex12_precision"]
    assert "false alarms" in precision and ("background-noise" in precision or "llmsim-restart" in precision)


@pytest.mark.stack
def test_the_live_check_heals_the_fault_and_stops_what_it_started(grades: dict[str, dict]) -> None:
    faults = httpx.get(f"{live.url('llmsim')}/faults", timeout=5).json()
    assert faults["healthy"], faults
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        mine = Path(tempfile.gettempdir())  # this worker's own (tests/conftest.py): another may be grading V3 now
        if f"{mine}/v3-prometheus-" in command or f"{mine}/v3-alertmanager-" in command:
            leftovers.append(command)
    assert not leftovers, leftovers


@pytest.mark.stack
def test_the_live_check_says_when_a_critical_alert_reaches_chat_instead_of_the_pager(stack: LiveStack,
                                                                                     tmp_path: Path) -> None:
    """The solution's rules with a routing that sends everything to chat: the alert fires, and the message says where
    it went."""
    namespace = cells.run(_source(), ("setup", "ex4_error_ratio_answer", "ex10_alertmanager_answer"))
    rules, _ = v3_rules.collect(namespace)
    config = v3_alertmanager.load_config(namespace["ALERTMANAGER_CONFIG"])
    for route in config["route"]["routes"]:
        route["receiver"] = "chat"
    submission = tmp_path / LAB.id
    submission.mkdir()
    (submission / v3_rules.RULES_FILE).write_text(yaml.safe_dump(rules))
    (submission / v3_alertmanager.ALERTMANAGER_FILE).write_text(yaml.safe_dump(config))
    script = ("import json, sys; from pathlib import Path; from graders import stackchecks; "
              "from graders.course import select; "
              "results = stackchecks.run(select('v3')[0], Path(sys.argv[1])); "
              "print('RESULTS=' + json.dumps([[r.exercise, r.points, r.message] for r in results]))")
    done = subprocess.run([sys.executable, "-c", script, str(submission)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS="))
    [(exercise, points, message)] = json.loads(line.removeprefix("RESULTS="))
    assert (exercise, points) == (LIVE, 0)
    assert "reached the chat channel, not the pager" in message, message


# --- a hostile notebook, through nbgrader (no stack needed) --------------------------------------------------------

def test_hostile_notebook_costs_only_the_exercise_it_breaks(tmp_path: Path) -> None:
    """An endless loop in exercise 3 is interrupted after the cell time limit; every other exercise keeps its points."""
    notebook = _source()
    notebook.cells = [c for c in notebook.cells if not c.id.endswith("_try")]  # demos would call it again
    cells.replace_once(notebook, "ex3_retention_answer", "    today = datetime",
                       "    while True:\n        __import__('time').sleep(0.05)\n    today = datetime")  # idle, not busy
    api = notebooks.prepare([LAB])
    with short_cell_timeout(api, HOSTILE_TIMEOUT_SECONDS):
        notebooks.submit(LAB, "test-v3-hostile", cells.write(notebook, tmp_path / "hostile", NOTEBOOK))
        result = notebooks.autograde(api, LAB, "test-v3-hostile")
    assert result.problem is None, result.problem
    graded: dict[str, ExerciseResult] = {e.exercise: e for e in result.exercises}
    assert graded["ex3_retention"].points == 0 and "time limit" in graded["ex3_retention"].message
    assert {n: e.points for n, e in graded.items() if n != "ex3_retention"} == {
        n: p for n, p in POINTS.items() if n != "ex3_retention"}, {n: e.message for n, e in graded.items()}


# --- in-process: the check cells against many wrong answers, without nbgrader --------------------------------------

_SETUP: dict = {}


def _run(notebook: nbformat.NotebookNode, exercise: str) -> None:
    """Setup cell, then this exercise's answer and check cell only: each exercise stands on its own. (The setup cell
    runs once per module; each exercise gets its own copy of what it defined.)"""
    if not _SETUP:
        _SETUP.update(cells.run(_source(), ("setup",)))
    cells.run(notebook, (ANSWER_OF[exercise], exercise), namespace=dict(_SETUP))


@pytest.mark.parametrize("exercise", list(ANSWER_OF))
def test_each_exercise_passes_with_only_the_setup_and_its_own_answer(exercise: str, in_lab_folder: Path) -> None:
    _run(_source(), exercise)
    assert not list(in_lab_folder.iterdir()), "check cells must write only to temporary folders"


@pytest.mark.wrong_answer
@pytest.mark.parametrize("name", list(WRONG))
def test_check_cells_catch_a_realistic_wrong_answer(name: str, in_lab_folder: Path) -> None:
    wrong = WRONG[name]
    notebook = _source()
    _mutate(notebook, name)
    with pytest.raises(AssertionError) as failure:
        _run(notebook, wrong.exercise)
    assert wrong.says in cells.first_failure_line(failure), cells.first_failure_line(failure)


# --- the grading helpers -------------------------------------------------------------------------------------------

def test_the_stacks_own_rules_pass_the_lab_scenarios() -> None:
    """The course's rules (stack/prometheus/classroom/rules, generated from stack/prometheus/alerts.py) behave as the
    lab's scenarios demand: the scenarios encode the course's alerting, not one particular solution."""
    folder = STACK_DIR / "prometheus" / "classroom" / "rules"
    recording = yaml.safe_load((folder / "recording.yml").read_text())["groups"][0]["rules"]
    stack_rules = [r for path in sorted(folder.glob("*alerts.yml"))
                   for group in yaml.safe_load(path.read_text())["groups"] for r in group["rules"]]
    for exercise, spec in v3_rules.EXERCISES.items():
        mine = [r for r in stack_rules if r.get("alert") in {name for name, _ in spec.alerts}]
        if not mine:
            continue  # the burn-rate alert is the lab's own
        document = v3_rules.rules_file({spec.group: [*recording, *mine]})
        scenarios = spec.cases()
        results = v3_timelines.replay(document, {s.key: s.world for s in scenarios})
        problems = {s.key: v3_rules.judge(s, results[s.key]) for s in scenarios}
        assert not any(problems.values()), (exercise, problems)


def test_quality_replay_scores_a_detector() -> None:
    """Nothing fires: recall 0, precision undefined. An alert that fires all the time detects nothing (it was firing
    before any incident started) and is one false alarm per timeline."""
    lines = v3_quality.labeled_cases()
    silent = v3_quality.score(lines, {})
    assert silent.recall == 0 and silent.precision != silent.precision  # NaN
    always = v3_rules.rules_file({"always": [{"alert": "LLMHighErrorRatio", "expr": "vector(1)",
                                              "labels": {"severity": "warning"}}]})
    episodes = v3_timelines.replay(always, {t.key: t.world for t in lines})
    assert all(len(found) == 1 and found[0].first == 0 and found[0].last == t.world.seconds
               for t, found in ((t, episodes[t.key]) for t in lines)), episodes
    noisy = v3_quality.score(lines, episodes)
    assert noisy.recall == 0 and noisy.precision == 0 and len(noisy.false_alarms) == len(lines)


def test_live_copies_keep_the_routing_and_shorten_the_waits() -> None:
    config = {"route": {"receiver": "chat", "group_wait": "30s", "routes": [
        {"matchers": ['severity="critical"'], "receiver": "pager", "group_wait": "10s"}]},
        "receivers": [{"name": "pager", "slack_configs": [{"api_url": "https://hooks.example/x", "channel": "#p"}]},
                      {"name": "chat", "webhook_configs": [{"url": "http://127.0.0.1:1/hook/chat"}]},
                      {"name": "null"}]}
    copy = v3_alertmanager.live_alertmanager(config)
    receiver = topology.load()["receiver"].url
    assert copy["receivers"][0] == {"name": "pager", "webhook_configs": [
        {"url": f"{receiver}/hook/pager", "send_resolved": False}]}
    assert copy["receivers"][2] == {"name": "null"}
    assert copy["route"]["group_wait"] == "0s" and copy["route"]["routes"][0]["group_wait"] == "0s"
    assert config["route"]["group_wait"] == "30s", "the student's config is not changed"
    rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "vector(1)", "for": "5m"},
                                                 {"record": "r", "expr": "vector(1)"}]}]}
    assert v3_alertmanager.live_rules(rules)["groups"][0]["rules"][0]["for"] == "0s"
    assert rules["groups"][0]["rules"][0]["for"] == "5m"
