"""Render alert annotations the way Prometheus does, for the expected text in promtool unit tests.

Only the template forms the rules use are supported: `{{ $labels.NAME }}` and `{{ $value | FUNC }}` with FUNC one
of humanize, humanizePercentage, humanizeDuration (ports of Prometheus' template functions). Anything else raises,
so a new annotation form cannot silently get a wrong expected text.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Mapping

_ACTION = re.compile(r"\{\{(.*?)\}\}")
_LABEL = re.compile(r"^\$labels\.(\w+)$")
_VALUE = re.compile(r"^\$value \| (\w+)$")


def _g4(value: float) -> str:
    """Go's fmt %.4g (same rules as C's, which Python follows)."""
    return "%.4g" % value


def humanize(value: float) -> str:
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for unit in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = unit, value / 1000
        return f"{_g4(value)}{prefix}"
    for unit in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = unit, value * 1000
    return f"{_g4(value)}{prefix}"


def humanize_percentage(value: float) -> str:
    return f"{_g4(value * 100)}%"


def humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return f"{_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        whole = int(abs(value))
        days, hours, minutes, seconds = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(abs(value))}s"
    prefix = ""
    for unit in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = unit, value * 1000
    return f"{_g4(value)}{prefix}s"


FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}


class UnsupportedTemplate(ValueError):
    """An annotation uses a template form this renderer does not know."""


def render(template: str, labels: Mapping[str, str], value: float | None) -> str:
    def action(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        if label := _LABEL.match(body):
            return labels.get(label.group(1), "")
        if (func := _VALUE.match(body)) and func.group(1) in FUNCTIONS:
            if value is None:
                raise UnsupportedTemplate(f"{template!r} uses $value but the scenario gives no expected value")
            return FUNCTIONS[func.group(1)](value)
        raise UnsupportedTemplate(f"cannot render {{{{{match.group(1)}}}}} in {template!r}")

    return _ACTION.sub(action, template)
