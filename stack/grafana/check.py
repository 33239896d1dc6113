"""Prove a Grafana dashboard without Grafana: its structure, its datasource, and every panel query against the
live Prometheus.

    from stack.grafana.check import check_dashboard
    problems = check_dashboard("my-dashboard.json")            # structure + live queries
    problems = check_dashboard(data, live=False)                # structure only (no stack needed)
    for p in problems: print(p)                                 # "LLM operations / panel 'Error ratio': ..."

Each `Problem` names the dashboard, the panel title (None for dashboard-wide problems), a `kind` (see KINDS) and
a message written for the person who has to fix it. An empty list means the dashboard passed.

Checks:
- structure: a dashboard object with uid, title, schemaVersion and panels; unique integer panel ids; a
  gridPos inside the 24-column grid; every data panel has a title, a unit and queries with an expression and a
  unique refId;
- datasource: every query (or its panel) names the provisioned Prometheus datasource by uid
  (stack/grafana/provisioning/datasources/prometheus.yaml), or a datasource variable;
- variables: every `$var` a query uses is defined by the dashboard (or is a Grafana builtin such as
  $__rate_interval);
- ratio: no `rate(a) / rate(b)` without an aggregation on either side in a ratio panel (percent unit or a
  title about a ratio/share/availability), and never for errors/total of one metric;
- live (live=True): variables are resolved against Prometheus like Grafana does, builtins are computed from the
  dashboard's time range, and every query must be accepted by Prometheus and return at least one number.
  A query with no data is explained: unknown metric names (with the closest existing name), or the selector
  that matches no series.

`python -m stack.grafana.check` (what `make dashboards-check` runs) drives a few seconds of seeded traffic
through the gateway first, then checks every dashboard under stack/grafana/dashboards/.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stack import topology
from stack.grafana import promql
from stack.grafana import variables as gv
from stack.grafana.provisioning import DASHBOARDS_DIR, dashboard_files, datasource_uid, scrape_interval
from stack.paths import REPO_ROOT

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

GRID_COLUMNS = 24
# Panel types that show no query results, so need neither queries nor a unit.
NO_QUERY_TYPES = frozenset({"row", "text", "news", "dashlist", "alertlist", "annolist", "welcome"})
UNITLESS_TYPES = frozenset({"table", "logs", "nodeGraph", "traces", "flamegraph", "state-timeline", "status-history"})
RATIO_UNITS = frozenset({"percentunit", "percent"})
RATIO_TITLE = re.compile(r"ratio|share|percent|%|availability|success rate|error rate|\bsli\b|fraction", re.I)
UID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
DATASOURCE_VARIABLE = re.compile(r"^\$\{?(\w+)\}?$")
DEFAULT_RANGE = "now-1h"


@dataclass(frozen=True)
class Problem:
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


@dataclass(frozen=True)
class Target:
    """One panel query, with everything needed to run it."""
    panel: Mapping
    title: str
    ref: str
    expr: str
    instant: bool


# ---------------------------------------------------------------- loading


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
    title = panel.get("title")
    if isinstance(title, str) and title.strip():
        return title
    return f"untitled panel id {panel.get('id', '?')}"


def template_variables(dashboard: Mapping) -> list[dict]:
    templating = dashboard.get("templating") or {}
    found = templating.get("list") if isinstance(templating, Mapping) else None
    return [v for v in found or [] if isinstance(v, dict) and v.get("name")]


def is_data_panel(panel: Mapping) -> bool:
    return panel.get("type") not in NO_QUERY_TYPES and not panel.get("libraryPanel")


def panel_targets(panel: Mapping) -> list[Target]:
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


# ---------------------------------------------------------------- structure


class _Report:
    def __init__(self, dashboard: str) -> None:
        self.dashboard = dashboard
        self.problems: list[Problem] = []

    def add(self, kind: str, message: str, panel: str | None = None, expr: str | None = None) -> None:
        problem = Problem(self.dashboard, panel, kind, message, expr)
        if problem not in self.problems:
            self.problems.append(problem)


def _datasource_problem(ref: Any, expected_uid: str, datasource_vars: set[str]) -> str | None:
    """Why this datasource reference is not the provisioned Prometheus, or None if it is."""
    if ref is None:
        return None  # decided by the caller (panel vs target)
    if isinstance(ref, str):
        if DATASOURCE_VARIABLE.match(ref) and DATASOURCE_VARIABLE.match(ref).group(1) in datasource_vars:
            return None
        return (f"datasource is the name {ref!r}; refer to the provisioned Prometheus by uid: "
                f'{{"type": "prometheus", "uid": "{expected_uid}"}}')
    if not isinstance(ref, Mapping):
        return f"datasource {ref!r} is not an object with a uid"
    uid = ref.get("uid")
    if uid in ("-- Mixed --", "-- Dashboard --", "-- Grafana --"):
        return None if uid == "-- Mixed --" else f"datasource {uid!r} is not Prometheus"
    if not uid:
        return f'datasource has no uid; use {{"type": "prometheus", "uid": "{expected_uid}"}}'
    variable = DATASOURCE_VARIABLE.match(str(uid))
    if variable:
        if variable.group(1) in datasource_vars:
            return None
        return (f"datasource uid {uid!r} refers to no datasource variable of this dashboard (an exported "
                f"dashboard's ${{DS_...}} input is not resolved by provisioning); use the uid {expected_uid!r}")
    if uid != expected_uid:
        return (f"datasource uid {uid!r} is not the provisioned Prometheus datasource {expected_uid!r} "
                "(stack/grafana/provisioning/datasources/prometheus.yaml); Grafana would show 'datasource not found'")
    if ref.get("type") not in (None, "prometheus"):
        return f"datasource type {ref.get('type')!r} should be 'prometheus'"
    return None


def _check_variables(dashboard: Mapping, report: _Report, expected_uid: str, datasource_vars: set[str]) -> None:
    names: set[str] = set()
    for variable in template_variables(dashboard):
        name = variable["name"]
        if name in names:
            report.add(VARIABLE, f"template variable ${name} is defined twice")
        names.add(name)
        if variable.get("type") == "query":
            problem = _datasource_problem(variable.get("datasource"), expected_uid, datasource_vars)
            if variable.get("datasource") is None:
                problem = f"query variable ${name} has no datasource; use the uid {expected_uid!r}"
            if problem:
                report.add(DATASOURCE, f"variable ${name}: {problem}")
            if not gv.variable_query(variable):
                report.add(VARIABLE, f"query variable ${name} has no query")


def _is_ratio_panel(panel: Mapping) -> bool:
    unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
    return unit in RATIO_UNITS or bool(RATIO_TITLE.search(str(panel.get("title") or "")))


def _check_expression(target: Target, text: str, report: _Report, parse_errors: bool) -> None:
    try:
        tree = promql.parse(text)
    except promql.PromQLSyntaxError as error:
        if parse_errors:
            report.add(SYNTAX, f"query {target.ref} is not valid PromQL: {error}", target.title, target.expr)
        return
    for finding in promql.unaggregated_ratios(tree):
        if not (finding.same_metric or _is_ratio_panel(target.panel)):
            continue
        if finding.same_metric:
            why = (f"rate({finding.numerator}{{...}}) / rate({finding.numerator}) divides every series by the "
                   "series with the very same labels (itself), so it is 1 wherever the numerator has data")
        else:
            why = (f"{finding.numerator} / {finding.denominator} is divided series by series, one ratio per label "
                   "set, instead of one ratio per group")
        report.add(RATIO, f"query {target.ref} divides rate()s that are not aggregated: {why}. Aggregate both "
                          "sides first, e.g. sum by (model) (rate(...)) / sum by (model) (rate(...))",
                   target.title, target.expr)


def check_structure(dashboard: Mapping, name: str = "dashboard", *, expected_uid: str | None = None,
                    parse_errors: bool = True) -> list[Problem]:
    """Everything that can be checked without Prometheus."""
    report = _Report(name)
    expected_uid = expected_uid or datasource_uid()
    if not isinstance(dashboard, Mapping):
        report.add(STRUCTURE, "the file does not hold a JSON object")
        return report.problems
    if "dashboard" in dashboard and "panels" not in dashboard:
        report.add(STRUCTURE, "this is an API export wrapper ({\"dashboard\": ..., \"meta\": ...}); save the inner "
                              "\"dashboard\" object, which is what Grafana's file provisioning loads")
        return report.problems
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        value = dashboard.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value.strip()):
            report.add(STRUCTURE, f"required field {key!r} is missing or not a {kind.__name__}")
    uid = dashboard.get("uid")
    if isinstance(uid, str) and uid and not UID_PATTERN.match(uid):
        report.add(STRUCTURE, f"uid {uid!r} must be 1-40 letters, digits, '-' or '_' (it is part of the URL)")
    panels = dashboard.get("panels") if isinstance(dashboard.get("panels"), list) else []
    if isinstance(dashboard.get("panels"), list) and not panels:
        report.add(STRUCTURE, "the dashboard has no panels")

    datasource_vars = {v["name"] for v in template_variables(dashboard) if v.get("type") == "datasource"}
    _check_variables(dashboard, report, expected_uid, datasource_vars)
    defined = {v["name"] for v in template_variables(dashboard)}
    offline = {v["name"]: gv.offline_selection(v) for v in template_variables(dashboard)}
    offline.update(gv.builtin_values(gv.QueryTiming(0, 3600, 15, 60)))

    seen_ids: dict[int, str] = {}
    for panel in all_panels(panels):
        title = panel_name(panel)
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or isinstance(panel_id, bool):
            report.add(STRUCTURE, f"panel has no integer id (id={panel_id!r})", title)
        elif panel_id in seen_ids:
            report.add(STRUCTURE, f"panel id {panel_id} is also used by panel {seen_ids[panel_id]!r}; ids must be "
                                  "unique (links and alerts point at panels by id)", title)
        else:
            seen_ids[panel_id] = title
        if not isinstance(panel.get("type"), str) or not panel.get("type"):
            report.add(STRUCTURE, "panel has no type", title)
        grid = panel.get("gridPos")
        if not isinstance(grid, Mapping) or not all(isinstance(grid.get(k), int) for k in "hwxy"):
            report.add(STRUCTURE, "panel has no gridPos {h, w, x, y} of whole numbers", title)
        elif grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["y"] < 0 or grid["x"] + grid["w"] > GRID_COLUMNS:
            report.add(STRUCTURE, f"gridPos {dict(grid)} does not fit the {GRID_COLUMNS}-column grid", title)
        if not is_data_panel(panel):
            continue
        if not (isinstance(panel.get("title"), str) and panel["title"].strip()):
            report.add(STRUCTURE, "data panel has no title (nobody can tell what it shows)", title)
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if panel.get("type") not in UNITLESS_TYPES and not unit:
            report.add(UNIT, "panel sets no unit (fieldConfig.defaults.unit): is it requests/s, seconds, "
                             "USD or a ratio?", title)
        raw_targets = [t for t in panel.get("targets") or [] if isinstance(t, Mapping)]
        if not raw_targets:
            report.add(STRUCTURE, "data panel has no queries (targets)", title)
            continue
        panel_ds = panel.get("datasource")
        panel_ds_problem = _datasource_problem(panel_ds, expected_uid, datasource_vars)
        if panel_ds_problem:
            report.add(DATASOURCE, f"panel {panel_ds_problem}", title)
        refs: set[str] = set()
        for target in raw_targets:
            ref = target.get("refId")
            if not ref:
                report.add(STRUCTURE, "a query has no refId", title)
            elif ref in refs:
                report.add(STRUCTURE, f"two queries share refId {ref!r}", title)
            refs.add(str(ref))
            target_ds = target.get("datasource")
            problem = _datasource_problem(target_ds, expected_uid, datasource_vars)
            if problem:
                report.add(DATASOURCE, f"query {ref}: {problem}", title)
            if target_ds is None and panel_ds is None:
                report.add(DATASOURCE, f"query {ref} has no datasource (nor has its panel): set "
                                       f'{{"type": "prometheus", "uid": "{expected_uid}"}}', title)
            elif target_ds is None and isinstance(panel_ds, Mapping) and panel_ds.get("uid") == "-- Mixed --":
                report.add(DATASOURCE, f"query {ref} has no datasource in a Mixed panel", title)
            if not target.get("hide") and not (isinstance(target.get("expr"), str) and target["expr"].strip()):
                report.add(STRUCTURE, f"query {ref} has no PromQL expression (expr)", title)
        for target in panel_targets(panel):
            if not target.expr.strip():
                continue
            text, unknown = gv.substitute(target.expr, offline)
            for variable in unknown:
                if variable not in defined:
                    report.add(VARIABLE, f"query {target.ref} uses ${variable}, which is neither a variable of this "
                                         "dashboard nor a Grafana builtin", title, target.expr)
            if not unknown:
                _check_expression(target, text, report, parse_errors)
    return report.problems


# ---------------------------------------------------------------- live Prometheus


class Prometheus:
    """The few Prometheus HTTP API calls the live check needs."""

    def __init__(self, url: str | None = None, timeout: float = 10.0) -> None:
        self.url = (url or topology.load().services["prometheus"].url).rstrip("/")
        self.client = httpx.Client(timeout=timeout)
        self._names: set[str] | None = None

    def close(self) -> None:
        self.client.close()

    def _call(self, path: str, params: Mapping[str, Any]) -> Any:
        try:
            response = self.client.post(f"{self.url}{path}", data=dict(params))
        except httpx.HTTPError as error:
            raise ConnectionError(f"cannot reach Prometheus at {self.url} ({error}); is the stack up "
                                  "(`make status`, `make up`)?") from error
        try:
            body = response.json()
        except ValueError:
            raise QueryError(f"HTTP {response.status_code}: {response.text.strip()[:300]}") from None
        if body.get("status") != "success":
            raise QueryError(str(body.get("error") or response.text))
        return body["data"]

    def instant(self, expr: str, at: float) -> list[dict]:
        data = self._call("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] == "string":
            return []
        return data["result"]

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        data = self._call("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                   "step": f"{max(step, 0.001):g}"})
        return data["result"]

    def label_values(self, label: str, match: str | None, start: float, end: float) -> list[str]:
        params: dict[str, Any] = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
        if match:
            params["match[]"] = match
        response = self._get(f"/api/v1/label/{label}/values", params)
        return sorted(response)

    def series_count(self, selector: str, start: float, end: float) -> int:
        return len(self._get("/api/v1/series", {"match[]": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"}))

    def metric_names(self) -> set[str]:
        if self._names is None:
            self._names = set(self._get("/api/v1/label/__name__/values", {}))
        return self._names

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        try:
            response = self.client.get(f"{self.url}{path}", params=dict(params))
        except httpx.HTTPError as error:
            raise ConnectionError(f"cannot reach Prometheus at {self.url} ({error}); is the stack up?") from error
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(str(body.get("error") or response.text))
        return body["data"]


class QueryError(RuntimeError):
    """Prometheus rejected a query."""


def _has_number(result: list[dict], instant: bool) -> bool:
    for item in result:
        values = [item["value"]] if instant else item.get("values") or []
        for _, value in values:
            try:
                if not math.isnan(float(value)):
                    return True
            except (TypeError, ValueError):
                continue
    return False


@dataclass
class LiveContext:
    prometheus: Prometheus
    start: float
    end: float
    scrape: float
    selections: dict[str, gv.Selection] = field(default_factory=dict)


def dashboard_time_range(dashboard: Mapping, now: float) -> tuple[float, float]:
    time_range = dashboard.get("time") if isinstance(dashboard.get("time"), Mapping) else {}
    try:
        start = gv.parse_relative_time(time_range.get("from", DEFAULT_RANGE), now)
        end = gv.parse_relative_time(time_range.get("to", "now"), now)
    except ValueError:
        start, end = gv.parse_relative_time(DEFAULT_RANGE, now), now
    if end <= start:
        start, end = gv.parse_relative_time(DEFAULT_RANGE, now), now
    return start, end


def resolve_variables(dashboard: Mapping, context: LiveContext,
                      report: _Report | None = None) -> dict[str, gv.Selection]:
    """Each template variable's selection as Grafana would compute it, asking Prometheus for label values."""
    selections: dict[str, gv.Selection] = {}
    builtins = gv.builtin_values(gv.QueryTiming(context.start, context.end, context.scrape, 4 * context.scrape))
    for variable in template_variables(dashboard):
        name, kind = variable["name"], variable.get("type")
        values: list[str] | None = None
        if kind == "query":
            text = gv.variable_query(variable)
            parsed = gv.parse_label_values(text) if text else None
            if parsed:
                match, label = parsed
                if match:
                    match, _ = gv.substitute(match, {**builtins, **selections})
                try:
                    values = context.prometheus.label_values(label, match, context.start, context.end)
                except QueryError as error:
                    if report:
                        report.add(VARIABLE, f"variable ${name}: Prometheus rejects {text!r}: {error}")
                    values = []
                regex = variable.get("regex")
                if regex and values:
                    try:
                        pattern = re.compile(regex.strip("/"))
                        values = [v for v in values if pattern.search(v)]
                    except re.error:
                        pass
                if not values and report:
                    report.add(VARIABLE, f"variable ${name}: {text} finds no values (no series of that metric "
                                         "with that label in the time range)")
        elif kind in {"custom", "interval"}:
            values = gv.custom_options(variable)
        if values:
            selections[name] = gv.selection_for(variable, values)
        else:
            selections[name] = gv.offline_selection(variable)
    return selections


def _explain_empty(target: Target, text: str, context: LiveContext) -> str:
    """Why a query returns nothing: an unknown metric name, or the selector that matches no series."""
    try:
        tree = promql.parse(text)
    except promql.PromQLSyntaxError:
        return "it returns no data"
    names = context.prometheus.metric_names()
    hints = []
    for metric in promql.metric_names(tree):
        if metric not in names:
            close = difflib.get_close_matches(metric, names, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            hints.append(f"metric {metric} does not exist in Prometheus{hint}")
    if hints:
        return "it returns no data: " + "; ".join(hints)
    for selector in promql.selectors(tree):
        if not selector.matchers and not selector.name:
            continue
        matchers = ",".join(f'{m.label}{m.op}"{_escape(m.value)}"' for m in selector.matchers)
        shown = f"{selector.name or ''}{{{matchers}}}"
        try:
            if context.prometheus.series_count(shown, context.start, context.end) == 0:
                return f"it returns no data: {shown} matches no series in the time range"
        except QueryError:
            continue
    return "it returns no data (every selector matches series, so the operations between them leave nothing: " \
           "check `on`/`by` labels of the binary operators)"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def check_live(dashboard: Mapping, name: str, *, prometheus: Prometheus, now: float | None = None,
               scrape: float | None = None) -> list[Problem]:
    """Run every panel query as Grafana would (variables substituted, instant or range) against Prometheus."""
    report = _Report(name)
    now = time.time() if now is None else now
    scrape = scrape if scrape is not None else gv.parse_duration(scrape_interval())
    start, end = dashboard_time_range(dashboard, now)
    context = LiveContext(prometheus, start, end, scrape)
    context.selections = resolve_variables(dashboard, context, report)
    for panel in all_panels(dashboard.get("panels") or []):
        if not is_data_panel(panel):
            continue
        timing = gv.panel_timing(start, end, panel, scrape)
        values: dict[str, gv.Selection | str] = {**gv.builtin_values(timing), **context.selections}
        for target in panel_targets(panel):
            if not target.expr.strip():
                continue
            text, unknown = gv.substitute(target.expr, values)
            if unknown:
                continue  # reported by the structure check
            try:
                if target.instant:
                    result = prometheus.instant(text, end)
                else:
                    result = prometheus.range(text, gv.range_start(start, end, timing.interval), end,
                                              timing.interval)
            except QueryError as error:
                report.add(QUERY, f"Prometheus rejects query {target.ref}: {error}", target.title, target.expr)
                continue
            if not result:
                report.add(NO_DATA, f"query {target.ref}: {_explain_empty(target, text, context)}", target.title,
                           target.expr)
            elif not _has_number(result, target.instant):
                report.add(NO_DATA, f"query {target.ref} returns only NaN (0/0: a division by a rate that is zero "
                                    "everywhere, or a quantile of an empty histogram)", target.title, target.expr)
    return report.problems


def check_dashboard(dashboard: Path | str | Mapping, *, live: bool = True, datasource_uid: str | None = None,
                    prometheus: Prometheus | str | None = None, now: float | None = None) -> list[Problem]:
    """Every problem of one dashboard (a path, a JSON string or a parsed dict); [] means it passed.

    live=False checks only what needs no Prometheus (and then also reports PromQL syntax errors found by the
    built-in parser). live=True also runs every query against `prometheus` (a Prometheus object or URL; by
    default the running stack's, from stack/topology.yaml and LLMOBS_PORT_OFFSET).
    """
    try:
        data, name = load(dashboard)
    except (OSError, ValueError) as error:
        return [Problem(str(dashboard), None, STRUCTURE, f"cannot read the dashboard: {error}")]
    problems = check_structure(data, name, expected_uid=datasource_uid, parse_errors=not live)
    if not live or not isinstance(data, Mapping) or not isinstance(data.get("panels"), list):
        return problems
    client = prometheus if isinstance(prometheus, Prometheus) else Prometheus(prometheus)
    try:
        problems += check_live(data, name, prometheus=client, now=now)
    except ConnectionError as error:
        problems.append(Problem(name, None, UNREACHABLE, str(error)))
    finally:
        if client is not prometheus:
            client.close()
    return problems


def check_dashboards(paths: Iterable[Path] | None = None, *, live: bool = True,
                     prometheus: Prometheus | str | None = None) -> list[Problem]:
    """check_dashboard for every dashboard JSON under stack/grafana/dashboards (or the given paths)."""
    files = list(paths) if paths is not None else dashboard_files()
    client = prometheus if isinstance(prometheus, Prometheus) or not live else Prometheus(prometheus)
    problems: list[Problem] = []
    now = time.time()
    try:
        for path in files:
            problems += check_dashboard(path, live=live, prometheus=client, now=now)
    finally:
        if isinstance(client, Prometheus) and client is not prometheus:
            client.close()
    return problems


# ---------------------------------------------------------------- seeded load


def seed_load(seconds: float | None = None, rate_per_model: float = 3.0) -> dict[int, int]:
    """A few seconds of chat traffic through the gateway for every catalog model and department, then wait until
    Prometheus has scraped it, so every panel has something to show. Returns the HTTP status counts."""
    from stack import catalog
    from stack.traffic import SteadyTraffic

    prometheus = Prometheus()
    try:
        scrape = _prometheus_scrape_interval(prometheus)
        before = _requests_seen(prometheus)
    finally:
        prometheus.close()
    # Two samples of every new series (rate() needs two) and a little more.
    seconds = seconds if seconds is not None else max(5.0, 3 * scrape)
    cat = catalog.load()
    departments = list(cat.departments)
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset in (0, len(cat.model_names)):
            department = departments[(index + offset) % len(departments)]
            generators.append(SteadyTraffic(model, rate=rate_per_model / 2, max_seconds=seconds,
                                            max_requests=int(seconds * rate_per_model) + 1, department=department))
    for generator in generators:
        generator.__enter__()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    statuses: dict[int, int] = {}
    for generator in generators:
        generator.stop()
        for status, count in generator.result.by_status.items():
            statuses[status] = statuses.get(status, 0) + count
    answered = sum(statuses.values())
    prometheus = Prometheus()
    try:
        wait_until = time.monotonic() + 3 * scrape + 10
        while time.monotonic() < wait_until and _requests_seen(prometheus) < before + answered * 0.9:
            time.sleep(0.5)
        time.sleep(min(scrape, 15) + 1)  # one more scrape and rule evaluation: rate() needs two samples
    finally:
        prometheus.close()
    return statuses


def _requests_seen(prometheus: Prometheus) -> float:
    result = prometheus.instant('sum(llm_requests_total{job="gateway"})', time.time())
    return float(result[0]["value"][1]) if result else 0.0


def _prometheus_scrape_interval(prometheus: Prometheus) -> float:
    try:
        config = prometheus._get("/api/v1/status/config", {})["yaml"]
        match = re.search(r"^\s*scrape_interval:\s*(\S+)", config, re.M)
        return gv.parse_duration(match.group(1)) if match else 15.0
    except (QueryError, KeyError, ValueError):
        return 15.0


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.grafana.check",
        description="Check Grafana dashboards: structure, datasource uid, and every query against the live "
                    "Prometheus (`make up` first).")
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"dashboard JSON files or folders (default: {DASHBOARDS_DIR.relative_to(REPO_ROOT)})")
    parser.add_argument("--offline", action="store_true", help="structure only; no Prometheus needed")
    parser.add_argument("--no-seed", action="store_true", help="do not send seeded traffic through the gateway first")
    parser.add_argument("--seed-seconds", type=float, default=None, help="seconds of seeded traffic")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths or [DASHBOARDS_DIR]:
        files += dashboard_files(path) if path.is_dir() else [path]
    if not files:
        print("no dashboard JSON found", file=sys.stderr)
        return 1
    if not args.offline and not args.no_seed:
        try:
            statuses = seed_load(args.seed_seconds)
        except (ConnectionError, httpx.HTTPError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"seeded traffic: {sum(statuses.values())} requests {dict(sorted(statuses.items()))}")
    problems = check_dashboards(files, live=not args.offline)
    if any(p.kind == UNREACHABLE for p in problems):
        print(f"error: {next(p for p in problems if p.kind == UNREACHABLE).message}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    panels = sum(1 for f in files for p in all_panels(load(f)[0].get("panels") or []) if is_data_panel(p))
    mode = "structure only" if args.offline else "structure and live queries"
    if problems:
        print(f"\n{len(problems)} problem(s) in {len(files)} dashboard(s) ({mode})", file=sys.stderr)
        return 1
    print(f"{len(files)} dashboards, {panels} panels: all OK ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
