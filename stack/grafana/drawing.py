"""Render each dashboard to a PNG with matplotlib, from the live Prometheus: dashboards for students without
Docker (Grafana only runs in docker-compose) and the pictures in docs/dashboards.md.

    python -m stack.grafana.snapshot                 # every dashboard -> docs/img/dashboards/<uid>.png
    python -m stack.grafana.snapshot --demo 240      # first 4 minutes of scripted traffic and faults
    python -m stack.grafana.snapshot --out /tmp/snaps stack/grafana/dashboards/slo/llmobs-slo.json

Panels are laid out on Grafana's 24-column grid with their titles and units; queries run like Grafana runs them
(variables at their default selection, $__rate_interval and friends computed per panel). Timeseries panels are
drawn over the dashboard's time range, shortened to the time Prometheus has been running.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Wedge  # noqa: E402

from stack.grafana import check  # noqa: E402
from stack.grafana import variables as gv  # noqa: E402
from stack.grafana.provisioning import DASHBOARDS_DIR, dashboard_files, scrape_interval  # noqa: E402
from stack.paths import DOCS_DIR, REPO_ROOT  # noqa: E402

OUT_DIR = DOCS_DIR / "img" / "dashboards"
FIG_WIDTH_IN = 18.0
DPI = 100
ROW_UNIT_IN = FIG_WIDTH_IN / 24 * 0.42   # Grafana: a grid row is 30 px, a column ~1/24 of ~1800 px
HEADER_IN = 0.75
PAD = 0.004
MAX_LEGEND_ROWS = 4

# Grafana's dark theme and classic palette.
BACKGROUND, PANEL, BORDER, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9e"
PALETTE = ("#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0", "#508642",
           "#CCA300", "#447EBC", "#C15C17")
NAMED_COLORS = {"green": "#73BF69", "yellow": "#FADE2A", "orange": "#FF9830", "red": "#F2495C", "blue": "#5794F2",
                "purple": "#B877D9", "text": TEXT, "transparent": PANEL}


# ---------------------------------------------------------------- units


def _si(value: float, suffix: str = "") -> str:
    magnitude = abs(value)
    for limit, letter in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{letter}{suffix}"
    return f"{_plain(value)}{suffix}"


def _plain(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def format_value(value: float, unit: str | None, decimals: int | None = None) -> str:
    """A value as Grafana would show it for the unit ids the course dashboards use."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    unit = unit or "short"
    if unit == "percentunit":
        return f"{_plain(value * 100, decimals)}%"
    if unit == "percent":
        return f"{_plain(value, decimals)}%"
    if unit == "s":
        magnitude = abs(value)
        if magnitude == 0:
            return "0 s"
        if magnitude < 1:
            return f"{_plain(value * 1000, None if decimals is None else max(0, decimals - 3))} ms"
        if magnitude < 60:
            return f"{_plain(value, decimals)} s"
        if magnitude < 3600:
            return f"{_plain(value / 60, decimals)} min"
        return f"{_plain(value / 3600, decimals)} hour"
    if unit == "reqps":
        return f"{_plain(value, decimals)} req/s"
    if unit == "currencyUSD":
        if abs(value) >= 1000:
            return "$" + _si(value)
        return f"${_plain(value, decimals)}"
    if unit.startswith("suffix:"):
        return f"{_plain(value, decimals) if abs(value) < 1000 else _si(value)}{unit[len('suffix:'):]}"
    if unit == "none":
        return _plain(value, decimals)
    return _si(value) if abs(value) >= 1000 else _plain(value, decimals)


def _color(name: str | None, fallback: str = TEXT) -> str:
    if not name:
        return fallback
    return NAMED_COLORS.get(name, name if name.startswith("#") or name.startswith("rgb") else fallback)


def threshold_steps(panel: Mapping) -> list[tuple[float | None, str]]:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get("steps") or []
    return [(s.get("value"), _color(s.get("color"))) for s in steps if isinstance(s, Mapping)]


def threshold_color(panel: Mapping, value: float) -> str:
    color = TEXT
    for limit, step_color in threshold_steps(panel):
        if limit is None or value >= limit:
            color = step_color
    return color


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Snapshot:
    path: Path
    dashboard: str
    panels: int                  # data panels drawn
    empty_panels: tuple[str, ...]  # titles of those that showed "No data"


@dataclass
class Series:
    name: str
    times: list[float]
    values: list[float]


def legend_name(fmt: str | None, labels: Mapping[str, str], ref: str) -> str:
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: shown.get(m.group(1), ""), fmt).strip() or ref
    if not shown:
        return labels.get("__name__", ref)
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class Renderer:
    def __init__(self, prometheus: check.Prometheus, start: float, end: float, scrape: float,
                 selections: dict[str, gv.Selection]) -> None:
        self.prometheus, self.start, self.end, self.scrape = prometheus, start, end, scrape
        self.selections = selections

    def _targets(self, panel: Mapping) -> list[tuple[check.Target, str, Mapping]]:
        timing = gv.panel_timing(self.start, self.end, panel, self.scrape)
        values = {**gv.builtin_values(timing), **self.selections}
        raw = {str(t.get("refId")): t for t in panel.get("targets") or [] if isinstance(t, Mapping)}
        found = []
        for target in check.panel_targets(panel):
            text, _ = gv.substitute(target.expr, values)
            found.append((target, text, raw.get(target.ref, {})))
        return found

    def range_series(self, panel: Mapping) -> list[Series]:
        timing = gv.panel_timing(self.start, self.end, panel, self.scrape)
        found: list[Series] = []
        for target, text, raw in self._targets(panel):
            try:
                result = self.prometheus.range(text, gv.range_start(self.start, self.end, timing.interval),
                                               self.end, timing.interval)
            except check.QueryError:
                continue
            for item in result:
                points = [(float(t), _float(v)) for t, v in item.get("values") or []]
                found.append(Series(legend_name(raw.get("legendFormat"), item["metric"], target.ref),
                                    [p[0] for p in points], [p[1] for p in points]))
        return found

    def instant_values(self, panel: Mapping) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for target, text, raw in self._targets(panel):
            try:
                result = self.prometheus.instant(text, self.end)
            except check.QueryError:
                continue
            for item in result:
                found.append((legend_name(raw.get("legendFormat"), item["metric"], target.ref),
                              _float(item["value"][1])))
        return found


# ---------------------------------------------------------------- drawing


def _style_axes(ax: plt.Axes) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_color(BORDER)
    ax.tick_params(colors=MUTED, labelsize=7)


Rect = tuple[float, float, float, float]


def _panel_box(fig: plt.Figure, rect: Rect, title: str) -> Rect:
    """Draws the panel background and title; returns the rectangle left for the content."""
    left, bottom, width, height = rect
    box = fig.add_axes(rect)
    box.set_xticks([])
    box.set_yticks([])
    _style_axes(box)
    title_in = 0.3 / (fig.get_figheight())
    box.text(0.01, 1 - title_in * 0.55 / height, title, transform=box.transAxes, color=TEXT, fontsize=9,
             fontweight="bold", va="center", ha="left", clip_on=True)
    return left, bottom, width, height - title_in


def _no_data(fig: plt.Figure, rect: tuple[float, float, float, float]) -> None:
    fig.text(rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, "No data", color=MUTED, fontsize=11,
             ha="center", va="center")


def draw_timeseries(fig: plt.Figure, rect: tuple, panel: Mapping, renderer: Renderer) -> bool:
    series = [s for s in renderer.range_series(panel) if any(not math.isnan(v) for v in s.values)]
    if not series:
        _no_data(fig, rect)
        return False
    left, bottom, width, height = rect
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    columns = max(2, min(5, int(width * fig_w / 2.4)))
    shown = series[:columns * MAX_LEGEND_ROWS]
    legend_in = math.ceil(len(shown) / columns) * 0.15 + 0.04
    ticks_in, y_labels_in = 0.24, 0.75
    ax = fig.add_axes((left + y_labels_in / fig_w, bottom + (legend_in + ticks_in) / fig_h,
                       width - (y_labels_in + 0.15) / fig_w, height - (legend_in + ticks_in + 0.08) / fig_h))
    _style_axes(ax)
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    custom = defaults.get("custom") or {}
    unit = defaults.get("unit")
    stacked = ((custom.get("stacking") or {}).get("mode") or "none") != "none"
    baseline: dict[float, float] = {}
    for index, item in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        times = [datetime.fromtimestamp(t, tz=timezone.utc) for t in item.times]
        if stacked:
            lower = [baseline.get(t, 0.0) for t in item.times]
            upper = [lo + (0 if math.isnan(v) else v) for lo, v in zip(lower, item.values)]
            baseline.update(zip(item.times, upper))
            ax.fill_between(times, lower, upper, color=color, alpha=0.45, linewidth=0, step=None)
            ax.plot(times, upper, color=color, linewidth=1, label=item.name)
        else:
            ax.plot(times, item.values, color=color, linewidth=1.2, label=item.name)
    style = (custom.get("thresholdsStyle") or {}).get("mode", "off")
    if style not in (None, "off"):
        for limit, color in threshold_steps(panel):
            if limit is not None:
                ax.axhline(limit, color=color, linestyle="--", linewidth=0.9, alpha=0.9)
    if defaults.get("min") is not None:
        ax.set_ylim(bottom=defaults["min"])
    if defaults.get("max") is not None:
        # Grafana draws a line at the axis maximum on the frame; leave a little room so it stays visible.
        highest = max((v for s in series for v in s.values if not math.isnan(v)), default=defaults["max"])
        low = ax.get_ylim()[0]
        top = max(defaults["max"], highest)
        ax.set_ylim(top=top + (top - low) * 0.04)
    ax.set_xlim(datetime.fromtimestamp(renderer.start, tz=timezone.utc),
                datetime.fromtimestamp(renderer.end, tz=timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: format_value(v, unit, None)))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4))
    ax.grid(color=BORDER, linewidth=0.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles[:len(shown)], labels[:len(shown)], loc="upper left",
               bbox_to_anchor=(left + 0.1 / fig_w, bottom + legend_in / fig_h), ncol=columns, fontsize=6.5,
               frameon=False, labelcolor=TEXT, handlelength=1.2, columnspacing=1.0, borderaxespad=0)
    return True


@dataclass(frozen=True)
class Instant:
    """A stat-like panel's current values (NaN-free unless every one is NaN) and how to print them."""
    values: list[tuple[str, float]]
    defaults: Mapping
    unit: str | None
    decimals: int | None


def _instant(fig: plt.Figure, rect: tuple, panel: Mapping, renderer: Renderer,
             drop_nan: bool = False) -> Instant | None:
    """The panel's current values and field defaults, or None (and "No data" drawn) when there are none."""
    values = [(n, v) for n, v in renderer.instant_values(panel) if not (drop_nan and math.isnan(v))]
    if not values or all(math.isnan(v) for _, v in values):
        _no_data(fig, rect)
        return None
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    return Instant(values, defaults, defaults.get("unit"), defaults.get("decimals"))


def _value_color(panel: Mapping, value: float) -> str:
    return MUTED if math.isnan(value) else threshold_color(panel, value)


def draw_stat(fig: plt.Figure, rect: tuple, panel: Mapping, renderer: Renderer) -> bool:
    found = _instant(fig, rect, panel, renderer)
    if found is None:
        return False
    left, bottom, width, height = rect
    count = len(found.values)
    for index, (name, value) in enumerate(found.values):
        x = left + width * (index + 0.5) / count
        fig.text(x, bottom + height * 0.42, format_value(value, found.unit, found.decimals),
                 color=_value_color(panel, value), fontsize=26 if count == 1 else 20, fontweight="bold",
                 ha="center", va="center")
        if count > 1:
            fig.text(x, bottom + height * 0.12, name, color=MUTED, fontsize=8, ha="center", va="center")
    return True


def draw_gauge(fig: plt.Figure, rect: tuple, panel: Mapping, renderer: Renderer) -> bool:
    found = _instant(fig, rect, panel, renderer)
    if found is None:
        return False
    left, bottom, width, height = rect
    low, high = found.defaults.get("min", 0) or 0, found.defaults.get("max", 1) or 1
    value = found.values[0][1]
    side = min(width * fig.get_figwidth(), height * fig.get_figheight())
    ax_w, ax_h = side / fig.get_figwidth(), side / fig.get_figheight()
    ax = fig.add_axes((left + (width - ax_w) / 2, bottom + 0.02 * height, ax_w, ax_h * 0.95))
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-0.35, 1.1)
    ax.axis("off")

    def angle(v: float) -> float:
        share = 0 if high == low else (min(max(v, low), high) - low) / (high - low)
        return 180 - 180 * share

    steps = threshold_steps(panel)
    for index, (limit, color) in enumerate(steps):
        start = low if limit is None else limit
        stop = steps[index + 1][0] if index + 1 < len(steps) else high
        if stop is None or start >= high:
            continue
        ax.add_patch(Wedge((0, 0), 1.0, angle(stop), angle(start), width=0.07, color=color))
    if not math.isnan(value):
        ax.add_patch(Wedge((0, 0), 0.9, 0, 180, width=0.22, color=BORDER))
        ax.add_patch(Wedge((0, 0), 0.9, angle(value), 180, width=0.22, color=_value_color(panel, value)))
    ax.text(0, -0.18, format_value(value, found.unit, found.decimals), color=_value_color(panel, value), fontsize=16,
            fontweight="bold", ha="center", va="center")
    return not math.isnan(value)


def draw_bargauge(fig: plt.Figure, rect: tuple, panel: Mapping, renderer: Renderer) -> bool:
    found = _instant(fig, rect, panel, renderer, drop_nan=True)
    if found is None:
        return False
    left, bottom, width, height = rect
    values = sorted(found.values, key=lambda item: item[1])
    ax = fig.add_axes((left + width * 0.2, bottom + height * 0.06, width * 0.62, height * 0.88))
    _style_axes(ax)
    names = [n for n, _ in values]
    numbers = [v for _, v in values]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(values))][::-1]
    ax.barh(names, numbers, color=colors, height=0.6)
    ax.set_xticks([])
    ax.tick_params(axis="y", colors=TEXT, labelsize=8, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    top = max(numbers) or 1
    ax.set_xlim(0, top * 1.02)
    for index, number in enumerate(numbers):
        fig.text(left + width * 0.84, bottom + height * 0.06 + height * 0.88 * (index + 0.5) / len(numbers),
                 format_value(number, found.unit, found.decimals), color=TEXT, fontsize=8, va="center")
    return True


def draw_row(fig: plt.Figure, rect: tuple, panel: Mapping) -> None:
    left, bottom, width, height = rect
    fig.text(left + 0.003, bottom + height * 0.35, panel.get("title", ""), color=TEXT, fontsize=10.5,
             fontweight="bold", va="center")
    fig.add_artist(plt.Line2D([left, left + width], [bottom + height * 0.02] * 2, color=BORDER, linewidth=0.8))


DRAWERS = {"timeseries": draw_timeseries, "stat": draw_stat, "gauge": draw_gauge, "bargauge": draw_bargauge}


# ---------------------------------------------------------------- whole dashboards


def prometheus_started(prometheus: check.Prometheus) -> float | None:
    try:
        result = prometheus.instant('min(process_start_time_seconds{job="prometheus"})', time.time())
        return float(result[0]["value"][1]) if result else None
    except check.QueryError:
        return None


def render(source: Path | str | Mapping, out: Path, *, prometheus: check.Prometheus | None = None,
           now: float | None = None, range_seconds: float | None = None) -> Snapshot:
    """Draw one dashboard to `out` (a PNG); say which panels had no data."""
    dashboard, name = check.load(source)
    client = prometheus or check.Prometheus()
    try:
        now = time.time() if now is None else now
        start, end = check.dashboard_time_range(dashboard, now)
        if range_seconds:
            start = end - range_seconds
        started = prometheus_started(client)
        if started and started + 60 > start:
            start = min(started + 5, end - 60)
        scrape = gv.parse_duration(scrape_interval())
        context = check.LiveContext(client, start, end, scrape)
        selections = check.resolve_variables(dashboard, context)
        renderer = Renderer(client, start, end, scrape, selections)
        drawn, empty = _draw(dashboard, renderer, out)
    finally:
        if prometheus is None:
            client.close()
    return Snapshot(out, name, drawn, tuple(empty))


def _human(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{max(minutes, 1)} min"
    return f"{minutes / 60:.1f} h"


def _draw(dashboard: Mapping, renderer: Renderer, out: Path) -> tuple[int, list[str]]:
    panels = [p for p in check.all_panels(dashboard.get("panels") or []) if isinstance(p.get("gridPos"), Mapping)]
    rows = max((p["gridPos"].get("y", 0) + p["gridPos"].get("h", 1) for p in panels), default=1)
    height_in = HEADER_IN + rows * ROW_UNIT_IN
    fig = plt.figure(figsize=(FIG_WIDTH_IN, height_in), dpi=DPI, facecolor=BACKGROUND)
    header = HEADER_IN / height_in
    span = renderer.end - renderer.start
    selections = ", ".join(f"{k}={'All' if v.all_value is not None else '|'.join(v.values)}"
                           for k, v in renderer.selections.items())
    fig.text(0.008, 1 - header * 0.38, dashboard.get("title", ""), color=TEXT, fontsize=15, fontweight="bold",
             va="center")
    stamp = datetime.fromtimestamp(renderer.end, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fig.text(0.992, 1 - header * 0.38, f"last {_human(span)} to {stamp}"
             + (f"   |   {selections}" if selections else ""), color=MUTED, fontsize=9, ha="right", va="center")
    fig.text(0.008, 1 - header * 0.78, "rendered from Prometheus by stack/grafana/snapshot.py (Grafana shows the "
             "same queries interactively)", color=MUTED, fontsize=7.5, va="center")
    unit_h = (1 - header) / rows
    drawn, empty = 0, []
    for panel in panels:
        grid = panel["gridPos"]
        x, y, w, h = grid.get("x", 0), grid.get("y", 0), grid.get("w", 12), grid.get("h", 8)
        rect = (x / 24 + PAD, 1 - header - (y + h) * unit_h + PAD, w / 24 - 2 * PAD, h * unit_h - 2 * PAD)
        if panel.get("type") == "row":
            draw_row(fig, rect, panel)
            continue
        content = _panel_box(fig, rect, check.panel_name(panel))
        drawer = DRAWERS.get(panel.get("type"))
        if drawer is None:
            fig.text(content[0] + content[2] / 2, content[1] + content[3] / 2,
                     f"({panel.get('type')} panel: not drawn)", color=MUTED, ha="center", va="center")
            continue
        drawn += 1
        if not drawer(fig, content, panel, renderer):
            empty.append(check.panel_name(panel))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn, empty


def output_name(source: Path | Mapping) -> str:
    dashboard, _ = check.load(source)
    return f"{dashboard.get('uid') or Path(str(source)).stem}.png"


def render_all(paths: list[Path] | None = None, out_dir: Path = OUT_DIR, *,
               range_seconds: float | None = None) -> list[Snapshot]:
    files = paths if paths is not None else dashboard_files()
    prometheus = check.Prometheus()
    now = time.time()
    try:
        return [render(path, out_dir / output_name(path), prometheus=prometheus, now=now,
                       range_seconds=range_seconds) for path in files]
    finally:
        prometheus.close()


# ---------------------------------------------------------------- scripted traffic for the docs pictures


def demo_traffic(seconds: float) -> None:
    """Traffic on every model and department for `seconds`, with faults so the pictures show something: 30 %
    errors and 10 % rate limiting on sim-balanced from 30 % of the time, slow (+3 s) and verbose (3x tokens)
    sim-reasoning answers from 60 %, each for a fifth of the time."""
    import httpx

    from stack import catalog, topology
    from stack.traffic import SteadyTraffic

    cat = catalog.load()
    llmsim = topology.load().services["llmsim"].url
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset, rate in ((0, 1.0), (3, 0.5)):
            department = cat.departments[(index + offset) % len(cat.departments)]
            generators.append(SteadyTraffic(model, rate=rate, max_seconds=seconds,
                                            max_requests=int(seconds * rate) + 1, department=department))
    # A department outside the catalog: the gateway records it as "other" (Department labels folded).
    generators.append(SteadyTraffic("sim-fast", rate=0.3, max_seconds=seconds, max_requests=int(seconds * 0.3) + 1,
                                    department="legal"))
    for generator in generators:
        generator.__enter__()
    started = time.monotonic()
    script = [
        (0.30, {"error_rate": 0.3, "rate_limit_rate": 0.1, "models": ["sim-balanced"],
                "duration_seconds": seconds * 0.2}),
        (0.60, {"added_latency_seconds": 3.0, "token_multiplier": 3.0, "models": ["sim-reasoning"],
                "duration_seconds": seconds * 0.2}),
    ]
    try:
        for share, knobs in script:
            time.sleep(max(0.0, started + share * seconds - time.monotonic()))
            httpx.post(f"{llmsim}/faults", json=knobs, timeout=5).raise_for_status()
            print(f"  t={time.monotonic() - started:.0f}s faults {knobs}")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        httpx.delete(f"{llmsim}/faults", timeout=5)
        for generator in generators:
            generator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.grafana.snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"dashboard JSON files or folders (default: {DASHBOARDS_DIR.relative_to(REPO_ROOT)})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs (default: %(default)s)")
    parser.add_argument("--range", dest="range_", default=None,
                        help="time range to draw, e.g. 15m (default: each dashboard's own, cut to Prometheus's uptime)")
    parser.add_argument("--demo", type=float, default=0, metavar="SECONDS",
                        help="first send SECONDS of scripted traffic with faults (for the docs pictures)")
    parser.add_argument("--seed", action="store_true", help="first send a few seconds of seeded traffic")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths or [DASHBOARDS_DIR]:
        files += dashboard_files(path) if path.is_dir() else [path]
    try:
        if args.demo:
            print(f"demo traffic for {args.demo:.0f}s ...")
            demo_traffic(args.demo)
            check.seed_load(2)
        elif args.seed:
            check.seed_load()
        written = render_all(files, args.out, range_seconds=gv.parse_duration(args.range_) if args.range_ else None)
    except ConnectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for snapshot in written:
        path = snapshot.path
        try:
            shown = path.resolve().relative_to(REPO_ROOT)
        except ValueError:
            shown = path
        print(f"wrote {shown} ({path.stat().st_size // 1024} KiB, {snapshot.panels} panels)")
        if snapshot.empty_panels:
            print(f"  no data: {', '.join(snapshot.empty_panels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
