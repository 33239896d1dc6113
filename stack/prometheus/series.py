"""promtool input series written from phases ("2 requests/s for 20s, then ..."), and what PromQL computes from them.

A phase lasts a whole number of test intervals. The first phase owns the sample at time 0 and its own steps; each
later phase owns its steps only, so a phase that starts at time t changes the samples from t + interval on.

`Timeline` answers rate(), increase(), delta() and friends over those samples the way Prometheus 2.42 does, in the
same order of float operations, so the expected values in the unit tests are predicted, not copied from promtool.
It only handles the cases where Prometheus does not extrapolate (a full window, or a counter that starts at 0) and
raises `CaseError` otherwise, so an alert case can never silently rely on a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Mapping, Sequence

from stack.profiles import Duration

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
INF = float("inf")


class CaseError(ValueError):
    """An alert case whose outcome the model cannot predict exactly (extrapolation, a value on a threshold, ...)."""


def number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def tidy(value: float) -> float:
    """Drop float noise (0.1 * 72 = 7.199999999999999) so the files read well; the model uses the same value."""
    return float(f"{value:.12g}")


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class Segment:
    """promtool's expanding notation: `start+stepxcount` is count + 1 samples, built by repeated addition."""

    start: float
    step: float
    count: int

    def text(self) -> str:
        if self.step == 0:
            return f"{number(self.start)}x{self.count}"
        sign = "-" if self.step < 0 else "+"
        return f"{number(self.start)}{sign}{number(abs(self.step))}x{self.count}"

    def values(self) -> list[float]:
        result, value = [self.start], self.start
        for _ in range(self.count):
            value += self.step  # promtool adds step by step; the model must round the same way
            result.append(value)
        return result


@dataclass(frozen=True)
class Phase:
    duration: Duration
    value: float  # counters: increase per second; gauges: the level


@dataclass(frozen=True)
class InputSeries:
    name: str
    labels: Mapping[str, str]
    segments: tuple[Segment, ...]

    @property
    def series(self) -> str:
        return selector(self.name, self.labels)

    @property
    def values(self) -> str:
        return " ".join(segment.text() for segment in self.segments)

    @cached_property
    def samples(self) -> tuple[float, ...]:
        return tuple(value for segment in self.segments for value in segment.values())

    @cached_property
    def monotonic(self) -> bool:
        return all(b >= a for a, b in zip(self.samples, self.samples[1:]))

    def matches(self, name: str, matchers: Mapping[str, str]) -> bool:
        return self.name == name and all(self.labels.get(key, "") == value for key, value in matchers.items())

    def as_dict(self) -> dict[str, str]:
        return {"series": self.series, "values": self.values}


def selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}"


def counter(name: str, labels: Mapping[str, str], interval: Duration, phases: Sequence[Phase]) -> InputSeries:
    """A counter starting at 0 that grows at each phase's rate; the last phase's duration says where it ends."""
    segments: list[Segment] = []
    for index, phase in enumerate(phases):
        steps = phase.duration.steps(interval)
        step = tidy(phase.value * interval.seconds)
        if index == 0:
            segments.append(Segment(0, step, steps))
        elif steps:
            last = segments[-1].values()[-1]
            # A flat phase continues from the exact last value: rounding it could look like a counter reset.
            start = last if step == 0 else max(tidy(last + step), last + step)
            segments.append(Segment(start, step, steps - 1))
    return InputSeries(name, dict(labels), tuple(segments))


def gauge(name: str, labels: Mapping[str, str], interval: Duration, phases: Sequence[Phase]) -> InputSeries:
    segments = []
    for index, phase in enumerate(phases):
        steps = phase.duration.steps(interval) - (0 if index == 0 else 1)
        if steps >= 0:
            segments.append(Segment(tidy(phase.value), 0, steps))
    return InputSeries(name, dict(labels), tuple(segments))


def ramp(
    name: str, labels: Mapping[str, str], interval: Duration, start: float, hold: Duration, step: float,
    ramp_for: Duration,
) -> InputSeries:
    """A gauge at `start` for `hold`, then changing by `step` every interval for `ramp_for`."""
    step = tidy(step)
    held = Segment(start, 0, hold.steps(interval))
    return InputSeries(name, dict(labels), (held, Segment(tidy(start + step), step, ramp_for.steps(interval) - 1)))


def le_label(bound: float) -> str:
    """`le` as the Python client writes it: "0.5", "1.0", "+Inf"."""
    return "+Inf" if bound == INF else repr(float(bound))


def histogram(
    interval: Duration,
    name: str,
    labels: Mapping[str, str],
    buckets: Sequence[float],
    phases: Sequence[tuple[Duration, Mapping[float, float]]],
) -> list[InputSeries]:
    """Cumulative `_bucket` counters for phases of (duration, {bucket upper bound: observations per second})."""
    for _, per_bucket in phases:
        unknown = set(per_bucket) - set(buckets)
        if unknown:
            raise CaseError(f"{name}: {sorted(unknown)} are not bucket bounds {list(buckets)}")
    result = []
    for bound in [*buckets, INF]:
        rates = [Phase(duration, sum(r for upper, r in per_bucket.items() if upper <= bound))
                 for duration, per_bucket in phases]
        result.append(counter(f"{name}_bucket", {**labels, "le": le_label(bound)}, interval, rates))
    return result


def bucket_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile() over (upper bound, cumulative rate) pairs, in Prometheus' order of float operations."""
    if cumulative[-1][1] == 0:
        return math.nan
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


def _kahan_add(increment: float, total: float, compensation: float) -> tuple[float, float]:
    """Prometheus' kahanSumInc (Neumaier's variant)."""
    result = total + increment
    if abs(total) >= abs(increment):
        compensation += (total - result) + increment
    else:
        compensation += (increment - result) + total
    return result, compensation


def avg(values: Iterable[float]) -> float:
    """avg_over_time() as the packaged Prometheus computes it: a compensated incremental mean."""
    mean, compensation, count = 0.0, 0.0, 0.0
    for value in values:
        count += 1
        mean, compensation = _kahan_add(value / count - mean / count, mean, compensation)
    return mean + compensation


def ratio(numerator: float, denominator: float) -> float:
    """PromQL division: x / 0 is NaN or ±Inf, not an error."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.copysign(INF, numerator)
    return numerator / denominator


def above(value: float, threshold: float, inclusive: bool = False) -> bool:
    """`value > threshold` (or >=), refusing values so close to the threshold that float rounding could decide."""
    if math.isnan(value):
        return False
    if abs(value - threshold) <= 1e-9 * max(1.0, abs(threshold)):
        raise CaseError(f"{value!r} is too close to the threshold {threshold!r}: pick other numbers")
    return value >= threshold if inclusive else value > threshold


def below(value: float, threshold: float) -> bool:
    """`value < threshold`, refusing values so close to the threshold that float rounding could decide."""
    return not math.isnan(value) and not above(value, threshold, inclusive=True)


@dataclass(frozen=True)
class Timeline:
    """Input series sampled every `interval` from time 0, and PromQL evaluated over them at multiples of it."""

    interval: Duration
    series: tuple[InputSeries, ...]

    @property
    def horizon(self) -> int:
        """The last time (seconds) every input series has a sample for."""
        return (min(len(s.samples) for s in self.series) - 1) * self.interval.seconds

    def select(self, name: str, **matchers: str) -> list[InputSeries]:
        return [s for s in self.series if s.matches(name, matchers)]

    def index(self, t: int) -> int:
        if t % self.interval.seconds:
            raise CaseError(f"{t}s is not a multiple of the test interval {self.interval}")
        return t // self.interval.seconds

    def value(self, s: InputSeries, t: int) -> float:
        i = self.index(t)
        if i >= len(s.samples):
            raise CaseError(f"{s.series} ends before {t}s: the input must cover every evaluation")
        return s.samples[i]

    def _first_last(self, s: InputSeries, t: int, window: Duration, counter_like: bool) -> tuple[float, float] | None:
        """The first and last sample in [t - window, t] (both ends included in Prometheus 2.x), or None if < 2."""
        start_time = max(0, t - window.seconds)
        if t - start_time < self.interval.seconds:
            return None
        first, last = self.value(s, -(-start_time // self.interval.seconds) * self.interval.seconds), self.value(s, t)
        if counter_like and not s.monotonic:
            raise CaseError(f"{s.series} decreases; counter resets are not modelled")
        # Without a sample at the window's start Prometheus extrapolates, except from a counter that starts at 0
        # (it does not extrapolate below zero) or when nothing changed.
        exact = start_time == t - window.seconds or (counter_like and first == 0) or first == last
        if not exact:
            raise CaseError(f"{s.series} at {t}s: a partial {window} window would be extrapolated")
        return first, last

    def increase(self, s: InputSeries, t: int, window: Duration) -> float | None:
        pair = self._first_last(s, t, window, counter_like=True)
        return None if pair is None else (pair[1] - pair[0]) * 1.0

    def rate(self, s: InputSeries, t: int, window: Duration) -> float | None:
        increase = self.increase(s, t, window)
        return None if increase is None else increase / window.seconds

    def _in_window(self, s: InputSeries, t: int, window: Duration) -> list[float]:
        """The samples in [t - window, t] (both ends included in Prometheus 2.x)."""
        step = self.interval.seconds
        first = -(-max(0, t - window.seconds) // step) * step
        return [self.value(s, at) for at in range(first, t + 1, step)]

    def min_over_time(self, s: InputSeries, t: int, window: Duration) -> float:
        return min(self._in_window(s, t, window))

    def max_over_time(self, s: InputSeries, t: int, window: Duration) -> float:
        return max(self._in_window(s, t, window))

    def delta(self, s: InputSeries, t: int, window: Duration) -> float | None:
        pair = self._first_last(s, t, window, counter_like=False)
        return None if pair is None else (pair[1] - pair[0]) * 1.0


def sum_by(by: Sequence[str], values: Iterable[tuple[InputSeries, float | None]]) -> Vector:
    """sum by (labels) over per-series values (None: the series has no value at this time)."""
    result: Vector = {}
    present = sorted(((s, v) for s, v in values if v is not None), key=lambda item: labels_of(item[0].labels))
    for s, value in present:
        key = labels_of({name: s.labels[name] for name in by if s.labels.get(name)})
        result[key] = result[key] + value if key in result else value
    return result
