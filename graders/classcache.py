"""What a class run remembers between runs (build/grading/class-state.json): per student and lab, the content hash
of the folder that was graded and its result, and per lab the version of what grades it. A re-run grades again only
the submissions whose hash changed; a changed lab (its solutions/ folder or the grading code) regrades everyone."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from graders import nbconfig
from graders.course import GRADING_DIR, NBGRADER_CONFIG, Lab
from graders.results import LabResult

STATE_FILE = GRADING_DIR / "class-state.json"
GRADERS_DIR = Path(__file__).resolve().parent
IGNORED_PARTS = {".ipynb_checkpoints", "__pycache__"}
NOTHING_SUBMITTED = "nothing submitted"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not IGNORED_PARTS & set(p.parts)
                  and p.suffix != ".pyc")


def tree_hash(folder: Path, paths: list[Path] | None = None) -> str:
    """sha256 over every file's path (relative to `folder`) and bytes."""
    digest = hashlib.sha256()
    for path in paths if paths is not None else _files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def submission_hash(folder: Path) -> str:
    return tree_hash(folder) if folder.is_dir() else NOTHING_SUBMITTED


@functools.cache
def _source_ignored() -> tuple[str, ...]:
    """What nbgrader leaves out of an assignment (run folders, files the solutions wrote when run)."""
    return tuple(nbconfig.load_config().CourseDirectory.ignore)


def _lab_sources(lab: Lab) -> list[Path]:
    return [p for p in _files(lab.source)
            if not any(fnmatch.fnmatch(part, pattern) for part in p.relative_to(lab.source).parts
                       for pattern in _source_ignored())]


def lab_version(lab: Lab) -> str:
    """Changes whenever what grades `lab` changes: its solutions/ folder, the graders package, nbgrader's config."""
    grading_code = [p for p in _files(GRADERS_DIR) if p.suffix in (".py", ".ini")]
    return hashlib.sha256((tree_hash(lab.source, _lab_sources(lab)) + tree_hash(GRADERS_DIR, grading_code)
                           + hashlib.sha256(NBGRADER_CONFIG.read_bytes()).hexdigest()).encode()).hexdigest()


@dataclass
class ClassState:
    lab_versions: dict[str, str] = field(default_factory=dict)          # lab id -> lab_version
    graded: dict[str, dict[str, dict]] = field(default_factory=dict)    # student -> lab id -> {hash, result}

    def kept(self, student: str, lab: Lab, content_hash: str) -> LabResult | None:
        """The earlier result of this exact submission, if it was graded by this version of the lab."""
        entry = self.graded.get(student, {}).get(lab.id)
        if entry is None or entry["hash"] != content_hash:
            return None
        return LabResult.from_dict(entry["result"])

    def remember(self, student: str, lab: Lab, content_hash: str, result: LabResult) -> None:
        self.graded.setdefault(student, {})[lab.id] = {"hash": content_hash, "result": result.as_dict()}

    def save(self, path: Path = STATE_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"lab_versions": self.lab_versions, "graded": self.graded}))
        temporary.replace(path)


def load(path: Path = STATE_FILE) -> ClassState:
    """The state of the last run; an empty one when there was none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text())
        return ClassState(dict(data["lab_versions"]), dict(data["graded"]))
    except (OSError, ValueError, KeyError, TypeError):
        return ClassState()
