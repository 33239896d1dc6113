"""`python -m stack.generate --check` passes on the committed tree and catches hand edits and leftover files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stack.paths import REPO_ROOT, STACK_DIR

GENERATE_TIMEOUT = 120
EDITED = Path("stack/prometheus/classroom/tests/LLMHighErrorRatio.yml")
LEFTOVER = Path("stack/prometheus/production/tests/RenamedAlert.yml")


def _generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the generator of the `stack` package under `root` (the working directory comes first on sys.path)."""
    return subprocess.run([sys.executable, "-m", "stack.generate", *args], cwd=root, capture_output=True, text=True,
                          timeout=GENERATE_TIMEOUT)


def test_the_committed_generated_files_are_up_to_date() -> None:
    result = _generate(REPO_ROOT, "--check")
    assert result.returncode == 0, f"run `make generate`:\n{result.stdout}{result.stderr}"


def test_check_names_an_edited_file_and_a_leftover_and_generate_repairs_both(tmp_path: Path) -> None:
    shutil.copytree(STACK_DIR, tmp_path / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    edited = tmp_path / EDITED
    original = edited.read_text()
    edited.write_text(original.replace("exp_alerts: []", "exp_alerts: [] # hand edit", 1))
    assert edited.read_text() != original
    (tmp_path / LEFTOVER).write_text("tests: []\n")

    check = _generate(tmp_path, "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    # Exactly the two changes are reported, which also shows it checked the copy, not this repository.
    assert check.stdout.splitlines() == [f"stale: {EDITED}", f"not generated any more (delete it): {LEFTOVER}"]
    assert "make generate" in check.stderr

    assert _generate(tmp_path).returncode == 0
    assert edited.read_text() == original
    assert not (tmp_path / LEFTOVER).exists()
    assert _generate(tmp_path, "--check").returncode == 0
