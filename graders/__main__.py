"""`make grade`: grade the labs' notebooks (nbgrader) and their stack checks (pytest), print one table.

    python -m graders                         # your notebooks in labs/
    python -m graders --lab v1                # one lab
    python -m graders --notebooks solutions   # the instructor's sources (should score 100 %)
    python -m graders --submissions DIR       # a class: DIR/<student>/<lab>/ (or DIR/submitted/<student>/<lab>/)
    python -m graders --strict                # exit 1 when any point is lost
    python -m graders --run midterm           # name this run's folder (default: <UTC time>-<what is graded>)

Each run keeps its results in build/grading/runs/<run>/ (grades.json, grades.csv and lms-grades.csv for a class,
feedback HTML); earlier runs are never touched. build/grading/latest points at the newest; build/grades.json (and
build/grades.csv, build/lms-grades.csv after a class) is a copy of the newest run's.

A class (--submissions) is graded in parallel (--workers, one per core by default), only the submissions that
changed since the last run (--fresh grades all again), with a progress bar and a summary at the end (--below 50:
the students under 50 %); nbgrader's course folder build/grading/ (autograded/, feedback/, gradebook.db) is what
the next class run compares against.

Exit status: 0 graded (points lost or not), 1 --strict and points lost, 2 bad arguments or grading broken.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from graders import classreport, classrun, notebooks, report, runs
from graders.course import (BUILD_DIR, GRADES_CSV, GRADES_JSON, GRADING_DIR, LABS_DIR, REPO_ROOT, SOLUTIONS_DIR, Lab,
                            UnknownLab, select)
from graders.results import LabResult
from graders.submission import grade_one
from stack import topology
from stack.runner.processes import port_in_use

LMS_CSV = BUILD_DIR / "lms-grades.csv"  # student, lab, points, max: what an LMS gradebook imports

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


def _what_is_graded(args: argparse.Namespace) -> str:
    if args.submissions:
        return f"class-{Path(args.submissions).resolve().name}"
    return "solutions" if args.notebooks == "solutions" else args.student


def _grade_alone(work: dict[str, dict[Lab, Path]], labs: list[Lab], run: runs.Run) -> list[LabResult]:
    """One student after another in this process, a table line per exercise; feedback into the run's folder."""
    results: list[LabResult] = []
    total = sum(len(per_lab) for per_lab in work.values())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("reading solutions/ into the gradebook", total=total)
        api = notebooks.prepare(labs, feedback_dir=run.feedback)
        for student, per_lab in work.items():
            for lab, folder in per_lab.items():
                progress.update(task, description=f"grading {lab.id} ({student})")
                results.append(grade_one(api, lab, student, folder))
                progress.advance(task)
    report.print_results(console, results, show_student=len(work) > 1)
    return results


def _grade_class(args: argparse.Namespace, work: dict[str, dict[Lab, Path]], run: runs.Run) -> list[LabResult]:
    """In parallel, only what changed since the last run, a summary at the end (graders/classrun.py); the class's
    feedback (nbgrader's feedback/ tree) copied into the run's folder, so a later run cannot take it away."""
    outcome = classrun.run(work, console, workers=args.workers, timeout=args.timeout, fresh=args.fresh)
    classreport.print_summary(console, outcome, args.below / 100)
    for result in outcome.results:
        if result.feedback_html:
            html = Path(result.feedback_html)
            kept = run.feedback / html.relative_to(GRADING_DIR / "feedback")
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(html, kept)
            result.feedback_html = str(kept)
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
    parser.add_argument("--run", help="name of this run's folder under build/grading/runs/ (must be new)")
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
        run = runs.start(args.run, _what_is_graded(args))
    except (UnknownLab, UsageProblem, runs.RunNameProblem) as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    _warn_about_busy_lab_ports(labs)
    try:
        results = _grade_class(args, work, run) if args.submissions else _grade_alone(work, labs, run)
    except notebooks.GradingError as error:
        runs.discard(run)
        console.print(f"[red]error:[/] {error}")
        return 2
    except KeyboardInterrupt:
        runs.discard(run)
        kept = " (a class run keeps what it graded: run it again to grade the rest)" if args.submissions else ""
        console.print(f"[yellow]interrupted[/]{kept}")
        return 130
    written = runs.finish(run, results, class_grades=bool(args.submissions))
    copies = [GRADES_JSON]
    if args.submissions:
        lms = run.folder / LMS_CSV.name
        classreport.write_lms_csv(results, lms)
        shutil.copy2(lms, LMS_CSV)
        written.append(lms)
        copies += [GRADES_CSV, LMS_CSV]
    console.print(f"this run: {_shown(run.folder)}/ ({', '.join(p.name for p in written)}, feedback HTML in "
                  f"feedback/<student>/<lab>/); {_shown(runs.LATEST)} points to it, earlier runs are kept")
    console.print(f"copied to {', '.join(_shown(p) for p in copies)}")
    if args.submissions:
        console.print(f"nbgrader course (autograded/, feedback/, gradebook.db; what the next class run compares "
                      f"against): {_shown(GRADING_DIR)}/")
    lost = any(r.problem or r.score < r.max_score for r in results)
    return 1 if args.strict and lost else 0


if __name__ == "__main__":
    sys.exit(main())
