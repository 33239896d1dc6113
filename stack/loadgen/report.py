"""Reading locust's CSV reports back: per-endpoint totals and percentiles, and a rich summary table."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from rich.table import Table

AGGREGATED = "Aggregated"
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
    return Report([r for r in rows if r.name != AGGREGATED], total, failures)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


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
