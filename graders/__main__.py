"""`make grade`: grade the labs' notebooks (nbgrader) and their stack checks (pytest), print one table.

    python -m graders                         # your notebooks in labs/
    python -m graders --lab v1                # one lab
    python -m graders --notebooks solutions   # the instructor's sources (should score 100 %)
    python -m graders --submissions DIR       # a class: DIR/<student>/<lab>/ (or DIR/submitted/<student>/<lab>/)
    python -m graders --strict                # exit 1 when any point is lost

A class (--submissions) is graded in parallel (--workers, one per core by default), only the submissions that
changed since the last run (--fresh grades all again), with a progress bar and a summary at the end (--below 50:
the students under 50 %); its detail goes to build/grades.json, build/grades.csv, build/lms-grades.csv and nbgrader's
course folder build/grading/ (autograded/, feedback/, gradebook.db).

Exit status: 0 graded (points lost or not), 1 --strict and points lost, 2 bad arguments or grading broken.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from graders import classreport, classrun, notebooks, report
from graders.submission import grade_one
from graders.course import BUILD_DIR, GRADES_JSON, GRADING_DIR, LABS_DIR, REPO_ROOT, SOLUTIONS_DIR, Lab, UnknownLab, select
from graders.results import LabResult
from stack import topology
from stack.runner.processes import port_in_use

console = Console(stderr=False)


class UsageProblem(ValueError):
    pass


def _class_folders(root: Path) -> dict[str, Path]:
    base = root / "submitted" if (root / "submitted").is_dir() else root
    students = {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not students:
        raise UsageProblem(f"{root} holds no student folders; expected {root}/<student>/<lab>/<notebook>.ipynb")
    return students


def plan(args: argparse.Namespace, labs: list[Lab]) -> dict[str, dict[Lab, Path]]:
    """student → lab → the folder holding that student's notebooks."""
    if args.submissions:
        root = Path(args.submissions).resolve()
        if not root.is_dir():
            raise UsageProblem(f"--submissions {args.submissions}: no such folder")
        return {student: {lab: folder / lab.id for lab in labs} for student, folder in _class_folders(root).items()}
    source = {"labs": LABS_DIR, "solutions": SOLUTIONS_DIR}.get(args.notebooks, Path(args.notebooks))
    source = source if source.is_absolute() else (REPO_ROOT / source)
    if not source.is_dir():
        raise UsageProblem(f"NOTEBOOKS={args.notebooks}: no such folder; use labs, solutions or a path")
    student = "solutions" if source == SOLUTIONS_DIR else args.student
    return {student: {lab: source / lab.id for lab in labs}}


def _warn_about_busy_lab_ports(labs: list[Lab]) -> None:
    """A notebook kernel still serving the lab exporter makes the grading kernel's exporter fail to start."""
    lab_target = topology.load().lab_targets.get("lab")
    if lab_target and any(lab.short == "v2" for lab in labs) and port_in_use(lab_target.host, lab_target.port):
        console.print(f"[yellow]warning:[/] port {lab_target.port} (the V2 lab exporter) is in use, probably by "
                      "your own notebook's kernel; shut that kernel down in JupyterLab (Kernel > Shut Down), "
                      "or the exporter exercise will lose its points.")


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _grade_alone(work: dict[str, dict[Lab, Path]], labs: list[Lab]) -> list[LabResult]:
    """One student after another in this process, a table line per exercise."""
    results: list[LabResult] = []
    total = sum(len(per_lab) for per_lab in work.values())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("reading solutions/ into the gradebook", total=total)
        api = notebooks.prepare(labs)
        for student, per_lab in work.items():
            for lab, folder in per_lab.items():
                progress.update(task, description=f"grading {lab.id} ({student})")
                results.append(grade_one(api, lab, student, folder))
                progress.advance(task)
    report.print_results(console, results, show_student=len(work) > 1)
    return results


def _grade_class(args: argparse.Namespace, work: dict[str, dict[Lab, Path]]) -> list[LabResult]:
    """In parallel, only what changed since the last run, a summary at the end (graders/classrun.py)."""
    outcome = classrun.run(work, console, workers=args.workers, timeout=args.timeout, fresh=args.fresh)
    classreport.print_summary(console, outcome, args.below / 100)
    return outcome.results


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value
    return parse


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a percentage like 50)") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make grade", description=__doc__.splitlines()[0])
    parser.add_argument("--lab", help="v1, v2, ... (default: every lab)")
    parser.add_argument("--notebooks", default="labs", help="labs (default), solutions, or a folder of lab folders")
    parser.add_argument("--submissions", help="grade a class: a folder with one sub-folder per student")
    parser.add_argument("--student", default="you", help="the name your own grades are filed under")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any point is lost")
    parser.add_argument("--workers", type=_positive(int), help="a class run's grading processes (default: one per "
                        "core)")
    parser.add_argument("--timeout", type=_positive(float), default=classrun.DEFAULT_TIMEOUT_SECONDS,
                        help="a class run stops one student's lab after this many seconds (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="a class run grades every submission again, changed or not")
    parser.add_argument("--below", type=_percent, default=50, help="a class run lists the students under this "
                        "percentage of the points (default: %(default)s)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        labs = select(args.lab)
        if not labs:
            raise UsageProblem("no labs found under solutions/")
        work = plan(args, labs)
    except (UnknownLab, UsageProblem) as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    _warn_about_busy_lab_ports(labs)
    try:
        results = _grade_class(args, work) if args.submissions else _grade_alone(work, labs)
    except notebooks.GradingError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    except KeyboardInterrupt:
        kept = " (a class run keeps what it graded: run it again to grade the rest)" if args.submissions else ""
        console.print(f"[yellow]interrupted[/]{kept}")
        return 130
    report.write_json(results, GRADES_JSON)
    console.print(f"grades: {_shown(GRADES_JSON)}")
    if args.submissions:
        csv_path, lms_path = BUILD_DIR / "grades.csv", BUILD_DIR / "lms-grades.csv"
        report.write_csv(results, csv_path)
        classreport.write_lms_csv(results, lms_path)
        console.print(f"class grades: {_shown(csv_path)}; for your LMS: {_shown(lms_path)}; nbgrader course "
                      f"(autograded/, feedback/ HTML, gradebook.db): {_shown(GRADING_DIR)}/")
    lost = any(r.problem or r.score < r.max_score for r in results)
    return 1 if args.strict and lost else 0


if __name__ == "__main__":
    sys.exit(main())
