"""A section of docs/performance.md that one benchmark writes between two markers and every other run keeps as is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    begin: str
    end: str

    def kept(self, report: str) -> str:
        """This section of `report` with its markers (empty if it has none)."""
        start, end = report.find(self.begin), report.find(self.end)
        return report[start:end + len(self.end)] + "\n" if 0 <= start < end else ""

    def replace(self, report: str, new: str) -> str:
        old = self.kept(report)
        return report.replace(old, new) if old else report.rstrip("\n") + "\n\n" + new
