"""`make release`: regenerate labs/ from solutions/ with nbgrader (solutions become stubs, hidden tests go).

    python -m graders.release           # write labs/<lab>/
    python -m graders.release --check   # exit 1 when labs/ differs from what solutions/ would release
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import nbformat

from graders import nbconfig
from graders.course import LABS_DIR, REPO_ROOT, Lab, UnknownLab, select

# The grading gradebook lives in build/grading; releasing uses its own so it never disturbs a grading run.
RELEASE_DB = "build/release/gradebook.db"


def _notebook_content(path: Path) -> list[tuple[str, str, dict]]:
    notebook = nbformat.read(path, as_version=4)
    return [(cell.cell_type, cell.source, dict(cell.metadata.get("nbgrader", {}))) for cell in notebook.cells]


def _student_work(path: Path) -> bool:
    """Files a student's runs create in labs/ (git-ignored too), which are not part of a release."""
    return path.name.startswith("student_") or bool({".ipynb_checkpoints", "__pycache__"} & set(path.parts))


def release(labs: list[Lab], target: Path) -> None:
    relative_target = target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target
    api = nbconfig.api(release_directory=str(relative_target))
    api.coursedir.db_url = f"sqlite:///{REPO_ROOT / RELEASE_DB}"
    (REPO_ROOT / RELEASE_DB).parent.mkdir(parents=True, exist_ok=True)
    for lab in labs:
        result = api.generate_assignment(lab.id, force=True)
        if not result["success"]:
            tail = "\n".join(((result.get("error") or "") + (result.get("log") or "")).splitlines()[-20:])
            raise SystemExit(f"error: nbgrader could not release {lab.id}:\n{tail}")


def differences(labs: list[Lab], released: Path, current: Path) -> list[str]:
    problems = []
    for lab in labs:
        new, old = released / lab.id, current / lab.id
        if not old.is_dir():
            problems.append(f"labs/{lab.id} is missing")
            continue
        new_files = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
        old_files = {p.relative_to(old) for p in old.rglob("*")
                     if p.is_file() and not _student_work(p.relative_to(old))}
        problems += [f"labs/{lab.id}/{p} is missing" for p in sorted(new_files - old_files)]
        problems += [f"labs/{lab.id}/{p} is not in solutions/{lab.id}" for p in sorted(old_files - new_files)]
        for name in sorted(new_files & old_files):
            if name.suffix == ".ipynb":
                if _notebook_content(new / name) != _notebook_content(old / name):
                    problems.append(f"labs/{lab.id}/{name} differs from its release from solutions/")
            elif not filecmp.cmp(new / name, old / name, shallow=False):
                problems.append(f"labs/{lab.id}/{name} differs from solutions/{lab.id}/{name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when labs/ is out of date")
    parser.add_argument("--lab", help="one lab (v1, v2, ...); default: all")
    args = parser.parse_args(argv)
    try:
        labs = select(args.lab)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.check:
        release(labs, LABS_DIR)
        print(f"released {', '.join(lab.id for lab in labs)} into labs/")
        return 0
    with tempfile.TemporaryDirectory(dir=REPO_ROOT / "build" if (REPO_ROOT / "build").exists() else None) as tmp:
        released = Path(tmp) / "labs"
        release(labs, released)
        problems = differences(labs, released, LABS_DIR)
    for problem in problems:
        print(problem)
    if problems:
        print("run `make release` and commit labs/", file=sys.stderr)
        return 1
    print(f"labs/ matches solutions/ ({len(labs)} labs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
