"""Edit and run a lab notebook's cells by their nbgrader grade id, as the lab tests do to plant mistakes."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    """The cell with this nbgrader grade id (or, for cells nbgrader does not track, this cell id)."""
    return next(c for c in notebook.cells if (c.metadata.get("nbgrader", {}).get("grade_id") or c.id) == cell_id)


def replace_once(notebook: nbformat.NotebookNode, cell_id: str, old: str, new: str) -> None:
    target = cell(notebook, cell_id)
    assert target.source.count(old) == 1, f"{old!r} is no longer (once) in the cell {cell_id}: update this test"
    target.source = target.source.replace(old, new)


def write(notebook: nbformat.NotebookNode, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / name)
    return folder


def run(notebook: nbformat.NotebookNode, cell_ids: list[str] | tuple[str, ...], namespace: dict | None = None) -> dict:
    """exec() these cells in order in one namespace (a fresh one unless given), as a kernel would."""
    namespace = {"__name__": "__main__"} if namespace is None else namespace
    for cell_id in cell_ids:
        exec(compile(cell(notebook, cell_id).source, f"<{cell_id}>", "exec"), namespace)
    return namespace


def points(path: Path) -> dict[str, float]:
    """grade id -> points of every graded cell, read from the notebook's nbgrader metadata (where they live)."""
    return {meta["grade_id"]: meta["points"] for meta in _nbgrader(read(path)) if meta.get("grade")}


def answer_of(path: Path) -> dict[str, str]:
    """Graded cell -> the answer cell it checks: the nearest answer (solution) cell above it of the same exercise
    (grade ids start with `exN_`). Checks with no answer of their own exercise above them (a score over the whole
    notebook's work, such as V3's alert quality) are left out."""
    found, answer = {}, None
    for meta in _nbgrader(read(path)):
        if meta.get("solution"):
            answer = meta["grade_id"]
        elif meta.get("grade") and answer is not None and _exercise(answer) == _exercise(meta["grade_id"]):
            found[meta["grade_id"]] = answer
    return found


def _nbgrader(notebook: nbformat.NotebookNode) -> list[dict]:
    return [c.metadata["nbgrader"] for c in notebook.cells if "grade_id" in c.metadata.get("nbgrader", {})]


def _exercise(grade_id: str) -> str:
    return grade_id.split("_", 1)[0]


def first_failure_line(failure: pytest.ExceptionInfo[AssertionError]) -> str:
    return str(failure.value).strip().splitlines()[0]


def assert_released_from(source: Path, released: Path, lab_short: str) -> None:
    """labs/ holds the release of solutions/: the same graded cells, no solution and no hidden test left in it."""
    def grade_ids(path: Path) -> list[str]:
        return [c.metadata["nbgrader"]["grade_id"] for c in read(path).cells if "nbgrader" in c.metadata]

    assert grade_ids(released) == grade_ids(source), f"labs/ is stale: run `make release LAB={lab_short}`"
    text = released.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
