"""The dashboard checks that need no Prometheus: structure, datasource, template variables, units and ratios.

- structure: a dashboard object with uid, title, schemaVersion and panels; unique integer panel ids; a
  gridPos inside the 24-column grid; every data panel has a title, a unit and queries with an expression and a
  unique refId;
- datasource: every query (or its panel) names the provisioned Prometheus datasource by uid
  (stack/grafana/provisioning/datasources/prometheus.yaml), or a datasource variable;
- variables: every `$var` a query uses is defined by the dashboard (or is a Grafana builtin such as
  $__rate_interval);
- ratio: no `rate(a) / rate(b)` without an aggregation on either side in a ratio panel (percent unit or a
  title about a ratio/share/availability), and never for errors/total of one metric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stack.grafana import promql
from stack.grafana import variables as gv
from stack.grafana.panels import Target, all_panels, is_data_panel, panel_name, panel_targets, template_variables
from stack.grafana.problems import DATASOURCE, RATIO, STRUCTURE, SYNTAX, UNIT, VARIABLE, Problem, Report
from stack.grafana.provisioning import datasource_uid

GRID_COLUMNS = 24
UNITLESS_TYPES = frozenset({"table", "logs", "nodeGraph", "traces", "flamegraph", "state-timeline", "status-history"})
RATIO_UNITS = frozenset({"percentunit", "percent"})
RATIO_TITLE = re.compile(r"ratio|share|percent|%|availability|success rate|error rate|\bsli\b|fraction", re.I)
UID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
DATASOURCE_VARIABLE = re.compile(r"^\$\{?(\w+)\}?$")


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


def _check_variables(dashboard: Mapping, report: Report, expected_uid: str, datasource_vars: set[str]) -> None:
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


def _check_expression(target: Target, text: str, report: Report, parse_errors: bool) -> None:
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
    report = Report(name)
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

