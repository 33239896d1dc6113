"""What the embedded stack runs: one command line per service, from the same config files compose uses."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stack import topology
from stack.paths import STACK_DIR
from stack.runner import binaries

PROFILES = ("classroom", "production")
PYTHON_SERVICES = ("llmsim", "receiver", "gateway")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: list[str]
    health_url: str
    url: str
    description: str
    env: dict[str, str] = field(default_factory=dict)


def prometheus_config(profile: str) -> Path:
    return STACK_DIR / "prometheus" / profile / "prometheus.yml"


def alertmanager_config(profile: str) -> Path:
    return STACK_DIR / "alertmanager" / profile / "alertmanager.yml"


def prometheus_flags(profile: str, config_root: Path, data_dir: str) -> list[str]:
    address = topology.load().services["prometheus"].address
    return [
        f"--config.file={config_root / profile / 'prometheus.yml'}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={address}",
        "--web.enable-lifecycle",
        "--enable-feature=exemplar-storage",
        # Prometheus drops alerts evaluated before it has discovered Alertmanager and by default resends only
        # after 1m, which would delay the first notification of a fresh stack by a minute.
        "--rules.alert.resend-delay=5s",
    ]


def alertmanager_flags(profile: str, config_root: Path, data_dir: str) -> list[str]:
    address = topology.load().services["alertmanager"].address
    return [
        f"--config.file={config_root / profile / 'alertmanager.yml'}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={address}",
        "--cluster.listen-address=",
    ]


def specs(profile: str, run: Path) -> list[ServiceSpec]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    services = topology.load().services
    python_env = {"LLMOBS_RUN_DIR": str(run), "LLMOBS_PROFILE": profile, "PYTHONUNBUFFERED": "1"}
    result = [
        ServiceSpec(name, [sys.executable, "-m", f"stack.{name}"], services[name].url + services[name].health,
                    services[name].url, services[name].description, env=python_env)
        for name in PYTHON_SERVICES
    ]
    result.append(ServiceSpec(
        "alertmanager",
        [binaries.find("alertmanager"),
         *alertmanager_flags(profile, STACK_DIR / "alertmanager", str(run / "data" / "alertmanager"))],
        services["alertmanager"].url + services["alertmanager"].health, services["alertmanager"].url,
        services["alertmanager"].description,
    ))
    result.append(ServiceSpec(
        "prometheus",
        [binaries.find("prometheus"),
         *prometheus_flags(profile, STACK_DIR / "prometheus", str(run / "data" / "prometheus"))],
        services["prometheus"].url + services["prometheus"].health, services["prometheus"].url + "/classic/graph",
        services["prometheus"].description,
    ))
    return result


def child_env(spec: ServiceSpec) -> dict[str, str]:
    return {**os.environ, **spec.env}
