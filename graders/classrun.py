"""`make grade SUBMISSIONS=DIR`: grade a class on every core, grading again only what changed since the last run.

In: nbgrader's course layout, DIR/submitted/<student>/<lab>/ (DIR/<student>/<lab>/ works too).
Once per class: the gradebook built from solutions/, kept between runs while the labs' grading is unchanged.
Per student and lab, on one process per core (graders/classpool.py): graders/submission.py, as `make grade` alone.
Out: nbgrader's own layout in build/grading/ (submitted/, autograded/, feedback/, gradebook.db and an
nbgrader_config.py pointing at them, so `nbgrader generate_feedback`, `nbgrader release_feedback` and formgrader work
there), and build/grading/class-state.json, what the next run compares against.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from graders import classcache, classpool, notebooks
from graders.classcache import ClassState
from graders.course import GRADING_DIR, NBGRADER_CONFIG, SOLUTIONS_DIR, Lab
from graders.results import LabResult
from graders.submission import not_gradable

COURSE_CONFIG = GRADING_DIR / "nbgrader_config.py"
# A lab that takes longer than this for one student is stopped (the course's cells time out after 30 s each, so
# only a notebook that ignores interrupts, or a hung kernel, gets here).
DEFAULT_TIMEOUT_SECONDS = 180.0

Work = dict[str, dict[Lab, Path]]  # student -> lab -> the folder holding that student's notebooks


@dataclass(frozen=True)
class ClassRun:
    results: list[LabResult]  # one per student and lab, in the order of the work
    graded: int               # submissions graded in this run
    kept: int                 # unchanged since the last run: their earlier results
    seconds: float


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gradebook(labs: list[Lab], state: ClassState, fresh: bool) -> ClassState:
    """The class's one gradebook: kept when every lab is graded as last time, built again (and every submission
    graded again) when a lab's solutions or the grading code changed."""
    versions = {lab.id: classcache.lab_version(lab) for lab in labs}
    changed = any(state.lab_versions.get(lab_id, version) != version for lab_id, version in versions.items())
    if fresh or changed or not state.lab_versions or not (GRADING_DIR / "gradebook.db").is_file():
        notebooks.prepare(labs)
        state = ClassState()
    else:
        new = [lab for lab in labs if lab.id not in state.lab_versions]
        if new:
            notebooks.prepare(new, fresh=False)
    state.lab_versions.update(versions)
    return state


def _write_course_config() -> None:
    """nbgrader's own commands, run in build/grading/, find the gradebook, the trees and the course's settings."""
    COURSE_CONFIG.write_text(f'''"""Written by `make grade SUBMISSIONS=...`: this folder is an nbgrader course. Run nbgrader here:
    nbgrader generate_feedback <lab> --force, nbgrader release_feedback <lab>, nbgrader formgrader."""
c = get_config()  # noqa: F821
load_subconfig({str(NBGRADER_CONFIG)!r})  # noqa: F821  (the course's settings)
c.CourseDirectory.root = {str(GRADING_DIR)!r}
c.CourseDirectory.source_directory = {str(SOLUTIONS_DIR)!r}
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {"sqlite:///" + str(GRADING_DIR / "gradebook.db")!r}
c.Exchange.root = {str(GRADING_DIR / "exchange")!r}
''')


def _running(tasks: list[classpool.Task]) -> str:
    return "grading " + ", ".join(f"{escape(t.student)} {t.lab.short}" for t in tasks) if tasks else "finishing"


def run(work: Work, console: Console, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS,
        fresh: bool = False) -> ClassRun:
    began = time.monotonic()
    labs = list(dict.fromkeys(lab for per_lab in work.values() for lab in per_lab))
    with console.status("reading solutions/ into the gradebook"):
        state = _gradebook(labs, classcache.load(), fresh)
    state.save()
    _write_course_config()
    results: dict[tuple[str, str], LabResult] = {}
    tasks: list[classpool.Task] = []
    hashes: dict[tuple[str, str], str] = {}
    kept = 0
    for student, per_lab in work.items():
        for lab, folder in per_lab.items():
            key, content_hash = (student, lab.id), classcache.submission_hash(folder)
            earlier = state.kept(student, lab, content_hash)
            if earlier is not None:
                results[key], kept = earlier, kept + 1
                continue
            unfit = not_gradable(lab, student, folder)
            if unfit is not None:
                results[key] = unfit
                continue
            hashes[key] = content_hash
            tasks.append(classpool.Task(student, lab, folder))

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
                  transient=True) as progress:
        bar = progress.add_task("starting the grading processes", total=len(tasks))

        def finished(task: classpool.Task, result: LabResult) -> None:
            key = (task.student, task.lab.id)
            results[key] = result
            state.remember(task.student, task.lab, hashes[key], result)
            state.save()  # an interrupted run keeps what it graded
            progress.advance(bar)

        if tasks:
            classpool.grade(tasks, workers or default_workers(), timeout,
                            started=lambda running: progress.update(bar, description=_running(running)),
                            finished=finished)
    ordered = [results[(student, lab.id)] for student, per_lab in work.items() for lab in per_lab]
    return ClassRun(ordered, len(tasks), kept, time.monotonic() - began)
