"""docker-compose.yml describes the same stack as the embedded runner: same ports, files and flags.

No Docker engine is needed: `docker-compose config` (Debian's docker-compose 1.29, which `make test`
installs) validates and resolves the file, and the rest is read with PyYAML.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pytest
import yaml

from stack import topology
from stack.alertmanager.config import TEMPLATES_DIR
from stack.profiles import PROFILE_NAMES
from stack.runner.services import ENTRYPOINTS

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "stack" / "python.Dockerfile"
CONTRACT = REPO / "docs" / "contract.md"
COMPOSE_DOC = REPO / "docs" / "compose.md"
README = REPO / "README.md"
GRAFANA_DIR = REPO / "stack" / "grafana"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml"

PROFILES = tuple(sorted(PROFILE_NAMES))  # classroom, production
PYTHON_SERVICES = ("llmsim", "gateway", "receiver", "tracestore")
MEMORY_BUDGET_MIB = 3 * 1024
# Flags whose value is a path: they differ between the embedded runner and the containers.
PATH_FLAGS = {"--config.file", "--storage.tsdb.path", "--storage.path"}


# ---------------------------------------------------------------- helpers


def docker_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated. "
            "`make test` installs it (apt-get install docker-compose); or install it yourself."
        )
    return subprocess.run(
        [exe, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def resolved_config(profile: str | None = None) -> dict:
    """`docker-compose --env-file .env.example config`, parsed; LLMOBS_PROFILE overridden if given."""
    env = {k: v for k, v in os.environ.items() if k not in {"GRAFANA_ADMIN_PASSWORD", "LLMOBS_PROFILE"}}
    if profile is not None:
        env["LLMOBS_PROFILE"] = profile
    result = docker_compose("--env-file", str(ENV_EXAMPLE), "config", env=env)
    assert result.returncode == 0, (
        f"`docker-compose --env-file .env.example config` failed (exit {result.returncode}):\n{result.stderr}"
    )
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved_config()


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def all_topology_services() -> dict[str, topology.Service]:
    topo = topology.load()
    return {**topo.services, **topo.optional, **topo.compose_only}


def flags(command: list[str]) -> dict[str, str | None]:
    """`--name=value` / `--name` items of a command list, as {name: value or None}."""
    result: dict[str, str | None] = {}
    for item in command:
        if item.startswith("--"):
            name, sep, value = item.partition("=")
            result[name] = value if sep else None
    return result


def contract_flags(binary: str) -> dict[str, str | None]:
    """The flags docs/contract.md gives the embedded runner for `prometheus` or `prometheus-alertmanager`."""
    text = CONTRACT.read_text()
    match = re.search(rf"^- {re.escape(binary)} `([^`]*)`", text, re.MULTILINE)
    assert match, f"docs/contract.md has no '- {binary} `--flags ...`' line to compare docker-compose.yml with"
    return flags(match.group(1).split())


def parse_mem_mib(value: object) -> float:
    if isinstance(value, (int, float)):
        return value / 2**20
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*", str(value).lower())
    assert match, f"mem_limit {value!r} is not a size like 256m or 1g"
    number, unit = float(match.group(1)), match.group(2)
    return number * {"": 2**-20, "b": 2**-20, "k": 2**-10, "m": 1, "g": 1024}[unit]


def total_mem_mib(config: dict) -> int:
    return round(sum(parse_mem_mib(s["mem_limit"]) for s in config["services"].values()))


def states_total(text: str, total_mib: int) -> bool:
    """True if the text gives the total as e.g. `2688 MiB`, `2688 MB` or `2.6 GiB` (decimals required)."""
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(MiB|MB|GiB|GB)\b", text):
        if unit in {"MiB", "MB"} and float(number) == total_mib:
            return True
        if unit in {"GiB", "GB"} and "." in number:
            decimals = len(number.split(".")[1])
            if abs(float(number) * 1024 - total_mib) <= 0.5 * 10**-decimals * 1024 + 1e-6:
                return True
    return False


def mounts(service: dict) -> dict[str, tuple[Path | str, bool]]:
    """container path -> (host path or volume name, read_only) for every volume of a resolved service."""
    result: dict[str, tuple[Path | str, bool]] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, read_only = volume.get("source"), volume["target"], bool(volume.get("read_only"))
        else:
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        result[target] = (Path(source) if source and source.startswith("/") else source, read_only)
    return result


def host_path_of(service: dict, container_path: str) -> Path:
    """The repository file a path inside the container is, through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for target, (source, _) in sorted(mounts(service).items(), key=lambda m: -len(m[0])):
        if isinstance(source, Path) and (path == PurePosixPath(target) or PurePosixPath(target) in path.parents):
            return source / path.relative_to(target)
    pytest.fail(f"{container_path} is not inside any bind mount of the service ({service.get('volumes')})")


def healthcheck_url(service: dict) -> str | None:
    test = service.get("healthcheck", {}).get("test", [])
    text = " ".join(test) if isinstance(test, list) else str(test)
    match = re.search(r"https?://[^\s'\"]+", text)
    return match.group(0) if match else None


# ---------------------------------------------------------------- (a) the file is valid


def test_compose_file_validates_with_docker_compose() -> None:
    result = docker_compose("--env-file", str(ENV_EXAMPLE), "config", "--quiet")
    assert result.returncode == 0, (
        f"`docker-compose --env-file .env.example config` rejects docker-compose.yml:\n{result.stderr}"
    )


def test_compose_file_has_no_obsolete_version_key(raw_compose: dict) -> None:
    assert "version" not in raw_compose, (
        "docker-compose.yml has a top-level `version:` key; the compose specification dropped it "
        "(Docker Compose v2 warns that it is obsolete)"
    )


# ---------------------------------------------------------------- (b) services and ports match topology


def test_every_topology_service_is_in_compose_and_nothing_else(config: dict) -> None:
    expected = set(all_topology_services())
    actual = set(config["services"])
    assert not expected - actual, f"services in stack/topology.yaml missing from docker-compose.yml: {sorted(expected - actual)}"
    assert not actual - expected, (
        f"services in docker-compose.yml that stack/topology.yaml does not define (their port is "
        f"written nowhere else): {sorted(actual - expected)}"
    )


@pytest.mark.parametrize("name", ["prometheus", "alertmanager"])
def test_prometheus_and_alertmanager_listen_on_the_topology_address(config: dict, name: str) -> None:
    expected = all_topology_services()[name].address
    listen = flags(config["services"][name]["command"]).get("--web.listen-address")
    assert listen == expected, f"{name} in docker-compose.yml listens on {listen!r}; stack/topology.yaml says {expected!r}"


def test_grafana_listens_on_the_topology_address(config: dict) -> None:
    env = config["services"]["grafana"]["environment"]
    service = all_topology_services()["grafana"]
    actual = (env.get("GF_SERVER_HTTP_ADDR"), str(env.get("GF_SERVER_HTTP_PORT")))
    assert actual == (service.host, str(service.port)), (
        f"Grafana listens on {actual[0]}:{actual[1]} (GF_SERVER_HTTP_ADDR/PORT); stack/topology.yaml says {service.address}"
    )


def test_phoenix_listens_on_the_topology_address(config: dict) -> None:
    phoenix = config["services"]["phoenix"]
    env = phoenix["environment"]
    service = all_topology_services()["phoenix"]
    actual = (env.get("PHOENIX_HOST"), str(env.get("PHOENIX_PORT")))
    assert actual == (service.host, str(service.port)), (
        f"Phoenix listens on {actual[0]}:{actual[1]} (PHOENIX_HOST/PORT); stack/topology.yaml says {service.address}"
    )
    command = phoenix.get("command") or []
    assert not {"--host", "--port"} & set(command), (
        f"the Phoenix command {command} passes --host/--port, which override PHOENIX_HOST/PHOENIX_PORT"
    )


@pytest.mark.parametrize("name", ["gateway", "llmsim"])
def test_traced_services_export_to_phoenix(config: dict, name: str) -> None:
    env = config["services"][name].get("environment") or {}
    endpoint = urlparse(str(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")))
    phoenix = all_topology_services()["phoenix"]
    assert (endpoint.hostname, endpoint.port) == (phoenix.host, phoenix.port), (
        f"{name} sends its spans to OTEL_EXPORTER_OTLP_ENDPOINT={env.get('OTEL_EXPORTER_OTLP_ENDPOINT')!r}, "
        f"not to Phoenix at {phoenix.url} (stack/topology.yaml)"
    )


def test_phoenix_runs_offline_as_the_embedded_runner_starts_it(config: dict) -> None:
    from stack.runner.services import phoenix_spec

    embedded = phoenix_spec(Path("/tmp/run")).env
    settings = [key for key in embedded if key.startswith("PHOENIX_") and key.split("_", 1)[1].startswith(
        ("TELEMETRY", "ALLOW_EXTERNAL", "DISABLE_AGENT", "ENABLE_MCP"))]
    assert len(settings) == 4, settings
    env = config["services"]["phoenix"]["environment"]
    differing = {key: (env.get(key), embedded[key]) for key in settings if str(env.get(key)).lower() != embedded[key]}
    assert not differing, f"Phoenix settings (compose, embedded runner) differ: {differing}"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_take_their_port_from_the_topology_file(config: dict, name: str) -> None:
    service = config["services"][name]
    module = ENTRYPOINTS.get(name, f"stack.{name}")  # what the embedded runner starts for it
    assert service.get("command") == ["python", "-m", module], (
        f"{name} should run `python -m {module}` as the embedded runner does (it reads its port from "
        f"stack/topology.yaml); docker-compose.yml runs {service.get('command')}"
    )
    assert service.get("build", {}).get("dockerfile") == "stack/python.Dockerfile", (
        f"{name} should be built from stack/python.Dockerfile"
    )
    assert re.search(r"^COPY\s+stack\s+\S*stack/?\s*$", DOCKERFILE.read_text(), re.MULTILINE), (
        "stack/python.Dockerfile must COPY the stack/ folder (with stack/topology.yaml) into the image"
    )
    health = " ".join(service.get("healthcheck", {}).get("test", []))
    assert f"services['{name}']" in health and "topology" in health, (
        f"the {name} healthcheck should find the address in stack/topology.yaml, as the service does: {health!r}"
    )


def test_healthchecks_probe_the_topology_port(config: dict) -> None:
    wrong = {}
    for name, service in all_topology_services().items():
        url = healthcheck_url(config["services"][name])
        if url is not None and urlparse(url).port != service.port:
            wrong[name] = f"{url} (topology port {service.port})"
    assert not wrong, f"healthchecks probing another port than stack/topology.yaml's: {wrong}"


# ---------------------------------------------------------------- (c) every service is bounded and pinned


def test_every_service_uses_host_networking(config: dict) -> None:
    others = {n: s.get("network_mode") for n, s in config["services"].items() if s.get("network_mode") != "host"}
    assert not others, (
        f"services not on `network_mode: host` (the 127.0.0.1 addresses in the shared config files "
        f"would not reach them): {others}"
    )
    published = [n for n, s in config["services"].items() if s.get("ports")]
    assert not published, f"services publishing ports (pointless and refused with host networking): {published}"


def test_every_service_has_memory_limit_healthcheck_and_restart_policy(config: dict) -> None:
    problems = []
    for name, service in config["services"].items():
        if not service.get("mem_limit"):
            problems.append(f"{name}: no mem_limit")
        if not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name}: no healthcheck")
        if service.get("restart") != "unless-stopped":
            problems.append(f"{name}: restart is {service.get('restart')!r}, not unless-stopped")
    assert not problems, "; ".join(problems)


def test_every_image_is_pinned(config: dict) -> None:
    unpinned = []
    for name, service in config["services"].items():
        image = service.get("image", "")
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if not tag or tag == "latest":
            unpinned.append(f"{name}: {image or '(no image)'}")
    bases = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert bases, "stack/python.Dockerfile has no FROM line"
    for base in bases:
        tag = base.rpartition(":")[2] if ":" in base else ""
        if not tag or tag == "latest":
            unpinned.append(f"stack/python.Dockerfile: FROM {base}")
    assert not unpinned, f"images without a fixed version tag (a rebuild could change them): {unpinned}"


def test_python_image_runs_as_non_root() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users and users[-1] not in {"root", "0", "0:0"}, (
        f"stack/python.Dockerfile should end with a non-root USER (found {users or 'none'})"
    )


def test_memory_total_fits_the_budget_and_is_documented(config: dict) -> None:
    total = total_mem_mib(config)
    assert total <= MEMORY_BUDGET_MIB, f"mem_limit adds up to {total} MiB, over the {MEMORY_BUDGET_MIB} MiB budget"
    for path in (COMPOSE_FILE, COMPOSE_DOC):
        assert path.exists(), f"{path.relative_to(REPO)} is missing"
        assert states_total(path.read_text(), total), (
            f"{path.relative_to(REPO)} does not state the memory total: mem_limit adds up to {total} MiB "
            f"(write e.g. '{total} MiB')"
        )


def test_readme_states_the_compose_memory_total(config: dict) -> None:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    total = total_mem_mib(config)
    assert states_total(README.read_text(), total), (
        f"README.md does not state the docker-compose memory total: mem_limit adds up to {total} MiB "
        f"(write e.g. '{total} MiB')"
    )


# ---------------------------------------------------------------- (d) same config files and flags as the runner


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("service", "generated"),
    [("prometheus", "stack/prometheus/{profile}/prometheus.yml"),
     ("alertmanager", "stack/alertmanager/{profile}/alertmanager.yml")],
)
def test_compose_reads_the_generated_config_of_each_profile(profile: str, service: str, generated: str) -> None:
    resolved = resolved_config(profile)["services"][service]
    container_path = flags(resolved["command"])["--config.file"]
    host_path = host_path_of(resolved, container_path)
    expected = REPO / generated.format(profile=profile)
    assert host_path == expected, (
        f"with LLMOBS_PROFILE={profile}, {service} reads {container_path}, which is {host_path} on the host, "
        f"not the generated {expected.relative_to(REPO)}"
    )
    assert mounts(resolved)[str(PurePosixPath(container_path).parents[1])][1], (
        f"the {service} config folder should be mounted read-only"
    )
    assert expected.is_file(), (
        f"{expected.relative_to(REPO)} does not exist: run `python -m stack.generate` (docker-compose and the "
        f"embedded stack both read it)"
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_prometheus_rule_files_resolve_inside_the_container(profile: str) -> None:
    config_file = REPO / "stack" / "prometheus" / profile / "prometheus.yml"
    assert config_file.is_file(), f"{config_file.relative_to(REPO)} does not exist: run `python -m stack.generate`"
    rule_files = yaml.safe_load(config_file.read_text()).get("rule_files") or []
    assert rule_files, f"{config_file.relative_to(REPO)} loads no rule_files: no alert would ever fire"
    for pattern in rule_files:
        assert not pattern.startswith("/") and not pattern.startswith("stack/"), (
            f"rule_files entry {pattern!r} in {config_file.relative_to(REPO)} must be relative to the config "
            f"file's folder (Prometheus resolves it there), or the container will not find the rules"
        )
        assert list(config_file.parent.glob(pattern)), (
            f"rule_files entry {pattern!r} in {config_file.relative_to(REPO)} matches no file"
        )


@pytest.mark.parametrize("profile", PROFILES)
def test_alertmanager_notification_templates_resolve_inside_the_container(profile: str) -> None:
    """The config names its templates relative to its own folder; the container sees the repository's ones there."""
    resolved = resolved_config(profile)["services"]["alertmanager"]
    config_path = PurePosixPath(flags(resolved["command"])["--config.file"])
    patterns = yaml.safe_load(host_path_of(resolved, str(config_path)).read_text()).get("templates") or []
    assert patterns, f"stack/alertmanager/{profile}/alertmanager.yml loads no templates: notifications would be bare"
    for pattern in patterns:
        assert not pattern.startswith("/"), f"templates entry {pattern!r} must be relative to the config's folder"
        inside = posixpath.normpath(str(config_path.parent / pattern))
        folder = host_path_of(resolved, posixpath.dirname(inside))
        assert folder == TEMPLATES_DIR, f"{inside} in the container is {folder} on the host, not {TEMPLATES_DIR}"
        assert list(folder.glob(posixpath.basename(inside))), f"templates entry {pattern!r} matches no file"


@pytest.mark.parametrize(("service", "binary"), [("prometheus", "prometheus"), ("alertmanager", "prometheus-alertmanager")])
def test_flags_equal_the_embedded_runner_flags_apart_from_paths(config: dict, service: str, binary: str) -> None:
    expected = contract_flags(binary)
    actual = flags(config["services"][service]["command"])
    assert set(actual) == set(expected), (
        f"{service} flags in docker-compose.yml {sorted(actual)} differ from docs/contract.md {sorted(expected)}"
    )
    differing = {f: (actual[f], expected[f]) for f in expected if f not in PATH_FLAGS and actual[f] != expected[f]}
    assert not differing, f"{service} flag values (compose, contract) differ: {differing}"


@pytest.mark.parametrize(("service", "flag"), [("prometheus", "--storage.tsdb.path"), ("alertmanager", "--storage.path")])
def test_storage_is_on_a_named_volume(config: dict, service: str, flag: str) -> None:
    resolved = config["services"][service]
    path = flags(resolved["command"])[flag]
    source = mounts(resolved).get(path, (None,))[0]
    assert isinstance(source, str) and source in config.get("volumes", {}), (
        f"{service} stores its data in {path}, which is not a named volume (data would vanish with the container)"
    )


def test_env_example_profile_is_a_known_profile() -> None:
    values = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    assert values.get("LLMOBS_PROFILE") in PROFILES, (
        f".env.example sets LLMOBS_PROFILE={values.get('LLMOBS_PROFILE')!r}; use one of {PROFILES}"
    )


# ---------------------------------------------------------------- (e) no secret in the repository


def test_grafana_admin_password_comes_from_a_variable(raw_compose: dict) -> None:
    env = raw_compose["services"]["grafana"]["environment"]
    value = env["GF_SECURITY_ADMIN_PASSWORD"] if isinstance(env, dict) else next(
        e.split("=", 1)[1] for e in env if e.startswith("GF_SECURITY_ADMIN_PASSWORD=")
    )
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", str(value)), (
        f"GF_SECURITY_ADMIN_PASSWORD is {value!r}; it must be ${{GRAFANA_ADMIN_PASSWORD:?message}} so the "
        f"password lives in the git-ignored .env and compose refuses to start without one"
    )


def test_compose_refuses_to_start_without_a_grafana_password(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    result = docker_compose("--env-file", str(empty), "config", "--quiet", env=env)
    assert result.returncode != 0, "docker-compose accepted a configuration with no GRAFANA_ADMIN_PASSWORD set"
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr and ".env" in result.stderr, (
        f"the error without a password should tell the user to set GRAFANA_ADMIN_PASSWORD in .env:\n{result.stderr}"
    )


def test_env_example_has_no_default_grafana_password() -> None:
    text = ENV_EXAMPLE.read_text()
    match = re.search(r"^GRAFANA_ADMIN_PASSWORD=(.*)$", text, re.MULTILINE)
    assert match, ".env.example should show GRAFANA_ADMIN_PASSWORD="
    assert match.group(1).strip() not in {"", "admin"}, ".env.example must not suggest an empty or admin password"


def test_env_file_is_git_ignored_and_example_is_not() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env (which holds the Grafana password) is not git-ignored: add it to .gitignore"
    example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO)
    assert example.returncode == 1, ".env.example is git-ignored, but it is the committed template"


# ---------------------------------------------------------------- (f) Grafana provisioning


@pytest.fixture(scope="module")
def prometheus_datasource() -> dict:
    datasources = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"]
    found = [d for d in datasources if d.get("type") == "prometheus"]
    assert len(found) == 1, f"{DATASOURCE_FILE.relative_to(REPO)} should define one Prometheus datasource"
    return found[0]


def test_grafana_datasource_points_at_the_topology_prometheus(prometheus_datasource: dict) -> None:
    assert prometheus_datasource.get("uid") == "prometheus", (
        f"the Prometheus datasource uid is {prometheus_datasource.get('uid')!r}; dashboards expect 'prometheus'"
    )
    assert prometheus_datasource.get("isDefault") is True, "the Prometheus datasource should be the default"
    url = urlparse(prometheus_datasource["url"])
    expected = all_topology_services()["prometheus"]
    assert (url.hostname, url.port) == (expected.host, expected.port), (
        f"the Grafana datasource url {prometheus_datasource['url']} is not Prometheus at {expected.address}"
    )


def test_grafana_exemplars_link_to_phoenix(prometheus_datasource: dict) -> None:
    destinations = prometheus_datasource.get("jsonData", {}).get("exemplarTraceIdDestinations", [])
    trace = [d for d in destinations if d.get("name") == "trace_id"]
    assert trace, "no exemplarTraceIdDestinations entry for the trace_id exemplar label"
    url = urlparse(trace[0]["url"])
    phoenix = all_topology_services()["phoenix"]
    assert (url.hostname, url.port) == (phoenix.host, phoenix.port), (
        f"exemplar links go to {trace[0]['url']}, not Phoenix at {phoenix.address}"
    )
    assert "$${__value.raw}" in trace[0]["url"], (
        "the exemplar link must contain $${__value.raw} ($$ keeps Grafana from expanding it as an env var)"
    )


def test_grafana_mounts_provisioning_and_dashboards_where_the_provider_reads(config: dict) -> None:
    grafana = config["services"]["grafana"]
    assert host_path_of(grafana, "/etc/grafana/provisioning") == GRAFANA_DIR / "provisioning", (
        "stack/grafana/provisioning should be mounted on /etc/grafana/provisioning"
    )
    providers = yaml.safe_load(DASHBOARD_PROVIDER_FILE.read_text())["providers"]
    assert providers, f"{DASHBOARD_PROVIDER_FILE.relative_to(REPO)} defines no dashboard provider"
    for provider in providers:
        path = provider["options"]["path"]
        assert host_path_of(grafana, path) == GRAFANA_DIR / "dashboards", (
            f"the dashboard provider reads {path}, which is not where stack/grafana/dashboards is mounted"
        )
        assert provider["options"].get("foldersFromFilesStructure") is True
    assert (GRAFANA_DIR / "dashboards").is_dir(), "stack/grafana/dashboards is missing"


def test_grafana_allows_anonymous_viewers_only(config: dict) -> None:
    env = config["services"]["grafana"]["environment"]
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "true", "anonymous access is off"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", (
        f"anonymous users get role {env.get('GF_AUTH_ANONYMOUS_ORG_ROLE')!r}; it must be Viewer (read only)"
    )
