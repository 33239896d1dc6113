"""Fixtures for stack checks: the submission folder being graded."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--submission", required=True, help="the lab folder being graded")


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--submission"))
