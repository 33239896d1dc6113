"""Stack checks for lab V2: the dashboard the notebook wrote (student_dashboard.json, exercise 5) works against the
live Prometheus. The submission folder is nbgrader's autograded copy, where the notebook has just been re-run, so
the file comes from the student's own code and the exercise 3 batch is a few seconds old."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from stack import promapi, topology

DASHBOARD_FILE = "student_dashboard.json"
# Grafana's built-in interval variables, as a panel on the classroom stack would see them.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "15m", "__range_s": "900",
                     "__interval_ms": "15000"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
LOOKBACK_SECONDS = 600


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


def _variables(dashboard: dict) -> dict[str, str]:
    values = dict(GRAFANA_INTERVALS)
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        values.setdefault(variable.get("name", ""), current if current and current != "$__all" else ".*")
    return values


def _expand(expr: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        return variables.get(name, ".*")
    return _VARIABLE.sub(replace, expr)


def _has_data(expr: str) -> bool:
    if promapi.query(expr):
        return True
    end = time.time()  # nothing right now: anything over the last minutes (a panel shows a time range)
    params = {"query": expr, "start": f"{end - LOOKBACK_SECONDS:.3f}", "end": f"{end:.3f}", "step": "15"}
    try:
        body = httpx.get(f"{topology.load()['prometheus'].url}/api/v1/query_range", params=params, timeout=10).json()
    except httpx.HTTPError as error:
        raise promapi.PrometheusError(f"cannot reach Prometheus ({error}); is the stack up (`make up`)?") from None
    if body.get("status") != "success":
        raise promapi.PrometheusError(body.get("error", "query_range failed"))
    return any(series.get("values") for series in body["data"]["result"])


@pytest.fixture(scope="module")
def dashboard(submission: Path) -> dict:
    path = submission / DASHBOARD_FILE
    if not path.is_file():
        pytest.fail(f"no {DASHBOARD_FILE} in the graded folder: run the exercise 5 cells (the locked one writes "
                    "the file next to the notebook)", pytrace=False)
    try:
        board = json.loads(path.read_text())
    except ValueError as error:
        pytest.fail(f"{DASHBOARD_FILE} is not valid JSON ({error})", pytrace=False)
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


@pytest.mark.points(2)
def test_every_panel_query_returns_data(dashboard: dict) -> None:
    """ex5 dashboard: every panel query returns data"""
    variables = _variables(dashboard)
    for title, expr in _targets(dashboard):
        assert expr, f"panel {title!r} has an empty query. Hint: is its exercise 3 query set?"
        try:
            found = _has_data(_expand(expr, variables))
        except promapi.PrometheusError as error:
            raise AssertionError(f"panel {title!r}: Prometheus rejects {expr!r}: {error}") from None
        assert found, (f"panel {title!r} shows no data: {expr!r} returns nothing. Hint: try it in the notebook "
                       "with prom_query(...) right after the exercise 3 batch")
