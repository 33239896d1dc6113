"""The catch rate of the wrong-answer corpus, at the end of the test run: how many of the tests marked `wrong_answer`
(each plants one entry of tests/wrong_answers/<lab>.yaml and proves its own check catches it, with its message)
passed. A pytest plugin (tests/conftest.py loads it); with pytest-xdist the reports reach the controller, which
counts them."""

from __future__ import annotations

from collections import Counter

import pytest

MARK = "wrong_answer"
_outcomes: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if MARK in report.keywords and (report.when == "call" or report.outcome != "passed"):
        _outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    tried = sum(_outcomes.values())
    if tried:
        caught = _outcomes["passed"]
        terminalreporter.write_line(f"wrong answers: {caught} of {tried} caught by their own check, with a message "
                                    f"naming the mistake ({caught / tried:.0%})")
