"""The end of a class run: a short summary in the terminal (a line per student with points per lab, the class mean
per exercise, who is below the threshold, which submissions could not be graded and why) and the CSV an LMS
gradebook imports. The detail of every exercise is in build/grades.json and the feedback HTML."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graders.classrun import ClassRun
from graders.results import LabResult

LMS_COLUMNS = ("student", "lab", "points", "max")


def _points(value: float) -> str:
    return f"{value:g}"


def write_lms_csv(results: list[LabResult], path: Path) -> None:
    """One row per student and lab: what an LMS gradebook imports (a lab that could not be graded scores 0 of the
    lab's points)."""
    maxima = _lab_maxima(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(LMS_COLUMNS)
        for result in results:
            writer.writerow([result.student, result.lab, _points(result.score),
                             _points(maxima.get(result.lab, result.max_score))])


def _lab_maxima(results: list[LabResult]) -> dict[str, float]:
    """Each lab's maximum, from any submission of it that was graded (a failed one has no exercises)."""
    maxima: dict[str, float] = {}
    for result in results:
        if result.exercises:
            maxima[result.lab] = max(maxima.get(result.lab, 0.0), result.max_score)
    return maxima


def students_table(results: list[LabResult]) -> Table:
    labs = list(dict.fromkeys(r.lab for r in results))
    maxima = _lab_maxima(results)
    grid = Table(title="class", show_lines=False)
    for column in ("student", *labs, "total"):
        grid.add_column(column, justify="left" if column == "student" else "right")
    by_student: dict[str, dict[str, LabResult]] = defaultdict(dict)
    for result in results:
        by_student[result.student][result.lab] = result
    for student, per_lab in by_student.items():
        cells = []
        for lab in labs:
            result = per_lab.get(lab)
            if result is None:
                cells.append("")
            elif result.problem:
                cells.append(f"[red]0/{_points(maxima.get(lab, 0))} ![/]")
            else:
                colour = "green" if result.score >= result.max_score else "yellow" if result.score else "red"
                cells.append(f"[{colour}]{_points(result.score)}/{_points(result.max_score)}[/]")
        total = sum(r.score for r in per_lab.values())
        top = sum(maxima.get(lab, 0.0) for lab in per_lab)
        grid.add_row(escape(student), *cells, f"[bold]{_points(total)}/{_points(top)}[/]")
    return grid


def exercise_means(results: list[LabResult]) -> Table:
    """Mean points per exercise over the submissions that were graded."""
    points: dict[tuple[str, str], list[float]] = defaultdict(list)
    maxima: dict[tuple[str, str], float] = {}
    for result in results:
        for exercise in result.exercises:
            points[(exercise.lab, exercise.exercise)].append(exercise.points)
            maxima[(exercise.lab, exercise.exercise)] = exercise.max_points
    grid = Table(title="class mean per exercise", show_lines=False)
    for column in ("lab", "exercise", "mean", "full marks"):
        grid.add_column(column, justify="right" if column in ("mean", "full marks") else "left")
    for (lab, exercise), scored in points.items():
        mean = sum(scored) / len(scored)
        full = sum(1 for p in scored if p >= maxima[(lab, exercise)])
        grid.add_row(lab, escape(exercise), f"{mean:.2f}/{_points(maxima[(lab, exercise)])}", f"{full}/{len(scored)}")
    return grid


def below(results: list[LabResult], threshold: float) -> list[tuple[str, float]]:
    """(student, share of the points) of every student under `threshold` (0..1) over the labs graded."""
    maxima = _lab_maxima(results)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for result in results:
        totals[result.student][0] += result.score
        totals[result.student][1] += maxima.get(result.lab, 0.0)
    return [(student, got / top) for student, (got, top) in totals.items() if top and got / top < threshold]


def print_summary(console: Console, run: ClassRun, threshold: float) -> None:
    console.print(students_table(run.results))
    console.print(exercise_means(run.results))
    low = below(run.results, threshold)
    console.print(f"[bold]below {threshold:.0%}[/] ({len(low)}): "
                  + (", ".join(f"{escape(s)} {share:.0%}" for s, share in low) or "nobody"))
    failed = [r for r in run.results if r.problem]
    console.print(f"[bold]could not be graded[/] ({len(failed)}):" + ("" if failed else " none"))
    for result in failed:
        console.print(f"  {escape(result.student)} {result.lab}: {escape(result.problem or '')}", soft_wrap=True)
    console.print(f"graded {run.graded} submission(s) in {run.seconds:.0f} s; {run.kept} unchanged since the last "
                  "run kept their grades")
