from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stack import topology
from stack.paths import run_dir
from stack.private_files import installation_secret

SALT_FILE = "user_hash_salt"


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    provider_url: str
    provider_timeout_seconds: float
    data_dir: Path
    instrumentation: bool
    user_hash_salt: str | None  # None: the installation's own, made on first start (see `salt`)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            provider_url=os.environ.get("GATEWAY_PROVIDER_URL", topology.load().services["llmsim"].url),
            provider_timeout_seconds=float(os.environ.get("GATEWAY_PROVIDER_TIMEOUT_SECONDS", "60")),
            data_dir=Path(os.environ.get("GATEWAY_DATA_DIR", run_dir() / "gateway")),
            instrumentation=_flag("GATEWAY_INSTRUMENTATION", "on"),
            user_hash_salt=os.environ.get("GATEWAY_USER_HASH_SALT") or None,
        )

    def salt(self) -> str:
        """GATEWAY_USER_HASH_SALT when set, else a random salt generated once into the data folder (mode 0600)."""
        return self.user_hash_salt or installation_secret(self.data_dir / SALT_FILE)
