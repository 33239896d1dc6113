"""Stack checks for lab V2: the dashboard the notebook wrote (student_dashboard.json, exercise 5) works against the
live Prometheus. The submission folder is nbgrader's autograded copy, where the notebook has just been re-run, so
the file comes from the student's own code and the exercise 3 batch is a few seconds old."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stack.grafana.check import check_dashboard

DASHBOARD_FILE = "student_dashboard.json"


def _core_panels() -> dict[str, Callable[[str], bool]]:
    """Name of each core panel -> does this PromQL look like it? Loose on purpose: exercise 3 grades the queries
    themselves, so a wrong query must not cost the dashboard its points twice."""
    return {
        "request rate": lambda e: "llm_requests_total" in e and "/" not in e,
        "error ratio": lambda e: "llm_requests_total" in e and "/" in e,
        "p95 latency": lambda e: "histogram_quantile" in e and "llm_request_duration_seconds_bucket" in e,
        "cost per hour": lambda e: "llm_cost_usd_total" in e,
        "tokens": lambda e: "llm_tokens_total" in e,
    }


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
    missing = [name for name, looks_like in _core_panels().items() if not any(looks_like(e) for e in exprs)]
    assert not missing, (f"{DASHBOARD_FILE} lacks a panel for {', '.join(missing)}. Hint: one panel per exercise 3 "
                         f"query (request rate, error ratio, p95 latency, cost per hour, tokens per minute)")


# The course's dashboard checker (stack/grafana/check.py, also run on the course dashboards) judges the queries;
# a student dashboard is not marked down for what only matters for the course's own (units, descriptions), nor
# twice for an unaggregated ratio (exercise 3 grades the queries themselves).
QUERY_PROBLEMS = {"syntax", "query", "no-data", "unreachable", "variable", "datasource"}


@pytest.mark.points(2)
def test_every_panel_query_returns_data(submission: Path, dashboard: dict) -> None:
    """ex5 dashboard: every panel query returns data"""
    for title, expr in _targets(dashboard):
        assert expr, f"panel {title!r} has an empty query. Hint: is its exercise 3 query set?"
    problems = [p for p in check_dashboard(submission / DASHBOARD_FILE, live=True) if p.kind in QUERY_PROBLEMS]
    if problems:
        first = problems[0]
        where = f"panel {first.panel!r}: " if first.panel else ""
        more = f" (and {len(problems) - 1} more problem(s); see the feedback)" if len(problems) > 1 else ""
        raise AssertionError(f"{where}{first.message}{more}. Hint: try the query in the notebook with "
                             "prom_query(...) right after the exercise 3 batch")
