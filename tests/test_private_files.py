"""Raw user ids and the hashing salt are readable by the stack's user only: the salt is made per installation into
the run folder (0600) unless GATEWAY_USER_HASH_SALT sets it; the attribution and notifications databases are 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stack.gateway.settings import SALT_FILE, Settings
from tests import inprocess

BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}],
        "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}
ALERT = {"status": "firing", "receiver": "pager",
         "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2026-01-01T00:00:00Z"}]}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_salt_is_generated_once_per_installation_and_private(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_USER_HASH_SALT", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "gateway"))
    settings = Settings.from_env()
    assert settings.user_hash_salt is None
    salt = settings.salt()
    assert len(salt) >= 32 and salt != "llmobs-course"
    assert mode(tmp_path / "gateway" / SALT_FILE) == 0o600
    assert Settings.from_env().salt() == salt  # kept across restarts
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "other"))
    assert Settings.from_env().salt() != salt  # another installation, another salt
    monkeypatch.setenv("GATEWAY_USER_HASH_SALT", "from-env")
    assert Settings.from_env().salt() == "from-env"


def test_the_databases_are_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which would make them 0644
    try:
        with inprocess.stack(tmp_path, monkeypatch) as stack:
            assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
            assert stack.receiver.post("/hook/pager", json=ALERT).status_code == 200
            files = [tmp_path / "gateway" / "attribution.db", tmp_path / "receiver" / "notifications.db"]
            files += [Path(f"{db}{suffix}") for db in files for suffix in ("-wal", "-shm")]
            modes = {path.name: oct(mode(path)) for path in files if path.exists()}
            assert len(modes) >= 4 and set(modes.values()) == {oct(0o600)}, modes
    finally:
        os.umask(old_umask)


def test_a_database_left_world_readable_by_an_older_run_is_narrowed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "gateway" / "attribution.db"
    db.parent.mkdir(parents=True)
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    with inprocess.stack(tmp_path, monkeypatch):
        assert mode(db) == 0o600
