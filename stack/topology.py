"""Addresses of every service, loaded from stack/topology.yaml (the only place ports are written)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import yaml

from stack.paths import STACK_DIR

TOPOLOGY_FILE = STACK_DIR / "topology.yaml"


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    description: str
    health: str = "/health"
    metrics: str = "/metrics"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@dataclass(frozen=True)
class Topology:
    host: str
    services: dict[str, Service]
    compose_only: dict[str, Service]

    def __getitem__(self, name: str) -> Service:
        if name in self.services:
            return self.services[name]
        return self.compose_only[name]


def _services(raw: dict, host: str) -> dict[str, Service]:
    return {name: Service(name=name, host=host, **spec) for name, spec in (raw or {}).items()}


@cache
def load() -> Topology:
    raw = yaml.safe_load(TOPOLOGY_FILE.read_text())
    host = raw["host"]
    return Topology(
        host=host,
        services=_services(raw["services"], host),
        compose_only=_services(raw.get("compose_only"), host),
    )
