"""A dashboard panel's query results, fetched like Grafana fetches them: variables at their selection,
$__interval and $__rate_interval computed per panel, range queries over the time range, instant queries at its end.
Used by the renderer (drawing.py); a query Prometheus rejects shows as no data, as in Grafana.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from stack.grafana import variables as gv
from stack.grafana.panels import Target, panel_targets
from stack.promapi import Prometheus, QueryError


@dataclass
class Series:
    """One line of a timeseries panel: its legend name and its points."""
    name: str
    times: list[float]
    values: list[float]


def legend_name(fmt: str | None, labels: Mapping[str, str], ref: str) -> str:
    """A series' name as Grafana's legend shows it: the legendFormat ({{label}}), else its labels."""
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: shown.get(m.group(1), ""), fmt).strip() or ref
    if not shown:
        return labels.get("__name__", ref)
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


class PanelData:
    """The query results of any panel of one dashboard, over one time range."""

    def __init__(self, prometheus: Prometheus, start: float, end: float, scrape: float,
                 selections: dict[str, gv.Selection]) -> None:
        self.prometheus, self.start, self.end, self.scrape = prometheus, start, end, scrape
        self.selections = selections

    def _targets(self, panel: Mapping) -> list[tuple[Target, str, Mapping]]:
        timing = gv.panel_timing(self.start, self.end, panel, self.scrape)
        values = {**gv.builtin_values(timing), **self.selections}
        raw = {str(t.get("refId")): t for t in panel.get("targets") or [] if isinstance(t, Mapping)}
        found = []
        for target in panel_targets(panel):
            text, _ = gv.substitute(target.expr, values)
            found.append((target, text, raw.get(target.ref, {})))
        return found

    def range_series(self, panel: Mapping) -> list[Series]:
        """Every series of the panel's queries over the time range."""
        timing = gv.panel_timing(self.start, self.end, panel, self.scrape)
        found: list[Series] = []
        for target, text, raw in self._targets(panel):
            try:
                result = self.prometheus.range(text, gv.range_start(self.start, self.end, timing.interval),
                                               self.end, timing.interval)
            except QueryError:
                continue
            for series in result:
                found.append(Series(legend_name(raw.get("legendFormat"), series.labels, target.ref),
                                    [t for t, _ in series.points], [v for _, v in series.points]))
        return found

    def instant_values(self, panel: Mapping) -> list[tuple[str, float]]:
        """Each series' legend name and value at the end of the time range."""
        found: list[tuple[str, float]] = []
        for target, text, raw in self._targets(panel):
            try:
                result = self.prometheus.query(text, self.end)
            except QueryError:
                continue
            for sample in result:
                found.append((legend_name(raw.get("legendFormat"), sample.labels, target.ref), sample.value))
        return found
