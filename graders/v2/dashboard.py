"""Lab V2, exercise 5: the structure of the student's dashboard (panels, queries, datasource, titles, units), built
from stand-in queries so exercise 3 does not matter here. `make grade` also runs every panel query of the written
file against Prometheus (graders/checks/test_v2.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from graders.labcheck import expect, expect_equal, expect_type, reports_stubs

QUERY_NAMES = ("REQUEST_RATE", "ERROR_RATIO", "P95_LATENCY", "COST_PER_HOUR", "TOKENS_PER_MINUTE")
UNITS = {"REQUEST_RATE": "reqps", "ERROR_RATIO": "percentunit", "P95_LATENCY": "s", "COST_PER_HOUR": "currencyUSD"}


def _panels(board: Mapping[str, Any]) -> list[dict]:
    """Every panel, including those inside rows."""
    panels = [p for p in board.get("panels", []) if p.get("type") != "row"]
    return panels + [p for row in board.get("panels", []) if row.get("type") == "row" for p in row.get("panels") or []]


@reports_stubs
def check_dashboard_json(build_dashboard: Callable[[dict[str, str]], Any], written: tuple[Path, Any] | None = None,
                         hidden: bool = False) -> None:
    """build_dashboard(queries) on vector(1) ... vector(5); hidden: the units and titles, and `written` (the file the
    notebook wrote, and the DASHBOARD it holds) agree."""
    queries = {name: f"vector({number})" for number, name in enumerate(QUERY_NAMES, start=1)}
    board = build_dashboard(queries)
    expect_type(board, dict, "build_dashboard(...)", "json.loads(JSONEncoder().encode(builder.build()))")
    json.dumps(board)
    panels = _panels(board)
    expect_equal(len(panels), 5, "number of panels", "one panel per query")
    exprs = [[target.get("expr") for target in panel.get("targets") or []] for panel in panels]
    expect_equal(sorted(e for found in exprs for e in found), sorted(queries.values()),
                 "the panels' queries (build_dashboard was given vector(1) ... vector(5))",
                 "one target per panel whose expr is queries[name]")
    for panel in panels:
        source = panel.get("datasource") or {}
        expect_equal((source.get("type"), source.get("uid")), ("prometheus", "prometheus"),
                     f"datasource of panel {panel.get('title')!r}", "PROMETHEUS_DATASOURCE")
        expect(bool(panel.get("title")), "a panel has no title", "every panel needs a title")
    if not hidden:
        return
    units = {(found or [None])[0]: ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
             for p, found in zip(panels, exprs)}
    expect_equal([units.get(queries[name]) for name in UNITS], list(UNITS.values()),
                 "units of the rate, ratio, latency and cost panels",
                 "the unit says what the query returns: requests per second, a 0-1 ratio (percentunit; percent expects "
                 "0-100), seconds (Prometheus histograms are in seconds), US dollars")
    expect(len({p.get("title") for p in panels}) == 5, "two panels share a title", "one title per panel")
    if written is not None:
        path, dashboard = written
        expect(json.loads(path.read_text()) == dashboard, f"{path} differs from DASHBOARD",
               "run the cell that writes the file")
