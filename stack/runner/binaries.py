"""Finds the Prometheus-family binaries that the OS packages install."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

# Debian names the Alertmanager binary prometheus-alertmanager; upstream tarballs call it alertmanager.
CANDIDATES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "promtool": ("promtool",),
    "amtool": ("amtool",),
}
INSTALL_HINT = (
    "run `make up` or `make test` (they install it), or install it yourself: "
    "`sudo apt-get install prometheus prometheus-alertmanager`"
)


class MissingBinary(RuntimeError):
    pass


def find(tool: str) -> str:
    for name in CANDIDATES[tool]:
        path = shutil.which(name)
        if path:
            return path
    raise MissingBinary(f"{tool} is not installed (looked for {', '.join(CANDIDATES[tool])} on PATH); {INSTALL_HINT}")


def complaint_about(tool: str, command: list[str], document: Mapping, file_name: str) -> str | None:
    """Write `document` as YAML to a temporary `file_name`, run `tool command... <file>` on it, and return None when
    the tool accepts it, else its first error line (naming `file_name`, never the temporary path)."""
    with tempfile.TemporaryDirectory(prefix=f"{tool}-") as folder:
        path = Path(folder, file_name)
        path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
        result = subprocess.run([find(tool), *command, str(path)], capture_output=True, text=True, timeout=20)
    if result.returncode == 0:
        return None
    # promtool: "Checking <file>", "FAILED:", then the error; amtool: "Checking '<file>'  FAILED: <error>", then
    # a generic "amtool: error: failed to validate" line. Keep the line that says what is wrong.
    lines = [line.strip().replace(str(path), file_name) for line in (result.stdout + result.stderr).splitlines()]
    lines = [line for line in lines if line and line != "FAILED:" and not (line.startswith("Checking")
                                                                             and "FAILED" not in line)]
    return next((line for line in lines if "FAILED" in line), None) \
        or next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "?")
