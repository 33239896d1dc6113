"""A dashboard panel's query results, fetched like Grafana fetches them: variables at their selection,
$__interval and $__rate_interval computed per panel, range queries over the time range, instant queries at its end.
Used by the renderer (drawing.py); a query Prometheus rejects shows as no data, as in Grafana.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from stack.grafana import variables as gv
from stack.grafana.panels import Target, panel_targets
from stack.promapi import Prometheus, QueryError


@dataclass
class Series:
    """One line of a timeseries panel: its legend name, its points and its labels."""
    name: str
    times: list[float]
    values: list[float]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BucketGrid:
    """A histogram's buckets over time as a heatmap panel shows them: one row per bucket (no longer cumulative)."""
    times: list[float]            # one column per time, ascending
    upper_bounds: list[float]     # one row per bucket, ascending; the last is usually +Inf
    values: list[list[float]]     # values[row][column], NaN where Prometheus returned no point


def _upper_bound(series: Series) -> float | None:
    try:
        return float(series.labels["le"])
    except (KeyError, ValueError):
        return None


def _bucket_value(cumulative: float, below: float) -> float:
    """One bucket's own value from its cumulative value and the one below (rate() noise never goes negative)."""
    if math.isnan(cumulative) or math.isnan(below):
        return math.nan
    return max(0.0, cumulative - below)


def bucket_grid(series: list[Series]) -> BucketGrid | None:
    """Cumulative `le` series (a query in heatmap format) as per-bucket values, as Grafana computes them: sorted by
    `le`, each bucket minus the one below it. None when no series has an `le` label."""
    by_bound = sorted(((bound, s) for s in series if (bound := _upper_bound(s)) is not None), key=lambda b: b[0])
    if not by_bound:
        return None
    times = sorted({t for _, s in by_bound for t in s.times})
    points = [dict(zip(s.times, s.values)) for _, s in by_bound]
    cumulative = [[at.get(t, math.nan) for t in times] for at in points]
    rows = [cumulative[0]]
    for below, above in zip(cumulative, cumulative[1:]):
        rows.append([_bucket_value(value, lower) for value, lower in zip(above, below)])
    return BucketGrid(times, [bound for bound, _ in by_bound], rows)


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
                                    [t for t, _ in series.points], [v for _, v in series.points],
                                    dict(series.labels)))
        return found

    def bucket_grid(self, panel: Mapping) -> BucketGrid | None:
        """A heatmap panel's histogram buckets over the time range."""
        return bucket_grid(self.range_series(panel))

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
