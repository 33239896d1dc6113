"""Draw a Grafana dashboard with matplotlib: panels on Grafana's 24-column grid, in its dark theme, with their
titles, units and thresholds (timeseries, stat, gauge, bar gauge, heatmap and state timeline panels; value
mappings show a number as its name and colour). The data comes from
panel_data.PanelData; snapshot.py decides what to draw where.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw to files only (before pyplot is imported)
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, PowerNorm  # noqa: E402
from matplotlib.patches import Wedge  # noqa: E402

from stack.grafana.panel_data import PanelData  # noqa: E402
from stack.grafana.panels import all_panels, panel_name  # noqa: E402
from stack.grafana.units import format_value  # noqa: E402

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
# Grafana's heatmap default: the "Oranges" scheme on an exponential (0.5) scale, dark to bright in the dark theme;
# cells of 0 are filtered out (options.filterValues.le = 1e-9) and show the panel background.
HEATMAP_COLORS = LinearSegmentedColormap.from_list("grafana-oranges", ["#4a1c03", "#b2470b", "#FF9830", "#FFE8B0"])
HEATMAP_EXPONENT = 0.5
HEATMAP_HIDDEN_AT_OR_BELOW = 1e-9
NAMED_COLORS = {"green": "#73BF69", "yellow": "#FADE2A", "orange": "#FF9830", "red": "#F2495C", "blue": "#5794F2",
                "purple": "#B877D9", "text": TEXT, "transparent": PANEL}


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


@dataclass(frozen=True)
class State:
    """What a value mapping shows for a number: its text and colour (None: keep the threshold colour)."""
    text: str
    color: str | None


def value_states(panel: Mapping) -> dict[float, State]:
    """The panel's value mappings of type "value" (a number shown as a name), by the number they map."""
    mappings = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("mappings") or []
    found: dict[float, State] = {}
    for mapping in mappings:
        if not isinstance(mapping, Mapping) or mapping.get("type") != "value":
            continue
        for key, result in (mapping.get("options") or {}).items():
            try:
                number = float(key)
            except ValueError:
                continue
            color = result.get("color")
            found[number] = State(str(result.get("text", key)), _color(color) if color else None)
    return found


def mapped_state(panel: Mapping, value: float) -> State | None:
    """The value mapping that names this value, if any (Grafana maps the exact number)."""
    if math.isnan(value):
        return None
    return value_states(panel).get(float(value))

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


def draw_timeseries(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    series = [s for s in data.range_series(panel) if any(not math.isnan(v) for v in s.values)]
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
    ax.set_xlim(datetime.fromtimestamp(data.start, tz=timezone.utc),
                datetime.fromtimestamp(data.end, tz=timezone.utc))
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


def _instant(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData,
             drop_nan: bool = False) -> Instant | None:
    """The panel's current values and field defaults, or None (and "No data" drawn) when there are none."""
    values = [(n, v) for n, v in data.instant_values(panel) if not (drop_nan and math.isnan(v))]
    if not values or all(math.isnan(v) for _, v in values):
        _no_data(fig, rect)
        return None
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    return Instant(values, defaults, defaults.get("unit"), defaults.get("decimals"))


def _value_color(panel: Mapping, value: float) -> str:
    if math.isnan(value):
        return MUTED
    state = mapped_state(panel, value)
    return state.color if state and state.color else threshold_color(panel, value)


def _value_text(panel: Mapping, value: float, found: Instant) -> str:
    """The value as the panel prints it: its mapped name, else formatted in the panel's unit."""
    state = mapped_state(panel, value)
    return state.text if state else format_value(value, found.unit, found.decimals)


def draw_stat(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    found = _instant(fig, rect, panel, data)
    if found is None:
        return False
    left, bottom, width, height = rect
    count = len(found.values)
    for index, (name, value) in enumerate(found.values):
        x = left + width * (index + 0.5) / count
        text = _value_text(panel, value, found)
        size = 26 if count == 1 else 20
        fits = width * fig.get_figwidth() / count / (0.62 * len(text) * size / 72)  # >1: fits at that size
        fig.text(x, bottom + height * 0.42, text, color=_value_color(panel, value),
                 fontsize=max(9.0, size * min(1.0, fits)), fontweight="bold", ha="center", va="center")
        if count > 1:
            fig.text(x, bottom + height * 0.12, name, color=MUTED, fontsize=8, ha="center", va="center")
    return True


def _gauge(fig: plt.Figure, rect: Rect, panel: Mapping, found: Instant, name: str | None, value: float) -> None:
    """One gauge dial in `rect`: threshold arc, value arc, value (and the series name under it when given)."""
    left, bottom, width, height = rect
    low, high = found.defaults.get("min", 0) or 0, found.defaults.get("max", 1) or 1
    label_h = 0.16 * height if name else 0.0
    side = min(width * fig.get_figwidth(), (height - label_h) * fig.get_figheight())
    ax_w, ax_h = side / fig.get_figwidth(), side / fig.get_figheight()
    ax = fig.add_axes((left + (width - ax_w) / 2, bottom + label_h + 0.02 * height, ax_w, ax_h * 0.95))
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
    ax.text(0, -0.18, format_value(value, found.unit, found.decimals), color=_value_color(panel, value),
            fontsize=16 if not name else 12, fontweight="bold", ha="center", va="center")
    if name:
        fig.text(left + width / 2, bottom + label_h / 2, name, color=MUTED, fontsize=8, ha="center", va="center")


def draw_gauge(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    """One gauge per series side by side, as Grafana shows a gauge panel whose query returns several."""
    found = _instant(fig, rect, panel, data)
    if found is None:
        return False
    left, bottom, width, height = rect
    count = len(found.values)
    for index, (name, value) in enumerate(found.values):
        _gauge(fig, (left + width * index / count, bottom, width / count, height), panel, found,
               name if count > 1 else None, value)
    return any(not math.isnan(value) for _, value in found.values)


def draw_bargauge(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    found = _instant(fig, rect, panel, data, drop_nan=True)
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


def _bound_label(bound: float, unit: str | None) -> str:
    return "+Inf" if math.isinf(bound) else format_value(bound, unit)


def draw_heatmap(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    """Histogram buckets over time as a colour grid: one row per bucket (labelled by its upper bound), one column per
    point in time, the brighter the more calls per second in that bucket."""
    grid = data.bucket_grid(panel)
    if grid is None or all(math.isnan(v) for row in grid.values for v in row):
        _no_data(fig, rect)
        return False
    options = panel.get("options") or {}
    bound_unit = (options.get("yAxis") or {}).get("unit")
    cell_unit = (options.get("cellValues") or {}).get("unit") or ((panel.get("fieldConfig") or {}).get("defaults")
                                                                 or {}).get("unit")
    left, bottom, width, height = rect
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    scale_in, ticks_in, y_labels_in = 0.22, 0.24, 0.75
    ax = fig.add_axes((left + y_labels_in / fig_w, bottom + (scale_in + ticks_in) / fig_h,
                       width - (y_labels_in + 0.15) / fig_w, height - (scale_in + ticks_in + 0.08) / fig_h))
    _style_axes(ax)
    values = np.array(grid.values, dtype=float)
    shown = np.ma.masked_where(np.isnan(values) | (values <= HEATMAP_HIDDEN_AT_OR_BELOW), values)
    peak = float(np.nanmax(values))
    highest = peak if peak > 0 else 1.0
    norm = PowerNorm(HEATMAP_EXPONENT, vmin=0, vmax=highest)
    step = min((b - a for a, b in zip(grid.times, grid.times[1:]) if b > a), default=60.0)
    edges = [datetime.fromtimestamp(t - step / 2, tz=timezone.utc) for t in grid.times]
    edges.append(datetime.fromtimestamp(grid.times[-1] + step / 2, tz=timezone.utc))
    ax.pcolormesh(edges, np.arange(len(grid.upper_bounds) + 1), shown, cmap=HEATMAP_COLORS, norm=norm,
                  edgecolors=PANEL, linewidth=0.3)
    rows = len(grid.upper_bounds)
    label_every = max(1, math.ceil(rows / max(1.0, (height * fig_h - scale_in - ticks_in) / 0.14)))
    boundaries = list(range(0, rows + 1, label_every))
    ax.set_yticks(boundaries)
    ax.set_yticklabels(["0" if b == 0 else _bound_label(grid.upper_bounds[b - 1], bound_unit) for b in boundaries])
    ax.set_xlim(datetime.fromtimestamp(data.start, tz=timezone.utc),
                datetime.fromtimestamp(data.end, tz=timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    scale = fig.add_axes((left + width * 0.55, bottom + 0.06 / fig_h, width * 0.3, 0.09 / fig_h))
    scale.imshow(np.linspace(0, 1, 128)[np.newaxis, :], aspect="auto", cmap=HEATMAP_COLORS,
                 norm=PowerNorm(HEATMAP_EXPONENT, vmin=0, vmax=1))
    scale.axis("off")
    fig.text(left + width * 0.54, bottom + 0.105 / fig_h, "0", color=MUTED, fontsize=6.5, ha="right", va="center")
    fig.text(left + width * 0.86, bottom + 0.105 / fig_h, format_value(highest, cell_unit), color=MUTED,
             fontsize=6.5, ha="left", va="center")
    return True


def _runs(times: list[float], values: list[float]) -> list[tuple[float, float, float]]:
    """Consecutive equal values as (start, end, value) runs; a run ends where the next begins (NaN: a gap)."""
    runs: list[tuple[float, float, float]] = []
    step = min((b - a for a, b in zip(times, times[1:]) if b > a), default=60.0)
    for time_point, value in zip(times, values):
        if runs and not math.isnan(value) and runs[-1][2] == value and time_point - runs[-1][1] <= step * 1.5:
            runs[-1] = (runs[-1][0], time_point + step, value)
        elif not math.isnan(value):
            runs.append((time_point, time_point + step, value))
    return runs


def draw_state_timeline(fig: plt.Figure, rect: tuple, panel: Mapping, data: PanelData) -> bool:
    """One lane per series over the time range, each run of one value drawn in its mapped colour and named (as
    Grafana's state timeline with merged values); a legend of the mapped states below."""
    series = [s for s in data.range_series(panel) if any(not math.isnan(v) for v in s.values)]
    if not series:
        _no_data(fig, rect)
        return False
    left, bottom, width, height = rect
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    legend_in, ticks_in, names_in = 0.22, 0.24, 1.1
    ax = fig.add_axes((left + names_in / fig_w, bottom + (legend_in + ticks_in) / fig_h,
                       width - (names_in + 0.15) / fig_w, height - (legend_in + ticks_in + 0.08) / fig_h))
    _style_axes(ax)
    span = data.end - data.start
    unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
    for lane, item in enumerate(reversed(series)):
        for start, end, value in _runs(item.times, item.values):
            state = mapped_state(panel, value)
            color = state.color if state and state.color else threshold_color(panel, value)
            begin, finish = max(start, data.start), min(end, data.end)
            if finish <= begin:
                continue
            ax.barh(lane, finish - begin, left=begin, height=0.8, color=color, alpha=0.85, linewidth=0)
            if (finish - begin) / span > 0.08:
                ax.text(begin + (finish - begin) / 2, lane, state.text if state else format_value(value, unit),
                        color=BACKGROUND, fontsize=7.5, fontweight="bold", ha="center", va="center", clip_on=True)
    ax.set_yticks(range(len(series)))
    ax.set_yticklabels([item.name for item in reversed(series)], color=TEXT, fontsize=7.5)
    ax.set_ylim(-0.6, len(series) - 0.4)
    ax.set_xlim(data.start, data.end)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda t, _: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M")))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=6))
    states = sorted(value_states(panel).items())
    for index, (_, state) in enumerate(states):
        x = left + 0.1 / fig_w + index * min(1.3 / fig_w, (width - 0.2 / fig_w) / max(1, len(states)))
        fig.text(x, bottom + 0.1 / fig_h, "\u25a0 " + state.text, color=state.color or TEXT, fontsize=7,
                 va="center", ha="left")
    return True


def draw_row(fig: plt.Figure, rect: tuple, panel: Mapping) -> None:
    left, bottom, width, height = rect
    fig.text(left + 0.003, bottom + height * 0.35, panel.get("title", ""), color=TEXT, fontsize=10.5,
             fontweight="bold", va="center")
    fig.add_artist(plt.Line2D([left, left + width], [bottom + height * 0.02] * 2, color=BORDER, linewidth=0.8))


DRAWERS = {"timeseries": draw_timeseries, "stat": draw_stat, "gauge": draw_gauge, "bargauge": draw_bargauge,
           "heatmap": draw_heatmap, "state-timeline": draw_state_timeline}

def _human(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{max(minutes, 1)} min"
    return f"{minutes / 60:.1f} h"

def draw_dashboard(dashboard: Mapping, data: PanelData, out: Path) -> tuple[int, list[str]]:
    """Draw every panel of the dashboard to `out` (a PNG); the number of data panels drawn and the titles of
    those that showed "No data"."""
    panels = [p for p in all_panels(dashboard.get("panels") or []) if isinstance(p.get("gridPos"), Mapping)]
    rows = max((p["gridPos"].get("y", 0) + p["gridPos"].get("h", 1) for p in panels), default=1)
    height_in = HEADER_IN + rows * ROW_UNIT_IN
    fig = plt.figure(figsize=(FIG_WIDTH_IN, height_in), dpi=DPI, facecolor=BACKGROUND)
    header = HEADER_IN / height_in
    span = data.end - data.start
    selections = ", ".join(f"{k}={'All' if v.all_value is not None else '|'.join(v.values)}"
                           for k, v in data.selections.items())
    fig.text(0.008, 1 - header * 0.38, dashboard.get("title", ""), color=TEXT, fontsize=15, fontweight="bold",
             va="center")
    stamp = datetime.fromtimestamp(data.end, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
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
        content = _panel_box(fig, rect, panel_name(panel))
        drawer = DRAWERS.get(panel.get("type"))
        if drawer is None:
            fig.text(content[0] + content[2] / 2, content[1] + content[3] / 2,
                     f"({panel.get('type')} panel: not drawn)", color=MUTED, ha="center", va="center")
            continue
        drawn += 1
        if not drawer(fig, content, panel, data):
            empty.append(panel_name(panel))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn, empty
