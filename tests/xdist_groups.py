"""Keep the tests that share a module- or class-scoped fixture on one pytest-xdist worker.

`make test` runs on several workers. A module-scoped fixture (a graded class, a seeded Prometheus) is built once per
worker that runs one of its tests, so its tests must stay together. pytest-xdist's own `--dist loadgroup` carries a
test's group from the workers to the scheduler by appending `@group` to its node id; since pytest 9.2 builds node ids
differently the suffix no longer takes (pytest-xdist issue #1386), and every test would be scheduled on its own.

So the groups travel in a file: each worker writes `{node id: group}` when it has collected (all workers collect the
same tests), and the scheduler reads it when it splits the collection into work units. A test's group is its
`xdist_group` mark if it has one, else its module when it uses a module-, class- or package-scoped fixture; every
other test is a unit of its own and goes to whichever worker is free.

A pytest plugin: tests/conftest.py loads it (`pytest_plugins`), and `--dist loadgroup` then uses GroupScheduling.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

GROUPS_FILE_ENV = "LLMOBS_XDIST_GROUPS_FILE"
SHARED_SCOPES = ("module", "class", "package")


def group_of(item: pytest.Item) -> str | None:
    marked = item.get_closest_marker("xdist_group")
    if marked:
        return str(marked.args[0] if marked.args else marked.kwargs.get("name", "default"))
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs.values() if fixtures else ()
    if any(defs and defs[-1].scope in SHARED_SCOPES for defs in definitions):
        module = getattr(item, "module", None)
        return module.__name__ if module else item.nodeid.split("::")[0]
    return None


def groups_file() -> Path:
    """Where the workers write the groups: chosen once by the controlling process, inherited by its workers."""
    if GROUPS_FILE_ENV not in os.environ:
        handle, name = tempfile.mkstemp(prefix="llmobs-xdist-groups-", suffix=".json")
        os.close(handle)
        os.environ[GROUPS_FILE_ENV] = name
        atexit.register(Path(name).unlink, missing_ok=True)
    return Path(os.environ[GROUPS_FILE_ENV])


def record(items: list[pytest.Item]) -> None:
    """On a worker: write every grouped test's group (atomically: the workers write the same content)."""
    groups = {item.nodeid: group for item in items if (group := group_of(item))}
    target = groups_file()
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(groups))
    partial.replace(target)


class GroupScheduling(LoadScopeScheduling):
    """LoadScopeScheduling whose scope is the group the workers recorded, or the test itself."""

    _groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            text = groups_file().read_text()
            self._groups = json.loads(text) if text else {}
        return self._groups.get(nodeid, nodeid)


groups_file()  # chosen at import, before pytest-xdist starts its workers, so they inherit it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `first_in_group` move to the front (stable, the same on every worker, so in their group too)."""
    items.sort(key=lambda item: item.get_closest_marker("first_in_group") is None)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        record(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None
