"""Finds the Prometheus-family binaries that the OS packages install."""

from __future__ import annotations

import shutil

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
