"""What the embedded stack runs: one command line per service, from the same config files compose uses."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stack import topology, tracing
from stack.alertmanager.config import TEMPLATES_DIR
from stack.paths import REPO_ROOT, STACK_DIR
from stack.runner import binaries

PROFILES = ("classroom", "production")
# The trace store starts first: the traced services export their spans to it from their first request.
PYTHON_SERVICES = ("tracestore", "llmsim", "receiver", "gateway")
TRACED_SERVICES = ("llmsim", "gateway")  # the services that export spans (the receiver does not trace)
# The module each Python service runs (`python -m <module>`) when it is not stack.<name>: the receiver's port also
# serves the instructor console (stack/console: the receiver with the console's routes added).
ENTRYPOINTS = {"receiver": "stack.console"}
TRACE_BACKEND = "phoenix"
TRACE_STORE = "tracestore"  # where the traced services send their spans unless Phoenix runs or you chose elsewhere
PHOENIX_LAUNCHER = STACK_DIR / "runner" / "phoenix_serve.py"
# `make up TRACES=1` installs the `traces` extra (arize-phoenix) here, apart from .venv: Phoenix brings ~100
# packages and would move some shared ones (python-dateutil) away from the versions the course is tested with.
TRACES_VENV = REPO_ROOT / ".venv-traces"
# Folders of a component's config that both profiles read (alertmanager.yml's `templates: ../templates/*.tmpl`).
SHARED_CONFIG = {"alertmanager": (TEMPLATES_DIR.name,)}
PHOENIX_INSTALL_HINT = ("run `make up TRACES=1` (it installs the `traces` extra, arize-phoenix, into .venv-traces), "
                        "or set LLMOBS_PHOENIX_PYTHON to a Python that has arize-phoenix installed")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: list[str]
    health_url: str
    url: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0


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
    service = topology.load().services["alertmanager"]
    return [
        f"--config.file={config_root / profile / 'alertmanager.yml'}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={service.address}",
        # the address the notifications' silence links and amtool command lines point at (`.ExternalURL`)
        f"--web.external-url={service.url}",
        "--cluster.listen-address=",
    ]


def jupyter_token(run: Path) -> str:
    """One token per run folder, so `make status` can print the same login URL `make up` did."""
    path = run / "jupyter-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def jupyter_spec(run: Path) -> ServiceSpec:
    service = topology.load().workbench["jupyter"]
    token = jupyter_token(run)
    argv = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.ip={service.host}",
            f"--ServerApp.port={service.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={REPO_ROOT}",
            f"--IdentityProvider.token={token}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
            "jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # containers and CI machines often run as root; Jupyter refuses without this
        argv.append("--allow-root")
    env = {"JUPYTER_RUNTIME_DIR": str(run / "jupyter" / "runtime"), "PYTHONUNBUFFERED": "1"}
    return ServiceSpec("jupyter", argv, service.url + service.health,
                       f"{service.url}/lab/tree/labs?token={token}", service.description, env=env)


def _shifted_copy(source: Path, target: Path, offset: int) -> Path:
    """Copy generated configs, moving every stack address by `offset` (for a stack beside the default one)."""
    with topology.base_ports():
        base = topology.load()
    groups = (base.services, base.workbench, base.lab_targets, base.optional, base.compose_only)
    moves = {s.address: f"{s.host}:{s.port + offset}" for group in groups for s in group.values()}
    for path in source.rglob("*.y*ml"):
        text = path.read_text()
        for old, new in moves.items():
            text = text.replace(old, new)
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text)
    return target


def config_root(component: str, profile: str, run: Path) -> Path:
    """Where prometheus/alertmanager read their generated config: the committed files, or a shifted copy (with the
    folders the config reads beside its profile's, like Alertmanager's templates)."""
    source = STACK_DIR / component
    offset = topology.port_offset()
    if offset == 0:
        return source
    target = run / "config" / component
    _shifted_copy(source / profile, target / profile, offset)
    for folder in SHARED_CONFIG.get(component, ()):
        shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    return target


def _has_phoenix(python: str) -> bool:
    """Whether `python` has arize-phoenix installed (asked of its metadata: importing Phoenix takes ~10 s)."""
    try:
        return subprocess.run([python, "-c", "from importlib.metadata import version; version('arize-phoenix')"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def phoenix_python() -> str | None:
    """A Python with arize-phoenix: LLMOBS_PHOENIX_PYTHON, else .venv-traces, else this interpreter; None if none."""
    chosen = os.environ.get("LLMOBS_PHOENIX_PYTHON", "").strip()
    if chosen:
        return chosen if _has_phoenix(chosen) else None
    candidates = [str(TRACES_VENV / "bin" / "python"), sys.executable]
    return next((python for python in candidates if Path(python).exists() and _has_phoenix(python)), None)


def phoenix_spec(run: Path, python: str | None = None) -> ServiceSpec:
    """Phoenix, offline: no telemetry, no fonts or downloads from the internet, no AI assistant, no gRPC port."""
    service = topology.load().optional[TRACE_BACKEND]
    env = {
        "PHOENIX_HOST": service.host, "PHOENIX_PORT": str(service.port),
        "PHOENIX_WORKING_DIR": str(run / "data" / "phoenix"),
        "PHOENIX_TELEMETRY_ENABLED": "false", "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true", "PHOENIX_ENABLE_MCP_SERVER": "false",
        "PHOENIX_LOG_MIGRATIONS": "false",
        # Phoenix would trace itself into wherever the stack's exporter points; it should not.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "", "PHOENIX_COLLECTOR_ENDPOINT": "",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [python or str(TRACES_VENV / "bin" / "python"), str(PHOENIX_LAUNCHER)]
    return ServiceSpec(TRACE_BACKEND, argv, service.url + service.health, service.url, service.description, env=env,
                       start_timeout=120.0)


def trace_export_env(traces: bool) -> dict[str, str]:
    """The OpenTelemetry exporter setting of the traced services. Your own OTEL_* variables win (they reach the
    services unchanged: docs/tracing.md); otherwise Phoenix's address when the runner starts it; otherwise the
    built-in trace store's."""
    user_choice = tracing.exporter_endpoint() or os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if user_choice:
        return {}
    backend = topology.load().optional[TRACE_BACKEND] if traces else topology.load().services[TRACE_STORE]
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": backend.url}


def specs(profile: str, run: Path, notebooks: bool = True, traces: bool = False) -> list[ServiceSpec]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    services = topology.load().services
    python_env = {"LLMOBS_RUN_DIR": str(run), "LLMOBS_PROFILE": profile, "PYTHONUNBUFFERED": "1",
                  **trace_export_env(traces)}
    result = [
        ServiceSpec(name, [sys.executable, "-m", ENTRYPOINTS.get(name, f"stack.{name}")],
                    services[name].url + services[name].health,
                    services[name].url, services[name].description, env=python_env)
        for name in PYTHON_SERVICES
    ]
    result.append(ServiceSpec(
        "alertmanager",
        [binaries.find("alertmanager"),
         *alertmanager_flags(profile, config_root("alertmanager", profile, run), str(run / "data" / "alertmanager"))],
        services["alertmanager"].url + services["alertmanager"].health, services["alertmanager"].url,
        services["alertmanager"].description,
    ))
    result.append(ServiceSpec(
        "prometheus",
        [binaries.find("prometheus"),
         *prometheus_flags(profile, config_root("prometheus", profile, run), str(run / "data" / "prometheus"))],
        services["prometheus"].url + services["prometheus"].health, services["prometheus"].url + "/classic/graph",
        services["prometheus"].description,
    ))
    if traces:
        result.append(phoenix_spec(run))
    if notebooks:
        result.append(jupyter_spec(run))
    return result


def child_env(spec: ServiceSpec) -> dict[str, str]:
    return {**os.environ, **spec.env}
