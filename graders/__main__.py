"""`make grade`: grade the labs' notebooks (nbgrader) and their stack checks (pytest), print one table.

    python -m graders                         # your notebooks in labs/
    python -m graders --lab v1                # one lab
    python -m graders --notebooks solutions   # the instructor's sources (should score 100 %)
    python -m graders --submissions DIR       # a class: DIR/<student>/<lab>/ (or DIR/submitted/<student>/<lab>/)
    python -m graders --strict                # exit 1 when any point is lost
    python -m graders --run midterm           # name this run's folder (default: <UTC time>-<what is graded>)

Each run keeps its results in build/grading/runs/<run>/ (grades.json, grades.csv for a class, feedback HTML);
earlier runs are never touched. build/grading/latest points at the newest; build/grades.json (and build/grades.csv
after a class) is a copy of the newest run's.

Exit status: 0 graded (points lost or not), 1 --strict and points lost, 2 bad arguments or grading broken.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from graders import notebooks, report, runs
from graders.course import GRADES_CSV, GRADES_JSON, LABS_DIR, REPO_ROOT, SOLUTIONS_DIR, Lab, UnknownLab, select
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


def grade_one(api, lab: Lab, student: str, folder: Path) -> LabResult:
    """One student's lab: the notebook, then the stack checks (graders.notebooks.grade)."""
    return notebooks.grade(api, lab, student, folder)


def _what_is_graded(args: argparse.Namespace) -> str:
    if args.submissions:
        return f"class-{Path(args.submissions).resolve().name}"
    return "solutions" if args.notebooks == "solutions" else args.student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make grade", description=__doc__.splitlines()[0])
    parser.add_argument("--lab", help="v1, v2, ... (default: every lab)")
    parser.add_argument("--notebooks", default="labs", help="labs (default), solutions, or a folder of lab folders")
    parser.add_argument("--submissions", help="grade a class: a folder with one sub-folder per student")
    parser.add_argument("--student", default="you", help="the name your own grades are filed under")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any point is lost")
    parser.add_argument("--run", help="name of this run's folder under build/grading/runs/ (must be new)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        labs = select(args.lab)
        if not labs:
            raise UsageProblem("no labs found under solutions/")
        work = plan(args, labs)
        run = runs.start(args.run, _what_is_graded(args))
    except (UnknownLab, UsageProblem, runs.RunNameProblem) as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    _warn_about_busy_lab_ports(labs)
    results: list[LabResult] = []
    total = sum(len(per_lab) for per_lab in work.values())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("reading solutions/ into the gradebook", total=total)
        try:
            api = notebooks.prepare(labs, feedback_dir=run.feedback)
        except notebooks.GradingError as error:
            runs.discard(run)
            console.print(f"[red]error:[/] {error}")
            return 2
        for student, per_lab in work.items():
            for lab, folder in per_lab.items():
                progress.update(task, description=f"grading {lab.id} ({student})")
                results.append(grade_one(api, lab, student, folder))
                progress.advance(task)
    report.print_results(console, results, show_student=len(work) > 1)
    written = runs.finish(run, results, class_grades=bool(args.submissions))
    console.print(f"this run: {_shown(run.folder)}/ ({', '.join(p.name for p in written)}, feedback HTML in "
                  f"feedback/<student>/<lab>/); {_shown(runs.LATEST)} points to it, earlier runs are kept")
    copies = [GRADES_JSON] + ([GRADES_CSV] if args.submissions else [])
    console.print(f"copied to {' and '.join(_shown(p) for p in copies)}")
    lost = any(r.problem or r.score < r.max_score for r in results)
    return 1 if args.strict and lost else 0


if __name__ == "__main__":
    sys.exit(main())
