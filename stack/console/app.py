"""The receiver's port as the runner serves it: the alert receiver plus the instructor console's routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from stack.console import routes
from stack.paths import run_dir
from stack.receiver import app as receiver


def create_app(data_dir: Path | None = None, runbooks_dir: Path | None = None,
               run: Callable[[], Path] = run_dir) -> FastAPI:
    """The receiver's app (notifications in `data_dir`, runbooks from `runbooks_dir`) with /console on it; `run`
    gives the stack's run folder the console's scenarios run in."""
    app = receiver.create_app(data_dir, runbooks_dir)
    app.include_router(routes.router(run))
    return app
