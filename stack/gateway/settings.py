from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stack import topology
from stack.paths import run_dir


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    provider_url: str
    provider_timeout_seconds: float
    data_dir: Path
    instrumentation: bool
    user_hash_salt: str

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            provider_url=os.environ.get("GATEWAY_PROVIDER_URL", topology.load().services["llmsim"].url),
            provider_timeout_seconds=float(os.environ.get("GATEWAY_PROVIDER_TIMEOUT_SECONDS", "60")),
            data_dir=Path(os.environ.get("GATEWAY_DATA_DIR", run_dir() / "gateway")),
            instrumentation=_flag("GATEWAY_INSTRUMENTATION", "on"),
            user_hash_salt=os.environ.get("GATEWAY_USER_HASH_SALT", "llmobs-course"),
        )
