"""What Grafana does to a panel query before sending it to Prometheus: variables and intervals.

Mirrors Grafana's Prometheus datasource closely enough for checking and rendering dashboards without Grafana:
`$var`, `${var}`, `${var:format}` and `[[var]]` are replaced; multi-value and "All" selections become regex
alternations (`(a|b)`) or the variable's allValue; `$__interval`, `$__rate_interval`, `$__range` and friends
are computed from the time range, the panel width and the datasource's scrape interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

# Grafana's variable syntax (public/app/features/variables/utils.ts, variableRegex).
VARIABLE_PATTERN = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
# Grafana assumes this scrape interval when the datasource sets no jsonData.timeInterval.
DEFAULT_SCRAPE_INTERVAL_SECONDS = 15.0
# Grafana asks for about one point per pixel; a full-width panel is ~1800 px on a laptop screen.
FULL_WIDTH_POINTS = 1800
GRID_COLUMNS = 24
BUILTIN_PREFIX = "__"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# (upper bound, rounded interval) in seconds: Grafana's kbn.roundInterval table.
_ROUND_TABLE = (
    (0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5), (1.5, 1), (3.5, 2),
    (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120), (450, 300), (750, 600),
    (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600),
    (86400, 43200), (604800, 86400), (1814400, 604800), (3628800, 2592000),
)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration such as `15s`, `1m30s` or `1h`."""
    text = text.strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 15s, 5m or 1h")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """A Prometheus duration for a number of seconds (whole units where possible: 60 -> 1m)."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def round_interval(seconds: float) -> float:
    for bound, rounded in _ROUND_TABLE:
        if seconds < bound:
            return rounded
    return 31536000.0


def parse_relative_time(text: str, now: float) -> float:
    """Epoch seconds for Grafana's `now`, `now-15m`, `now-1h` (rounding like `now/d` is ignored)."""
    text = str(text).strip()
    match = re.fullmatch(r"now(?:-(\w+?))?(?:/\w)?", text)
    if match:
        return now - (parse_duration(match.group(1)) if match.group(1) else 0)
    try:
        return float(text) / 1000  # epoch milliseconds
    except ValueError:
        raise ValueError(f"time {text!r} is neither now-<duration> nor epoch milliseconds") from None


@dataclass(frozen=True)
class QueryTiming:
    """The time range and interval Grafana would use for one panel's queries."""
    start: float
    end: float
    interval: float        # $__interval, also the query_range step
    rate_interval: float   # $__rate_interval

    @property
    def range_seconds(self) -> float:
        return self.end - self.start


def panel_timing(start: float, end: float, panel: Mapping, scrape_interval: float) -> QueryTiming:
    """$__interval and $__rate_interval as Grafana computes them for this panel.

    interval = the range divided by the panel's data points (about its width in pixels), rounded, at least the
    panel's min interval (or the datasource scrape interval); rate interval = max(interval + scrape, 4 * scrape).
    """
    grid = panel.get("gridPos") or {}
    width = grid.get("w", 12) if isinstance(grid.get("w"), (int, float)) else 12
    points = panel.get("maxDataPoints") or max(50, round(FULL_WIDTH_POINTS * width / GRID_COLUMNS))
    min_interval = scrape_interval
    if isinstance(panel.get("interval"), str) and panel["interval"].strip():
        try:
            min_interval = parse_duration(panel["interval"].lstrip("<>"))
        except ValueError:
            pass
    raw = (end - start) / points
    interval = max(round_interval(raw), min_interval)
    rate_interval = max(interval + min_interval, 4 * min_interval)
    return QueryTiming(start, end, interval, rate_interval)


def range_start(start: float, end: float, step: float) -> float:
    """The query_range start that puts the last point exactly at `end` (Grafana aligns points to multiples of the
    step instead, so its last point can be up to one step old; series born in the last seconds would be missed)."""
    return end - math.floor((end - start) / step) * step if step > 0 else start


def builtin_values(timing: QueryTiming) -> dict[str, str]:
    range_s = max(1, math.floor(timing.range_seconds))
    return {
        "__interval": format_duration(timing.interval),
        "__interval_ms": str(round(timing.interval * 1000)),
        "__rate_interval": format_duration(timing.rate_interval),
        "__rate_interval_ms": str(round(timing.rate_interval * 1000)),
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(range_s * 1000),
        "__from": str(round(timing.start * 1000)),
        "__to": str(round(timing.end * 1000)),
        "__auto": format_duration(timing.interval),
    }


def regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape for one value of a multi-value variable."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


@dataclass(frozen=True)
class Selection:
    """The value(s) a template variable currently holds."""
    values: tuple[str, ...]
    multi: bool = False          # multi-value or include-All: Grafana formats it as a regex
    all_value: str | None = None  # set when "All" is selected and the variable has a custom allValue

    def render(self, fmt: str | None = None) -> str:
        if self.all_value is not None:
            return self.all_value
        if fmt in {"raw", "text"}:
            return ",".join(self.values)
        if fmt == "csv":
            return ",".join(self.values)
        if fmt == "pipe":
            return "|".join(self.values)
        if not self.multi and fmt != "regex":
            return self.values[0] if self.values else ""
        escaped = [regex_escape(v) for v in self.values]
        if len(escaped) == 1:
            return escaped[0]
        return "(" + "|".join(escaped) + ")"


def referenced_variables(text: str) -> list[str]:
    """Names of the variables a text refers to, builtins included, in order, without repeats."""
    found: dict[str, None] = {}
    for match in VARIABLE_PATTERN.finditer(text):
        found.setdefault(match.group(1) or match.group(2) or match.group(4), None)
    return list(found)


def substitute(text: str, selections: Mapping[str, Selection | str]) -> tuple[str, list[str]]:
    """The text with every known variable replaced, and the names it refers to that are not known."""
    unknown: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        value = selections.get(name)
        if value is None and name.isdigit():
            return match.group(0)  # $1 in label_replace: Grafana leaves what is not a variable
        if value is None:
            if name not in unknown:
                unknown.append(name)
            return match.group(0)
        return value if isinstance(value, str) else value.render(fmt)

    return VARIABLE_PATTERN.sub(replace, text), unknown


def offline_selection(variable: Mapping) -> Selection:
    """A plausible value for a variable without asking Prometheus: its allValue, current value or first option."""
    multi = bool(variable.get("multi") or variable.get("includeAll"))
    if variable.get("includeAll"):
        return Selection((".*",), multi=True, all_value=variable.get("allValue") or ".*")
    current = variable.get("current") or {}
    value = current.get("value")
    if isinstance(value, list) and value:
        return Selection(tuple(str(v) for v in value), multi=multi)
    if isinstance(value, str) and value and value != "$__all":
        return Selection((value,), multi=multi)
    options = [o.get("value") for o in variable.get("options") or [] if isinstance(o, Mapping)]
    if options:
        return Selection((str(options[0]),), multi=multi)
    query = variable.get("query")
    if variable.get("type") in {"custom", "interval"} and isinstance(query, str) and query.strip():
        return Selection((query.split(",")[0].strip(),), multi=multi)
    if variable.get("type") in {"constant", "textbox"} and isinstance(query, str):
        return Selection((query,), multi=multi)
    return Selection(("x",), multi=multi)


def custom_options(variable: Mapping) -> list[str]:
    """The options of a custom or interval variable (`a,b,c` or `key : value` items)."""
    query = variable.get("query")
    if not isinstance(query, str):
        return []
    items = [part.strip() for part in re.split(r"(?<!\\),", query) if part.strip()]
    return [item.split(" : ", 1)[1].strip() if " : " in item else item for item in items]


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)\s*$", re.S)


def variable_query(variable: Mapping) -> str | None:
    """The query text of a query variable (older Grafana stores a string, newer an object with `query`)."""
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    return query if isinstance(query, str) and query.strip() else None


def parse_label_values(query: str) -> tuple[str | None, str] | None:
    """(series selector or None, label) of a `label_values(...)` query; None for any other query."""
    match = LABEL_VALUES.match(query)
    if not match:
        return None
    return match.group("match"), match.group("label")


def selection_for(variable: Mapping, values: Sequence[str]) -> Selection:
    """What Grafana holds for a variable whose options are `values`, with its default (current) choice."""
    multi = bool(variable.get("multi") or variable.get("includeAll"))
    current = (variable.get("current") or {}).get("value")
    picked = current if isinstance(current, list) else [current] if isinstance(current, str) else []
    wants_all = variable.get("includeAll") and (not picked or "$__all" in picked or "All" in picked)
    if wants_all:
        return Selection(tuple(values), multi=True, all_value=variable.get("allValue") or None)
    chosen = [v for v in picked if v in values] or list(values[:1])
    return Selection(tuple(chosen), multi=multi)
