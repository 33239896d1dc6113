"""The live dashboard check: run every panel query against Prometheus as Grafana would.

Template variables are resolved from Prometheus label values like Grafana does, builtins ($__interval,
$__rate_interval, $__range) are computed from the dashboard's time range, and every query must be accepted by
Prometheus and return at least one number. A query with no data is explained: unknown metric names (with the
closest existing name), or the selector that matches no series.
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stack.grafana import promql
from stack.grafana import variables as gv
from stack.grafana.panels import Target, all_panels, dashboard_time_range, is_data_panel, panel_targets
from stack.grafana.panels import template_variables
from stack.grafana.problems import NO_DATA, QUERY, VARIABLE, Problem, Report
from stack.grafana.provisioning import scrape_interval
from stack.promapi import Prometheus, QueryError


def _has_number(values: Iterable[float]) -> bool:
    return any(not math.isnan(value) for value in values)


def _series_values(prometheus: Prometheus, target: Target, text: str, start: float, end: float,
                   interval: float) -> list[list[float]]:
    """Each result series' numbers: its value for an instant query, its points' values for a range query."""
    if target.instant:
        return [[sample.value] for sample in prometheus.query(text, end)]
    found = prometheus.range(text, gv.range_start(start, end, interval), end, interval)
    return [[value for _, value in series.points] for series in found]


@dataclass
class LiveContext:
    """Where and when the queries of one dashboard run, and its variables' selections."""
    prometheus: Prometheus
    start: float
    end: float
    scrape: float
    selections: dict[str, gv.Selection] = field(default_factory=dict)


def resolve_variables(dashboard: Mapping, context: LiveContext,
                      report: Report | None = None) -> dict[str, gv.Selection]:
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
                        report.add(VARIABLE, f"variable ${name}: Prometheus rejects {text!r}: {error.reason}")
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
            if not context.prometheus.series(shown, context.start, context.end):
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
    report = Report(name)
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
                results = _series_values(prometheus, target, text, start, end, timing.interval)
            except QueryError as error:
                report.add(QUERY, f"Prometheus rejects query {target.ref}: {error.reason}", target.title,
                           target.expr)
                continue
            if not results:
                report.add(NO_DATA, f"query {target.ref}: {_explain_empty(target, text, context)}", target.title,
                           target.expr)
            elif not _has_number(value for values in results for value in values):
                report.add(NO_DATA, f"query {target.ref} returns only NaN (0/0: a division by a rate that is zero "
                                    "everywhere, or a quantile of an empty histogram)", target.title, target.expr)
    return report.problems
