"""promtool input series written from phases ("2 requests/s for 20s, then ...") instead of by hand.

A phase lasts a whole number of test intervals. The first phase owns the sample at time 0 and its own steps; each
later phase owns its steps only, so a phase that starts at time t changes the samples from t + interval on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from stack.profiles import Duration


def number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _segment(start: float, step: float, count: int) -> str:
    sign = "-" if step < 0 else "+"
    return f"{number(start)}{sign}{number(abs(step))}x{count}"


@dataclass(frozen=True)
class Phase:
    duration: Duration
    value: float  # counters: increase per second; gauges: the level


def counter(interval: Duration, phases: Sequence[Phase]) -> str:
    """A counter starting at 0 that grows at each phase's rate; the last phase's duration says where it ends."""
    parts, total = [], 0.0
    for index, phase in enumerate(phases):
        steps = phase.duration.steps(interval)
        step = phase.value * interval.seconds
        if index == 0:
            parts.append(_segment(0, step, steps))
        elif steps:
            parts.append(_segment(total + step, step, steps - 1))
        total += step * steps
    return " ".join(parts)


def gauge(interval: Duration, phases: Sequence[Phase]) -> str:
    parts = []
    for index, phase in enumerate(phases):
        steps = phase.duration.steps(interval) - (0 if index == 0 else 1)
        if steps >= 0:
            parts.append(f"{number(phase.value)}x{steps}")
    return " ".join(parts)


def ramp(interval: Duration, start: float, hold: Duration, step: float, ramp_for: Duration) -> str:
    """A gauge at `start` for `hold`, then changing by `step` every interval for `ramp_for`."""
    held = hold.steps(interval)
    return f"{number(start)}x{held} {_segment(start + step, step, ramp_for.steps(interval) - 1)}"


def selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}"


@dataclass(frozen=True)
class InputSeries:
    series: str
    values: str

    def as_dict(self) -> dict[str, str]:
        return {"series": self.series, "values": self.values}


def histogram(
    interval: Duration,
    name: str,
    labels: Mapping[str, str],
    buckets: Sequence[float],
    phases: Sequence[tuple[Duration, Mapping[float, float]]],
) -> list[InputSeries]:
    """Cumulative `_bucket` counters for phases of (duration, {bucket upper bound: observations per second}).

    Bounds are written as the Python client writes `le` ("0.5", "1.0", "+Inf")."""
    bounds = [*buckets, float("inf")]
    result = []
    for bound in bounds:
        rates = [Phase(duration, sum(r for upper, r in per_bucket.items() if upper <= bound))
                 for duration, per_bucket in phases]
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        result.append(InputSeries(selector(f"{name}_bucket", {**labels, "le": le}), counter(interval, rates)))
    return result


def bucket_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile() over (upper bound, cumulative rate) pairs, in Prometheus' order of float operations."""
    rank = q * cumulative[-1][1]
    index = next(i for i, (_, count) in enumerate(cumulative) if count >= rank)
    if index == len(cumulative) - 1:
        return cumulative[-2][0]
    start, end, count = 0.0, cumulative[index][0], cumulative[index][1]
    if index > 0:
        start = cumulative[index - 1][0]
        count -= cumulative[index - 1][1]
        rank -= cumulative[index - 1][1]
    return start + (end - start) * (rank / count)


def cumulative_rates(buckets: Sequence[float], per_bucket: Mapping[float, float]) -> list[tuple[float, float]]:
    bounds = [*buckets, float("inf")]
    return [(bound, sum(r for upper, r in per_bucket.items() if upper <= bound)) for bound in bounds]
