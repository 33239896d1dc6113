"""Fixtures for stack checks: the submission folder being graded and the JSON files its notebook wrote there."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--submission", required=True, help="the lab folder being graded")


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--submission"))


@pytest.fixture(scope="session")
def notebook_artifact(submission: Path) -> Callable[[str, str], object]:
    """load(file name, what makes it) -> the parsed JSON the notebook wrote beside itself; a missing or broken file
    fails the check with a message that says which cell to run."""
    def load(name: str, made_by: str) -> object:
        path = submission / name
        if not path.is_file():
            pytest.fail(f"no {name} in the graded folder: {made_by}", pytrace=False)
        try:
            return json.loads(path.read_text())
        except ValueError as error:
            pytest.fail(f"{name} is not valid JSON ({error}): {made_by}", pytrace=False)
    return load
