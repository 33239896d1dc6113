"""Stack checks for lab V2: the dashboards the notebook wrote work against the live Prometheus: the five core panels
(student_dashboard.json, exercise 5) and the time-to-first-token heatmap (student_ttft_heatmap.json, exercise 9).
The submission folder is nbgrader's autograded copy, where the notebook has just been re-run, so the files come from
the student's own code and the exercise 3 and 8 batches are a few seconds old.

Exercise 5's panels show the student's exercise 3 queries. A query that exercise 3 already failed is not held against
the dashboard a second time: its panel's problems are set aside when that exercise's check cell failed in the graded
notebook, and the message of any other problem says which exercise it comes from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stack.grafana.check import check_dashboard
from stack.grafana.problems import Problem

DASHBOARD_FILE = "student_dashboard.json"
HEATMAP_FILE = "student_ttft_heatmap.json"


def _core_panels() -> dict[str, tuple[str, Callable[[str], bool]]]:
    """Name of each core panel -> (the exercise 3 check of its query, does this PromQL look like it?). Loose on
    purpose: exercise 3 grades the queries themselves, so a wrong query must not cost the dashboard its points
    twice."""
    return {
        "request rate": ("ex3_promql_request_rate", lambda e: "llm_requests_total" in e and "/" not in e),
        "error ratio": ("ex3_promql_error_ratio", lambda e: "llm_requests_total" in e and "/" in e),
        "p95 latency": ("ex3_promql_p95_latency",
                        lambda e: "histogram_quantile" in e and "llm_request_duration_seconds_bucket" in e),
        "cost per hour": ("ex3_promql_cost_per_hour", lambda e: "llm_cost_usd_total" in e),
        "tokens": ("ex3_promql_tokens_per_minute", lambda e: "llm_tokens_total" in e),
    }


@pytest.fixture(scope="module")
def failed_checks(submission: Path) -> set[str]:
    """Grade ids of the check cells that raised in the graded notebook (nbgrader has just run it)."""
    failed = set()
    for path in submission.glob("*.ipynb"):
        for cell in json.loads(path.read_text()).get("cells") or []:
            grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
            if grade_id and any(output.get("output_type") == "error" for output in cell.get("outputs") or []):
                failed.add(grade_id)
    return failed


def _exercise_3_check(expr: str | None) -> str | None:
    """The exercise 3 check whose query this panel shows, if it looks like one."""
    return next((check for check, looks_like in _core_panels().values() if expr and looks_like(expr)), None)


def _panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside (collapsed) rows."""
    found = []
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            found += panel.get("panels") or []
        else:
            found.append(panel)
    return found


@pytest.fixture(scope="module")
def dashboard(notebook_artifact: Callable[[str, str], object]) -> dict:
    board = notebook_artifact(DASHBOARD_FILE, "run the exercise 5 cells (the locked one writes the file next to the "
                                              "notebook)")
    if not isinstance(board, dict) or not _panels(board):
        pytest.fail(f"{DASHBOARD_FILE} holds no panels: build_dashboard must return the dashboard dict",
                    pytrace=False)
    return board


def _targets(board: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every target; a target without an expr counts as an empty query."""
    return [(panel.get("title") or "(untitled)", (target.get("expr") or "").strip())
            for panel in _panels(board) for target in panel.get("targets") or [{}]]


@pytest.mark.points(1)
def test_dashboard_has_the_core_panels(dashboard: dict) -> None:
    """ex5 dashboard: the five core panels"""
    exprs = [expr for _, expr in _targets(dashboard)]
    missing = [name for name, (_, looks_like) in _core_panels().items() if not any(looks_like(e) for e in exprs)]
    assert not missing, (f"{DASHBOARD_FILE} lacks a panel for {', '.join(missing)}. Hint: one panel per exercise 3 "
                         f"query (request rate, error ratio, p95 latency, cost per hour, tokens per minute)")


# The course's dashboard checker (stack/grafana/check.py, also run on the course dashboards) judges the queries;
# a student dashboard is not marked down for what only matters for the course's own (units, descriptions), nor
# twice for an unaggregated ratio (exercise 3 grades the queries themselves).
QUERY_PROBLEMS = {"syntax", "query", "no-data", "unreachable", "variable", "datasource"}
QUERY_CONTENT = {"syntax", "query", "no-data"}  # what a wrong query itself causes


def _first_problem(problems: list[Problem], hint: str) -> str:
    first = problems[0]
    where = f"panel {first.panel!r}: " if first.panel else ""
    more = f" (and {len(problems) - 1} more problem(s); see the feedback)" if len(problems) > 1 else ""
    return f"{where}{first.message}{more}. Hint: {hint}"


@pytest.mark.points(2)
def test_every_panel_query_returns_data(submission: Path, dashboard: dict, failed_checks: set[str]) -> None:
    """ex5 dashboard: every panel query returns data"""
    for title, expr in _targets(dashboard):
        assert expr, f"panel {title!r} has an empty query. Hint: is its exercise 3 query set?"
    problems = [p for p in check_dashboard(submission / DASHBOARD_FILE, live=True) if p.kind in QUERY_PROBLEMS]
    # a query problem of a panel whose exercise 3 check failed: exercise 3 has taken those points already
    own = [p for p in problems if not (p.kind in QUERY_CONTENT and _exercise_3_check(p.expr) in failed_checks)]
    if own:
        check = _exercise_3_check(own[0].expr)
        hint = ("try the query in the notebook with prom_query(...) right after the exercise 3 batch" if check is None
                else f"this panel shows your exercise 3 query, which passed its check ({check}): the panel must run "
                     "it as written (same expr, datasource uid prometheus)")
        raise AssertionError(_first_problem(own, hint))


@pytest.mark.points(1)
def test_ttft_heatmap_query_returns_data(submission: Path, notebook_artifact: Callable[[str, str], object]) -> None:
    """ex9 heatmap: its query returns data"""
    board = notebook_artifact(HEATMAP_FILE, "run the exercise 9 cells (the locked one writes the file next to the "
                                            "notebook)")
    panels = _panels(board) if isinstance(board, dict) else []
    assert panels and all(_targets(board)), f"{HEATMAP_FILE} holds no panel with a query. Hint: build_ttft_heatmap " \
                                           "must return the panel dict with one target"
    problems = [p for p in check_dashboard(submission / HEATMAP_FILE, live=True) if p.kind in QUERY_PROBLEMS]
    if problems:
        raise AssertionError(_first_problem(problems, "try the query with prom_query(...) after the exercise 8 batch "
                                                      "(replace $__rate_interval by 1m)"))
