"""Where the project's files and the embedded stack's run folder live."""

from __future__ import annotations

import os
from pathlib import Path

STACK_DIR = Path(__file__).resolve().parent
REPO_ROOT = STACK_DIR.parent
DOCS_DIR = REPO_ROOT / "docs"


def run_dir() -> Path:
    """The git-ignored folder holding the running stack's data, logs and pid files."""
    return Path(os.environ.get("LLMOBS_RUN_DIR", REPO_ROOT / ".run")).resolve()
