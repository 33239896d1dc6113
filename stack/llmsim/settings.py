from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    seed: int
    latency_scale: float

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            seed=int(os.environ.get("LLMSIM_SEED", "42")),
            latency_scale=float(os.environ.get("LLMSIM_LATENCY_SCALE", "1.0")),
        )
