"""nbgrader's API with this course's config loaded explicitly, rooted at the repository."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import nbgrader
import nbgrader.api as nbgrader_api_module
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from graders.course import GRADING_DIR, NBGRADER_CONFIG
from stack.paths import REPO_ROOT


def load_config(**overrides: str) -> Config:
    config = PyFileConfigLoader(NBGRADER_CONFIG.name, path=str(NBGRADER_CONFIG.parent)).load_config()
    config.CourseDirectory.root = str(REPO_ROOT)
    for folder in ("submitted", "autograded", "feedback"):  # absolute, so LLMOBS_BUILD_DIR can move them
        setattr(config.CourseDirectory, f"{folder}_directory", str(GRADING_DIR / folder))
    exchange = GRADING_DIR / "exchange"  # unused (no JupyterHub), but nbgrader insists on a writable one
    exchange.mkdir(parents=True, exist_ok=True)
    config.Exchange.root = str(exchange)
    config.CourseDirectory.db_url = f"sqlite:///{GRADING_DIR / 'gradebook.db'}"
    for key, value in overrides.items():
        setattr(config.CourseDirectory, key, value)
    return config


@functools.cache
def _alembic_head() -> str:
    """The gradebook schema version, read in-process (nbgrader runs the `alembic` CLI for it: ~3 s per fresh
    gradebook, and fresh gradebooks are what every grading run starts from)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(alembic_config).get_current_head()


nbgrader_api_module.get_alembic_version = _alembic_head


def _venv_on_path() -> None:
    """nbgrader runs the `alembic` command to create its gradebook; make it find the venv's copy."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def api(quiet: bool = True, **directories: str) -> NbGraderAPI:
    """directories: CourseDirectory settings to override (release_directory=..., feedback_directory=...)."""
    _venv_on_path()
    config = load_config(**directories)
    log = logging.getLogger("nbgrader")
    log.setLevel(logging.ERROR if quiet else logging.INFO)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config, log=log)


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))
