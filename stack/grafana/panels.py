"""Reading Grafana dashboard JSON: the dashboard itself, its panels (inside rows too), their queries, its template
variables and its time range. No Prometheus, no checks: the checker (check.py) and the renderer (snapshot.py)
both read dashboards through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.grafana import variables as gv
from stack.paths import REPO_ROOT

# Panel types that show no query results, so need neither queries nor a unit.
NO_QUERY_TYPES = frozenset({"row", "text", "news", "dashlist", "alertlist", "annolist", "welcome"})
DEFAULT_RANGE = "now-1h"


@dataclass(frozen=True)
class Target:
    """One panel query, with everything needed to run it."""
    panel: Mapping
    title: str
    ref: str
    expr: str
    instant: bool


def load(source: Path | str | Mapping) -> tuple[dict, str]:
    """The dashboard object and a name for messages, from a path, a JSON string or an already parsed object."""
    if isinstance(source, Mapping):
        data = dict(source)
        return data, str(data.get("title") or data.get("uid") or "dashboard")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        data = json.loads(source)
        return data, str(data.get("title") or "dashboard")
    path = Path(source)
    data = json.loads(path.read_text())
    title = data.get("title") if isinstance(data, dict) else None
    try:
        shown = str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = path.name
    return data, f"{title} ({shown})" if title else shown


def all_panels(panels: Iterable[Any]) -> Iterator[dict]:
    """Every panel, rows included, panels inside collapsed rows too."""
    for panel in panels:
        if isinstance(panel, dict):
            yield panel
            yield from all_panels(panel.get("panels") or [])


def panel_name(panel: Mapping) -> str:
    """The panel's title, or a name that says which untitled panel."""
    title = panel.get("title")
    if isinstance(title, str) and title.strip():
        return title
    return f"untitled panel id {panel.get('id', '?')}"


def template_variables(dashboard: Mapping) -> list[dict]:
    """The dashboard's template variables (those with a name)."""
    templating = dashboard.get("templating") or {}
    found = templating.get("list") if isinstance(templating, Mapping) else None
    return [v for v in found or [] if isinstance(v, dict) and v.get("name")]


def is_data_panel(panel: Mapping) -> bool:
    """Whether the panel shows query results (not a row, text, library panel...)."""
    return panel.get("type") not in NO_QUERY_TYPES and not panel.get("libraryPanel")


def panel_targets(panel: Mapping) -> list[Target]:
    """The panel's visible PromQL queries."""
    found = []
    for target in panel.get("targets") or []:
        if not isinstance(target, Mapping) or target.get("hide"):
            continue
        expr = target.get("expr")
        if not isinstance(expr, str):
            continue
        instant = bool(target.get("instant")) and not target.get("range")
        found.append(Target(panel, panel_name(panel), str(target.get("refId", "?")), expr, instant))
    return found


def dashboard_time_range(dashboard: Mapping, now: float) -> tuple[float, float]:
    """The dashboard's time range (its "time" from/to, default the last hour) in unix seconds at `now`."""
    time_range = dashboard.get("time") if isinstance(dashboard.get("time"), Mapping) else {}
    try:
        start = gv.parse_relative_time(time_range.get("from", DEFAULT_RANGE), now)
        end = gv.parse_relative_time(time_range.get("to", "now"), now)
    except ValueError:
        start, end = gv.parse_relative_time(DEFAULT_RANGE, now), now
    if end <= start:
        start, end = gv.parse_relative_time(DEFAULT_RANGE, now), now
    return start, end
