"""Values as Grafana prints them for the unit ids the course dashboards use (percentunit, s, reqps, USD...)."""

from __future__ import annotations

import math


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
