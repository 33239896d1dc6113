"""Reading locust's CSV reports back: per-endpoint totals and percentiles, the gateway's X-Cache answers, and a rich
summary table."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from stack.loadgen.workload import CHAT_PATH, STREAMED_SUFFIX

AGGREGATED = "Aggregated"
CACHE_CSV_SUFFIX = "_cache.csv"            # <prefix>_cache.csv, written by the locustfile when locust quits
CACHE_CSV_HEADER = ("X-Cache", "Answers")
NO_X_CACHE = "none"                        # an answered chat call without an X-Cache header
X_CACHE_VALUES = ("HIT", "MISS", "BYPASS")
_WRAPPED = re.compile(r"^\w+\((?P<quote>['\"])(?P<text>.*)(?P=quote)\)$", re.DOTALL)


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    requests_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    average_ms: float | None = None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Failure:
    name: str
    error: str
    occurrences: int

    @property
    def message(self) -> str:
        """The error without locust's exception wrapper: CatchResponseError('HTTP 502: …') -> HTTP 502: …"""
        wrapped = _WRAPPED.match(self.error)
        return wrapped["text"].replace("\\'", "'") if wrapped else self.error


@dataclass(frozen=True)
class Report:
    endpoints: list[EndpointStats]
    total: EndpointStats
    failures: list[Failure]
    x_cache: dict[str, int] = field(default_factory=dict)   # answered chat calls per X-Cache header value

    @property
    def chat_calls(self) -> tuple[int, int]:
        """(streamed, all) chat calls sent."""
        chat = [e for e in self.endpoints if e.name in (CHAT_PATH, CHAT_PATH + STREAMED_SUFFIX)]
        return sum(e.requests for e in chat if e.name.endswith(STREAMED_SUFFIX)), sum(e.requests for e in chat)

    @property
    def hit_ratio(self) -> float | None:
        """HIT / (HIT + MISS): of the answers the gateway's response cache could have given, the share it gave."""
        looked_up = self.x_cache.get("HIT", 0) + self.x_cache.get("MISS", 0)
        return self.x_cache.get("HIT", 0) / looked_up if looked_up else None


def _number(text: str) -> float | None:
    if text in ("", "N/A"):
        return None
    return float(text)


def _stats(row: dict[str, str]) -> EndpointStats:
    return EndpointStats(
        name=row["Name"],
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        requests_per_second=float(row["Requests/s"]),
        p50_ms=_number(row["50%"]),
        p95_ms=_number(row["95%"]),
        p99_ms=_number(row["99%"]),
        max_ms=_number(row["Max Response Time"]),
        average_ms=_number(row["Average Response Time"]),
    )


def read(prefix: Path) -> Report:
    """The report of the run whose `--csv` prefix was `prefix` (reads <prefix>_stats.csv and _failures.csv)."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = [_stats(row) for row in csv.DictReader(handle)]
    total = next((r for r in rows if r.name == AGGREGATED), EndpointStats(AGGREGATED, 0, 0, 0.0, None, None,
                                                                          None, None))
    failures = []
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with failures_file.open(newline="") as handle:
            failures = [Failure(row["Name"], row["Error"], int(row["Occurrences"])) for row in csv.DictReader(handle)]
    failures.sort(key=lambda f: -f.occurrences)
    x_cache: dict[str, int] = {}
    x_cache_file = Path(f"{prefix}{CACHE_CSV_SUFFIX}")
    if x_cache_file.exists():
        with x_cache_file.open(newline="") as handle:
            value, answers = CACHE_CSV_HEADER
            x_cache = {row[value]: int(row[answers]) for row in csv.DictReader(handle)}
    return Report([r for r in rows if r.name != AGGREGATED], total, failures, x_cache)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def mix_summary(report: Report) -> str:
    """One line: how many chat calls were streamed, and what the gateway's response cache answered."""
    streamed, chat = report.chat_calls
    parts = [f"streamed: {streamed} of {chat} chat calls" + (f" ({streamed / chat:.0%})" if chat else "")]
    if report.x_cache:
        counts = [f"{report.x_cache.get(value, 0)} {value}" for value in X_CACHE_VALUES]
        counts += [f"{n} {'without the header' if value == NO_X_CACHE else value}"
                   for value, n in sorted(report.x_cache.items()) if value not in X_CACHE_VALUES]
        ratio = report.hit_ratio
        parts.append("X-Cache: " + ", ".join(counts)
                     + (f" (hit ratio {ratio:.0%} of HIT + MISS)" if ratio is not None else ""))
    return " · ".join(parts)


def table(report: Report, title: str) -> Table:
    summary = Table(title=title, title_justify="left")
    summary.add_column("endpoint")
    for column in ("requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        summary.add_column(column, justify="right")
    for row in [*report.endpoints, report.total]:
        failures = f"[red]{row.failures}[/]" if row.failures else "0"
        summary.add_row("all endpoints" if row is report.total else escape(row.name), str(row.requests), failures,
                        f"{row.requests_per_second:.1f}", _ms(row.p50_ms), _ms(row.p95_ms), _ms(row.p99_ms),
                        _ms(row.max_ms), style="bold" if row is report.total else None,
                        end_section=row is report.endpoints[-1] if report.endpoints else False)
    return summary
