"""Where one `make grade` keeps its results, so that no run destroys another's.

Each run gets build/grading/runs/<run>/ (grades.json, grades.csv for a class, feedback/<student>/<lab>/*.html);
build/grading/latest points at the newest run, and build/grades.json (build/grades.csv after grading a class) is a
copy of the newest run's. Earlier runs are never touched: delete a run's folder when it is no longer needed."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from graders import report
from graders.course import GRADES_CSV, GRADES_JSON, GRADING_DIR
from graders.results import LabResult

RUNS_DIR = GRADING_DIR / "runs"
LATEST = GRADING_DIR / "latest"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


class RunNameProblem(ValueError):
    pass


@dataclass(frozen=True)
class Run:
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def feedback(self) -> Path:
        return self.folder / "feedback"

    @property
    def grades_json(self) -> Path:
        return self.folder / "grades.json"

    @property
    def grades_csv(self) -> Path:
        return self.folder / "grades.csv"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


def start(name: str | None, graded: str) -> Run:
    """A new, empty run folder: `name` when given (refused when taken), else <UTC time>-<what is graded>."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    if name:
        if not RUN_NAME.fullmatch(name):
            raise RunNameProblem(f"RUN={name!r} is not a usable folder name; use letters, digits, '.', '_' or '-' "
                                 "(at most 80), starting with a letter or digit")
        try:
            (RUNS_DIR / name).mkdir()
        except FileExistsError:
            raise RunNameProblem(f"a grading run called {name!r} already exists ({RUNS_DIR / name}); choose "
                                 "another RUN= name, or delete that folder if you no longer need it") from None
        return Run(RUNS_DIR / name)
    base = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{_slug(graded)}"
    for copy in itertools.count(1):
        folder = RUNS_DIR / (base if copy == 1 else f"{base}-{copy}")
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            return Run(folder)
    raise AssertionError("unreachable")


def discard(run: Run) -> None:
    """Remove a run that wrote nothing (grading could not start)."""
    with contextlib.suppress(OSError):
        run.folder.rmdir()


def _point_latest_at(run: Run) -> None:
    staged = GRADING_DIR / f".latest-{os.getpid()}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(run.folder.relative_to(GRADING_DIR), target_is_directory=True)
    os.replace(staged, LATEST)


def finish(run: Run, results: list[LabResult], class_grades: bool) -> list[Path]:
    """Write the run's grades, make it the latest; returns the files written."""
    report.write_json(results, run.grades_json)
    written = [run.grades_json]
    shutil.copyfile(run.grades_json, GRADES_JSON)
    if class_grades:
        report.write_csv(results, run.grades_csv)
        shutil.copyfile(run.grades_csv, GRADES_CSV)
        written.append(run.grades_csv)
    _point_latest_at(run)
    return written
