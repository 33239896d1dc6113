"""Each lab README's points table and total agree with where the points live: the solutions notebook's nbgrader
metadata and the stack checks' `@pytest.mark.points` in graders/checks/."""

from __future__ import annotations

import ast
import re

import pytest

from graders import course
from stack.paths import REPO_ROOT
from tests import notebook_cells

ROW = re.compile(r"^\|\s*(\d+[a-z]?|—|live)\s*\|[^|]*\|\s*([\d\s+]+)\s*\|", re.M)
TOTAL = re.compile(r"\((\d+) points\)")


def _stack_check_points(lab: course.Lab) -> int:
    path = REPO_ROOT / "graders" / "checks" / f"test_{lab.short}.py"
    if not path.exists():
        return 0
    marks = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and ast.unparse(node.func) == "pytest.mark.points"]
    return sum(int(ast.literal_eval(mark.args[0])) for mark in marks)


@pytest.mark.parametrize("lab", course.LABS, ids=lambda lab: lab.short)
def test_the_readme_points_add_up_to_the_notebook_and_stack_checks(lab: course.Lab) -> None:
    notebook = sum(notebook_cells.points(lab.source / f"{lab.id}.ipynb").values())
    expected = notebook + _stack_check_points(lab)
    for readme in (REPO_ROOT / "labs" / lab.id / "README.md", lab.source / "README.md"):
        text = readme.read_text()
        table = sum(int(n) for _, cell in ROW.findall(text) for n in re.findall(r"\d+", cell))
        assert table == expected, f"{readme.relative_to(REPO_ROOT)}: its table adds up to {table} points, the " \
                                  f"notebook's metadata and graders/checks give {expected}"
        for total in TOTAL.findall(text):
            assert int(total) == expected, f"{readme.relative_to(REPO_ROOT)} says ({total} points), not {expected}"
