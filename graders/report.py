"""The grade table in the terminal, build/grades.json, and build/grades.csv for a class."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graders.results import LabResult


def _points(value: float) -> str:
    return f"{value:g}"


def table(results: list[LabResult], show_student: bool) -> Table:
    grid = Table(title="make grade", show_lines=False)
    if show_student:
        grid.add_column("student")
    for column in ("lab", "exercise", "points", "why points were lost"):
        grid.add_column(column, overflow="fold")
    for result in results:
        first_cells = [result.student] if show_student else []
        if result.problem:
            grid.add_row(*first_cells, result.lab, "-", "-", f"[red]{escape(result.problem)}[/]")
            continue
        for exercise in result.exercises:
            colour = "green" if not exercise.lost else ("yellow" if exercise.points else "red")
            grid.add_row(*first_cells, exercise.lab, exercise.exercise,
                         f"[{colour}]{_points(exercise.points)}/{_points(exercise.max_points)}[/]",
                         escape(exercise.message))
        grid.add_row(*first_cells, f"[bold]{result.lab}[/]", "[bold]total[/]",
                     f"[bold]{_points(result.score)}/{_points(result.max_score)}[/]",
                     f"feedback: {escape(result.feedback_html)}" if result.feedback_html else "", end_section=True)
    return grid


def write_json(results: list[LabResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"labs": [r.as_dict() for r in results]}, indent=2))


def write_csv(results: list[LabResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["student", "lab", "score", "max_score", "problem", "feedback_html"])
        for r in results:
            writer.writerow([r.student, r.lab, _points(r.score), _points(r.max_score), r.problem or "",
                             r.feedback_html or ""])


def print_results(console: Console, results: list[LabResult], show_student: bool) -> None:
    console.print(table(results, show_student))
