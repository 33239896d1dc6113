"""The docs name files that exist: a moved or renamed module must take its mentions along."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from stack.paths import REPO_ROOT

TOP_FOLDERS = ("stack", "graders", "tests", "bench", "docs", "labs", "solutions")
MENTION = re.compile(r"`((?:%s)/[^`\s]*)`" % "|".join(TOP_FOLDERS))
PLACEHOLDER = re.compile(r"[<>{}*]|\.\.\.")


def _docs() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md")),
            *sorted(REPO_ROOT.glob("labs/*/README.md")), *sorted(REPO_ROOT.glob("solutions/*/README.md"))]


def _tracked_paths() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    files = set(listed.split())
    folders = {str(Path(f).parents[i]) for f in files for i in range(len(Path(f).parents) - 1)}
    return files | folders


def test_every_repository_path_named_in_the_docs_exists() -> None:
    tracked = _tracked_paths()
    missing = []
    for doc in _docs():
        for path in MENTION.findall(doc.read_text()):
            path = path.split(":")[0].split("#")[0].rstrip("/.,")
            if PLACEHOLDER.search(path):
                continue
            if path not in tracked and not (REPO_ROOT / path).exists():
                missing.append(f"{doc.relative_to(REPO_ROOT)}: `{path}`")
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)


def test_the_readme_layout_names_every_top_level_folder() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    folders = {p.split("/")[0] for p in _tracked_paths() if "/" in p}
    unnamed = sorted(f for f in folders if f"`{f}/`" not in layout)
    assert not unnamed, f"README.md's Layout section does not name {unnamed}"
