"""Addresses of every service, loaded from stack/topology.yaml (the only place ports are written).

LLMOBS_PORT_OFFSET (default 0) shifts every port of a running stack, so a second stack (the test suite's, or a
second checkout's) can run beside a student's `make up`. Generated configs are always written with the base
ports (see `base_ports`); the runner shifts a copy for an offset stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
    workbench: dict[str, Service]
    lab_targets: dict[str, Service]
    optional: dict[str, Service]

    def __getitem__(self, name: str) -> Service:
        for group in (self.services, self.workbench, self.lab_targets, self.optional, self.compose_only):
            if name in group:
                return group[name]
        raise KeyError(f"no service {name!r} in {TOPOLOGY_FILE.name}")


def _services(raw: dict, host: str) -> dict[str, Service]:
    return {name: Service(name=name, host=host, **spec) for name, spec in (raw or {}).items()}


class TopologyError(ValueError):
    pass


_forced_base = 0


def port_offset() -> int:
    """The offset of the stack this process talks to (0 inside `base_ports()`)."""
    if _forced_base:
        return 0
    text = os.environ.get("LLMOBS_PORT_OFFSET", "0").strip() or "0"
    try:
        offset = int(text)
    except ValueError:
        raise TopologyError(f"LLMOBS_PORT_OFFSET={text!r} is not a whole number (e.g. 1000)") from None
    if not 0 <= offset <= 40000:
        raise TopologyError(f"LLMOBS_PORT_OFFSET={offset} is out of range (0..40000)")
    return offset


@contextmanager
def base_ports() -> Iterator[None]:
    """Inside this block load() returns the ports as written in topology.yaml, whatever the offset."""
    global _forced_base
    _forced_base += 1
    try:
        yield
    finally:
        _forced_base -= 1


def load() -> Topology:
    return _load(port_offset())


def _shift(group: dict[str, Service], offset: int) -> dict[str, Service]:
    return {name: replace(service, port=service.port + offset) for name, service in group.items()}


@cache
def _load(offset: int) -> Topology:
    raw = yaml.safe_load(TOPOLOGY_FILE.read_text())
    host = raw["host"]
    return Topology(
        host=host,
        services=_shift(_services(raw["services"], host), offset),
        compose_only=_shift(_services(raw.get("compose_only"), host), offset),
        workbench=_shift(_services(raw.get("workbench"), host), offset),
        lab_targets=_shift(_services(raw.get("lab_targets"), host), offset),
        optional=_shift(_services(raw.get("optional"), host), offset),
    )
