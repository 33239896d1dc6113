"""The stack half of grading: pytest checks with points (graders/checks/test_<lab>.py), run in this process.

A check is a pytest test marked `@pytest.mark.points(n)`; its docstring's first line names the exercise.
The assertion message is what the student reads, so it says what was expected, what was seen, and a hint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from graders.course import Lab
from graders.results import ExerciseResult

CHECKS_DIR = Path(__file__).with_name("checks")


class _Collector:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.results: list[ExerciseResult] = []
        self._points: dict[str, tuple[str, float]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("points")
            if marker is None:
                raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.points(n)")
            doc = (getattr(item.obj, "__doc__", None) or item.name).strip().splitlines()[0]
            self._points[item.nodeid] = (doc, float(marker.args[0]))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self._points:
            return
        title, points = self._points[report.nodeid]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                self.results.append(ExerciseResult(self.lab.short, title, points, points, "", "stack"))
            else:
                self.results.append(ExerciseResult(self.lab.short, title, 0.0, points, _reason(report), "stack"))


def _reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr)
    for prefix in ("AssertionError: ", "Failed: ", "assert "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message.strip().splitlines()[0] if message.strip() else "check failed"


def checks_file(lab: Lab) -> Path:
    return CHECKS_DIR / f"test_{lab.short}.py"


def run(lab: Lab, submission: Path) -> list[ExerciseResult]:
    """Run the lab's stack checks against one submission folder (exposed to checks as the `submission` fixture)."""
    path = checks_file(lab)
    if not path.exists():
        return []
    collector = _Collector(lab)
    args = [str(path), "-q", "-p", "no:cacheprovider", "--no-header", "-p", "no:randomly", "--tb=line",
            "-o", "addopts=", "-o", "testpaths=", f"--submission={submission}", "-W", "ignore::DeprecationWarning",
            "--rootdir", str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini")]
    pytest.main(args, plugins=[collector])
    return collector.results
