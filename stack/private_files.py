"""Files only the stack's own user may read: data holding raw user ids, and secrets."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600


def create_private(path: Path) -> Path:
    """`path` exists with mode 0600 (created so, or narrowed if an older run created it wider), its folder too.
    SQLite creates a database's -wal and -shm files with the database file's mode, so they stay private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
    os.chmod(path, PRIVATE_MODE)
    return path


def installation_secret(path: Path) -> str:
    """The secret kept in `path` (mode 0600), made on first use: one per installation, never a committed default."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    return value
