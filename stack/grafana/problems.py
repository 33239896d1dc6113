"""What the dashboard checker reports: a `Problem` (dashboard, panel title, kind, message, query) and the kinds.

A leaf module: the structure check (structure.py), the live check (live.py) and their callers all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass

STRUCTURE = "structure"
DATASOURCE = "datasource"
VARIABLE = "variable"
UNIT = "unit"
RATIO = "ratio"
SYNTAX = "syntax"
QUERY = "query"
NO_DATA = "no-data"
UNREACHABLE = "unreachable"
KINDS = (STRUCTURE, DATASOURCE, VARIABLE, UNIT, RATIO, SYNTAX, QUERY, NO_DATA, UNREACHABLE)


@dataclass(frozen=True)
class Problem:
    """One problem of one dashboard, written for the person who has to fix it (panel None: dashboard-wide)."""
    dashboard: str
    panel: str | None
    kind: str
    message: str
    expr: str | None = None

    def __str__(self) -> str:
        where = self.dashboard if self.panel is None else f"{self.dashboard} / panel {self.panel!r}"
        text = f"{where}: {self.message}"
        if self.expr:
            text += "\n    query: " + " ".join(self.expr.split())
        return text


class Report:
    """The problems found in one dashboard so far, each once."""

    def __init__(self, dashboard: str) -> None:
        self.dashboard = dashboard
        self.problems: list[Problem] = []

    def add(self, kind: str, message: str, panel: str | None = None, expr: str | None = None) -> None:
        problem = Problem(self.dashboard, panel, kind, message, expr)
        if problem not in self.problems:
            self.problems.append(problem)
