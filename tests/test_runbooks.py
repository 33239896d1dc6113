"""docs/runbooks: one page per alert, served by the receiver, and every command in them true to the code.

No live stack is needed. The pages are checked against the generated rule files of both profiles, the
generated Alertmanager routing, stack/topology.yaml, stack/catalog.yaml, stack/profiles.yaml, the
thresholds in stack/prometheus/alerts.py, the metrics the services really expose, the routes and request
bodies the services really accept, and the Makefile. `promtool` (installed by `make test`) checks that the
PromQL in the pages parses.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt

from stack import catalog as catalog_module
from stack import topology
from stack.paths import REPO_ROOT, STACK_DIR
from stack.prometheus import alerts as alert_definitions
from stack.profiles import PROFILE_NAMES
from stack.profiles import load as load_profile

RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"
INDEX = RUNBOOKS_DIR / "README.md"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
MAKEFILE = REPO_ROOT / "Makefile"
PROFILES = tuple(sorted(PROFILE_NAMES))

# Every runbook has exactly these sections, in this order, after its `# <AlertName>` title.
HEADINGS = (
    "## Meaning",
    "## Severity and routing",
    "## Confirm",
    "## Likely causes",
    "## Fix",
    "## Reproduce in class",
)
PYTHON_SERVICES = ("gateway", "llmsim", "receiver")
# Identifiers that start like metric names but are not metrics: the gateway's log event and its SQLite tables.
NON_METRIC_NAMES = {"llm_call": STACK_DIR / "gateway" / "calls.py", "llm_calls": STACK_DIR / "gateway" / "store.py",
                    "llm_evaluations": STACK_DIR / "gateway" / "store.py",
                    "llm_feedback": STACK_DIR / "gateway" / "store.py"}
METRIC_NAME = re.compile(r"(?<![\w:])((?:llm|llmsim|alert_receiver)_[a-z0-9_]+)(?![\w:])")
RECORDING_NAME = re.compile(r"(?<![\w:])((?:model|job):[a-z0-9_]+:[a-z0-9_:]+)")
LABEL_MATCHER = re.compile(r'\b([a-zA-Z_]\w*)\s*(=|!=)\s*"([^"]*)"')
# "5 % (`ERROR_RATIO_WARNING`)": a number, an optional unit, and the constant it must equal.
THRESHOLD = re.compile(r"(\d+(?:\.\d+)?) ?(%|s|×|USD/hour|samples)? \(`([A-Z][A-Z0-9_]+)`\)")
CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
LOCAL_URL = re.compile(r"http://([\d.]+):(\d+)(/[^\s'\"`)]*)?")
_markdown = MarkdownIt("commonmark").enable("table")


# ---------------------------------------------------------------- sources of truth


@cache
def base_topology() -> topology.Topology:
    """Ports as written in stack/topology.yaml, which the docs and the generated files use, whatever
    LLMOBS_PORT_OFFSET the test session runs with."""
    with topology.base_ports():
        return topology.load()


def every_service(topo: topology.Topology) -> dict[str, topology.Service]:
    """All groups of topology.yaml: stack services, workbench, lab targets, optional and compose-only services."""
    groups = ("services", "workbench", "lab_targets", "optional", "compose_only")
    return {name: svc for group in groups for name, svc in (getattr(topo, group, None) or {}).items()}


@cache
def scrape_jobs() -> frozenset[str]:
    return frozenset(job["job_name"] for p in PROFILES
                     for job in yaml.safe_load((STACK_DIR / "prometheus" / p / "prometheus.yml").read_text())
                     ["scrape_configs"])


@cache
def rules(profile: str) -> list[dict]:
    """Every rule (alerting and recording) in the generated rule files of one profile."""
    files = sorted((STACK_DIR / "prometheus" / profile / "rules").glob("*.yml"))
    return [rule for f in files for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"]]


def alert_rules(profile: str) -> list[dict]:
    return [r for r in rules(profile) if "alert" in r]


@cache
def alertnames() -> frozenset[str]:
    return frozenset(r["alert"] for p in PROFILES for r in alert_rules(p))


@cache
def recording_names() -> frozenset[str]:
    return frozenset(r["record"] for p in PROFILES for r in rules(p) if "record" in r)


@cache
def alertmanager_config(profile: str) -> dict:
    return yaml.safe_load((STACK_DIR / "alertmanager" / profile / "alertmanager.yml").read_text())


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    name, value = re.fullmatch(r'\s*(\w+)\s*=\s*"?([^"]*)"?\s*', matcher).groups()
    return labels.get(name, "") == value


def receiver_for(profile: str, labels: dict[str, str]) -> str:
    """The receiver Alertmanager picks for these labels (first matching child route, like `continue: false`)."""
    route = alertmanager_config(profile)["route"]
    for child in route.get("routes", []):
        assert "continue" not in child and "match" not in child, "routing walker supports matchers only"
        if all(_matches(m, labels) for m in child.get("matchers", [])):
            return child["receiver"]
    return route["receiver"]


@cache
def runbook_text(name: str) -> str:
    return (RUNBOOKS_DIR / f"{name}.md").read_text()


def runbook_names() -> list[str]:
    return sorted(p.stem for p in RUNBOOKS_DIR.glob("*.md") if p.name != INDEX.name)


def all_docs() -> list[Path]:
    return sorted(RUNBOOKS_DIR.glob("*.md"))


def docs_and_architecture() -> list[Path]:
    return [*all_docs(), ARCHITECTURE]


@cache
def code_of(path: Path) -> tuple[tuple[str, str], ...]:
    """(kind, text) for every code block ('fence:<lang>') and inline code span ('inline') of a page."""
    found: list[tuple[str, str]] = []

    def walk(tokens) -> None:
        for token in tokens:
            if token.type in ("fence", "code_block"):
                found.append((f"fence:{token.info.strip()}", token.content))
            elif token.type == "code_inline":
                found.append(("inline", token.content))
            if token.children:
                walk(token.children)

    walk(_markdown.parse(path.read_text()))
    return tuple(found)


def all_code(path: Path) -> list[str]:
    return [text for _, text in code_of(path)]


def promql_expressions(path: Path) -> list[str]:
    """Expressions in ```promql blocks: blank lines separate them, `#` lines are comments."""
    expressions = []
    for kind, text in code_of(path):
        if kind != "fence:promql":
            continue
        for chunk in re.split(r"\n\s*\n", text):
            lines = [line for line in chunk.splitlines() if line.strip() and not line.strip().startswith("#")]
            if lines:
                expressions.append("\n".join(lines))
    return expressions


def shell_commands(path: Path) -> list[str]:
    """Logical shell lines (continuations joined) from ```sh blocks, plus inline code spans."""
    commands = []
    for kind, text in code_of(path):
        if kind in ("fence:sh", "fence:bash", "fence:shell"):
            commands.extend(line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip())
        elif kind == "inline":
            commands.append(text.strip())
    return commands


SERVICE_FACTS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from stack.gateway.app import create_app as gateway
    from stack.llmsim.app import create_app as llmsim
    from stack.console.app import create_app as receiver  # the receiver's port: receiver + instructor console
    facts = {}
    for name, factory in (("gateway", gateway), ("llmsim", llmsim), ("receiver", receiver)):
        app = factory()
        # Routes in the OpenAPI schema (this includes routers mounted with include_router), plus plain
        # routes left out of the schema such as /metrics.
        routes = [{"path": path, "methods": sorted(m.upper() for m in ops)}
                  for path, ops in app.openapi()["paths"].items()]
        routes += [{"path": r.path, "methods": sorted(getattr(r, "methods", None) or [])}
                   for r in app.routes if hasattr(r, "path")]
        facts[name] = {"routes": routes, "metrics": TestClient(app).get("/metrics").text}
    json.dump(facts, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Routes and /metrics text of the three Python services, read in a child process.

    A child process keeps this session clean: importing the apps builds them at module level, and the
    gateway switches off prometheus_client's `_created` series for the whole process. Their data goes to
    a temporary folder, never to .run/.
    """
    run = tmp_path_factory.mktemp("runbooks-services")
    env = {**os.environ, "LLMOBS_RUN_DIR": str(run), "RECEIVER_DATA_DIR": str(run / "receiver"),
           "GATEWAY_DATA_DIR": str(run / "gateway")}
    result = subprocess.run([sys.executable, "-c", SERVICE_FACTS_SCRIPT], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"could not read the services' routes and metrics:\n{result.stderr}"
    return json.loads(result.stdout)


SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("", "_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count")}


def exposed(facts: dict) -> tuple[set[str], dict[str, set[str]]]:
    """Names a query may use (from every `# TYPE` line, so families without series yet count too), and
    every label's values seen in the three services' /metrics."""
    names: set[str] = set()
    values: dict[str, set[str]] = {}
    for service in PYTHON_SERVICES:
        for line in facts[service]["metrics"].splitlines():
            declared = re.match(r"# TYPE (\S+) (\w+)", line)
            if declared:
                family, kind = declared.groups()
                family = family.removesuffix("_total") if kind == "counter" else family
                names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
            if not line or line.startswith("#"):
                continue
            sample = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?", line)
            names.add(sample.group(1))
            for label, value in re.findall(r'(\w+)="([^"]*)"', sample.group(2) or ""):
                values.setdefault(label, set()).add(value)
    return names, values


def route_for(facts: dict, service: str, method: str, path: str) -> dict | None:
    for route in facts[service]["routes"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(route["path"])) + "$"
        if re.match(pattern, path) and method in route["methods"]:
            return route
    return None


# ---------------------------------------------------------------- every alert has a page, and only alerts


def test_the_generated_rules_define_alerts_in_both_profiles() -> None:
    for profile in PROFILES:
        assert alert_rules(profile), f"no alerting rules under stack/prometheus/{profile}/rules; run `make generate`"
    assert {frozenset(r["alert"] for r in alert_rules(p)) for p in PROFILES} == {alertnames()}, (
        "the two profiles define different alerts"
    )


@pytest.mark.parametrize("alertname", sorted(alertnames()))
def test_every_alert_has_a_runbook(alertname: str) -> None:
    assert (RUNBOOKS_DIR / f"{alertname}.md").is_file(), (
        f"alert {alertname} has no runbook: write docs/runbooks/{alertname}.md (its runbook_url points there)"
    )


def test_no_runbook_for_an_alert_that_does_not_exist() -> None:
    orphans = sorted(set(runbook_names()) - alertnames())
    assert not orphans, f"runbooks without an alert in the generated rules (renamed or removed?): {orphans}"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_runbook_url_points_at_the_receiver(profile: str) -> None:
    receiver = base_topology()["receiver"].url
    for rule in alert_rules(profile):
        expected = f"{receiver}/runbooks/{rule['alert']}"
        assert rule["annotations"].get("runbook_url") == expected, (
            f"{profile}: {rule['alert']} has runbook_url {rule['annotations'].get('runbook_url')!r}, "
            f"expected {expected!r}"
        )


# ---------------------------------------------------------------- page structure and facts about each alert


@pytest.mark.parametrize("name", runbook_names())
def test_runbook_has_the_title_and_sections(name: str) -> None:
    lines = runbook_text(name).splitlines()
    assert lines and lines[0] == f"# {name}", f"{name}.md must start with the line '# {name}'"
    headings = [line for line in lines if line.startswith("## ")]
    assert tuple(headings) == HEADINGS, f"{name}.md sections are {headings}, expected {list(HEADINGS)}"


def section(name: str, heading: str) -> str:
    text = runbook_text(name)
    start = text.index(heading + "\n")
    following = [text.find(h + "\n", start + 1) for h in HEADINGS if text.find(h + "\n", start + 1) > start]
    return text[start:min(following, default=len(text))]


@pytest.mark.parametrize("name", runbook_names())
def test_routing_section_names_the_severities_and_receivers(name: str) -> None:
    routing = section(name, "## Severity and routing")
    for profile in PROFILES:
        for rule in alert_rules(profile):
            if rule["alert"] != name:
                continue
            labels = {"alertname": name, **rule["labels"]}
            receiver = receiver_for(profile, labels)
            severity = rule["labels"]["severity"]
            assert severity in routing, f"{name}.md: routing section does not mention severity {severity!r}"
            assert f"`{receiver}`" in routing and f"/hook/{receiver}" in routing, (
                f"{name}.md: severity {severity} routes to receiver {receiver!r} ({profile}); the routing "
                f"section must name `{receiver}` and /hook/{receiver}"
            )


@pytest.mark.parametrize("name", runbook_names())
def test_runbook_names_the_for_duration_keys_it_uses(name: str) -> None:
    text = runbook_text(name)
    for profile in PROFILES:
        rules_for = [r for r in alert_rules(profile) if r["alert"] == name]
        if not any("for" in r for r in rules_for):
            continue
        durations = load_profile(profile).for_durations
        key = f"for.{name}" if name in durations else "for.default"
        assert f"`{key}`" in text, f"{name}.md: the {profile} profile takes its `for` from `{key}`; name it"


def test_profile_keys_named_in_the_docs_exist() -> None:
    raw = yaml.safe_load((STACK_DIR / "profiles.yaml").read_text())
    for path in docs_and_architecture():
        for code in all_code(path):
            for key in re.findall(r"^for\.([A-Za-z]+)$", code):
                assert any(key in raw[p]["for"] for p in PROFILES), f"{path.name}: `for.{key}` is not in profiles.yaml"
            for key in re.findall(r"^alertmanager\.([a-z_]+)$", code):
                assert all(key in raw[p]["alertmanager"] for p in PROFILES), (
                    f"{path.name}: `alertmanager.{key}` is not in profiles.yaml"
                )
            if re.fullmatch(r"[a-z_]+_(window|interval|timeout)|min_request_rate|gateway_sample_limit", code):
                assert all(code in raw[p] for p in PROFILES), (
                    f"{path.name}: `{code}` is not a top-level key of every profile in stack/profiles.yaml"
                )


def test_thresholds_quoted_in_the_runbooks_match_the_rule_definitions() -> None:
    quoted: set[str] = set()
    for path in all_docs():
        for number, unit, constant in THRESHOLD.findall(path.read_text()):
            assert hasattr(alert_definitions, constant), f"{path.name}: `{constant}` is not in stack/prometheus/alerts.py"
            value = float(number) / (100 if unit == "%" else 1)
            actual = getattr(alert_definitions, constant)
            assert math.isclose(value, actual), (
                f"{path.name}: says {number}{unit} for `{constant}`, but stack/prometheus/alerts.py has {actual}"
            )
            quoted.add(constant)
    thresholds = {name for name, value in vars(alert_definitions).items()
                  if CONSTANT_NAME.match(name) and isinstance(value, (int, float)) and name != "SECONDS_PER_DAY"}
    assert thresholds <= quoted, f"thresholds no runbook states: {sorted(thresholds - quoted)}"


def test_constants_and_variables_named_in_the_docs_exist_in_the_code() -> None:
    source = "\n".join(p.read_text() for p in STACK_DIR.rglob("*.py"))
    for path in docs_and_architecture():
        for code in all_code(path):
            for name in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", code):
                assert name in source, f"{path.name}: `{name}` appears nowhere under stack/"


def test_values_quoted_at_the_time_of_writing_match_the_generated_files() -> None:
    """"the classroom `gateway_sample_limit` is 5000 at the time of writing" must match prometheus.yml."""
    for path in docs_and_architecture():
        for profile, number in re.findall(r"the (\w+) `gateway_sample_limit` is (\d+) at the time of writing",
                                          path.read_text()):
            config = yaml.safe_load((STACK_DIR / "prometheus" / profile / "prometheus.yml").read_text())
            limit = next(j["sample_limit"] for j in config["scrape_configs"] if j["job_name"] == "gateway")
            assert int(number) == limit, f"{path.name}: says {number}, {profile} prometheus.yml has {limit}"


def test_index_table_matches_the_generated_rules() -> None:
    rows = {}
    for line in INDEX.read_text().splitlines():
        row = re.match(r"\| \[(\w+)\]\((\w+)\.md\) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", line)
        if row:
            name, target, severities, receivers, classroom, production = (c.strip() for c in row.groups())
            assert name == target, f"README.md links {name} to {target}.md"
            rows[name] = (severities, receivers, {"classroom": classroom, "production": production})
    assert set(rows) == alertnames(), f"README.md table lists {sorted(rows)}, the rules define {sorted(alertnames())}"
    for name, (severities, receivers, for_cells) in rows.items():
        expected_severities, expected_receivers = set(), set()
        for profile in PROFILES:
            matching = [r for r in alert_rules(profile) if r["alert"] == name]
            expected_severities |= {r["labels"]["severity"] for r in matching}
            expected_receivers |= {receiver_for(profile, {"alertname": name, **r["labels"]}) for r in matching}
            durations = {r.get("for", "—") for r in matching}
            assert durations == {for_cells[profile]}, (
                f"README.md: {name} `for` ({profile}) is {for_cells[profile]!r}, the rules say {sorted(durations)}"
            )
        assert {s.strip() for s in severities.split(",")} == expected_severities, f"README.md: {name} severities"
        assert set(re.findall(r"`([\w-]+)`", receivers)) == expected_receivers, f"README.md: {name} receivers"


# ---------------------------------------------------------------- names in the pages exist in the code


def defined_in_source(name: str) -> bool:
    """A metric only exported while a fault knob is on (e.g. the gateway's cardinality knob): its name, with or
    without the suffix prometheus-client adds, is a string literal in the services' code."""
    source = "\n".join(p.read_text() for service in PYTHON_SERVICES for p in (STACK_DIR / service).glob("*.py"))
    candidates = {name} | {name.removesuffix(suffix) for suffix in ("_total", "_bucket", "_sum", "_count")}
    return any(f'"{candidate}"' in source for candidate in candidates)


def test_metric_names_in_the_runbooks_are_exposed_by_the_services(facts: dict) -> None:
    names, _ = exposed(facts)
    for name, path in NON_METRIC_NAMES.items():
        assert name in path.read_text(), f"{name} no longer appears in {path}"
    for path in docs_and_architecture():
        for code in all_code(path):
            for name in METRIC_NAME.findall(code):
                if name in NON_METRIC_NAMES:
                    continue
                assert name in names or defined_in_source(name), (
                    f"{path.name}: metric `{name}` is not exposed by the gateway, llmsim or receiver "
                    f"(renamed? see docs/contract.md)"
                )


def test_recording_rule_names_in_the_runbooks_exist() -> None:
    for path in docs_and_architecture():
        for code in all_code(path):
            for name in RECORDING_NAME.findall(code):
                assert name in recording_names(), f"{path.name}: `{name}` is not a recording rule"


def test_label_values_in_the_runbooks_exist(facts: dict) -> None:
    _, values = exposed(facts)
    catalog = catalog_module.load()
    known = {
        "job": set(scrape_jobs()),
        "model": set(catalog.models),
        "department": set(catalog.departments) | {"other"},
        "alertname": set(alertnames()),
        "severity": {r["labels"]["severity"] for p in PROFILES for r in alert_rules(p)},
        "reason": {r["labels"]["reason"] for p in PROFILES for r in alert_rules(p) if "reason" in r["labels"]}
        | values["reason"],  # the alerts' reasons and the gateway's rejection reasons
        "alertstate": {"firing", "pending"},
        "integration": {"webhook"},
        "channel": values["channel"],
    }
    for label in ("status", "error_type", "token_type", "outcome", "fault", "label"):
        known[label] = set(values[label])
    known["status"] |= {"firing", "resolved"}
    for path in docs_and_architecture():
        for code in all_code(path):
            if not re.search(r"[a-z_]\{", code):
                continue  # only PromQL selectors, not JSON bodies
            for label, _, value in LABEL_MATCHER.findall(code):
                if label in known:
                    assert value in known[label], f"{path.name}: {label}={value!r} never occurs; known: {sorted(known[label])}"


def promtool() -> str:
    from stack.runner import binaries

    try:
        return binaries.find("promtool")
    except binaries.MissingBinary as error:
        pytest.fail(f"{error}\nRun `make test`: it installs promtool before running the tests.", pytrace=False)


def test_promql_in_the_runbooks_parses(tmp_path: Path) -> None:
    expressions = [(path.name, e) for path in all_docs() for e in promql_expressions(path)]
    assert expressions, "no ```promql blocks found"
    rule_file = tmp_path / "runbook-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": [
        {"record": f"runbook:query:{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)
    ]}]}))
    result = subprocess.run([promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True,
                            timeout=60)
    listing = "\n".join(f"{i}: {page}: {expr}" for i, (page, expr) in enumerate(expressions))
    assert result.returncode == 0, f"promtool rejects a runbook query:\n{result.stdout}{result.stderr}\n{listing}"


# ---------------------------------------------------------------- commands in the pages match the services


def curl_calls(path: Path) -> list[dict]:
    calls = []
    for command in shell_commands(path):
        if "curl " not in command and not command.startswith("curl"):
            continue
        start = command.index("curl")
        try:
            words = shlex.split(command[start:], comments=True)
        except ValueError as error:
            pytest.fail(f"{path.name}: cannot parse `{command}`: {error}")
        for stop in ("|", ";", "&&", "#"):
            if stop in words:
                words = words[:words.index(stop)]
        if words == ["curl"]:
            continue  # the word in prose, not a command
        url = next((w for w in words if w.startswith("http")), None)
        assert url, f"{path.name}: curl without a URL: `{command}`"
        method = words[words.index("-X") + 1] if "-X" in words else None
        body = words[words.index("-d") + 1] if "-d" in words else None
        if method is None:
            method = "GET" if body is None or "-G" in words else "POST"
        calls.append({"command": command, "url": url, "method": method, "body": body})
    return calls


def test_every_local_address_in_the_docs_is_a_topology_service() -> None:
    topo = base_topology()
    ports = {s.port: name for name, s in every_service(topo).items()}
    for path in docs_and_architecture():
        for host, port, _ in LOCAL_URL.findall(path.read_text()):
            assert host == topo.host, f"{path.name}: host {host}, topology says {topo.host}"
            assert int(port) in ports, f"{path.name}: port {port} is not in stack/topology.yaml"


def test_curl_commands_use_real_routes_and_valid_bodies(facts: dict) -> None:
    from stack.faults import REQUESTS, LlmsimFaults
    from stack.gateway.schemas import ChatRequest, FeedbackRequest, WorkflowRequest
    from stack.receiver.payload import Notification

    models = {"/v1/chat/completions": ChatRequest, "/v1/agent/workflow": WorkflowRequest,
              "/hook/{channel}": Notification, "/v1/feedback": FeedbackRequest}
    catalog = catalog_module.load()
    services_by_port = {s.port: name for name, s in every_service(base_topology()).items()}
    checked = 0
    for path in all_docs():
        for call in curl_calls(path):
            _, port, url_path = LOCAL_URL.match(call["url"]).groups()
            service = services_by_port[int(port)]
            if service not in PYTHON_SERVICES:
                continue
            url_path = (url_path or "/").split("?")[0]
            route = route_for(facts, service, call["method"], url_path)
            assert route, f"{path.name}: {service} has no route {call['method']} {url_path}: `{call['command']}`"
            checked += 1
            if call["body"] is None:
                continue
            body = json.loads(call["body"])
            model = REQUESTS[service] if route["path"] == "/faults" else models.get(route["path"])
            assert model, f"{path.name}: unexpected body for {route['path']}"
            unknown = set(body) - set(model.model_fields)
            assert not unknown, f"{path.name}: {route['path']} does not know field(s) {sorted(unknown)}"
            parsed = model.model_validate(body)
            if model is LlmsimFaults:
                assert set(parsed.models or ()) <= set(catalog.models), f"{path.name}: unknown model in {body}"
            if model in (ChatRequest, WorkflowRequest):
                assert parsed.model in catalog.models, f"{path.name}: unknown model {parsed.model!r}"
            if model in (ChatRequest, WorkflowRequest) and service == "gateway":  # llmsim takes no attribution
                attribution = parsed.attribution
                assert attribution and attribution.user_id, f"{path.name}: gateway calls need attribution"
                assert attribution.department in catalog.departments, f"{path.name}: {attribution.department!r}"
                assert attribution.application in catalog.applications, f"{path.name}: {attribution.application!r}"
    assert checked, "no curl commands against the Python services found"


def test_log_files_pid_files_services_and_make_targets_exist() -> None:
    services = set(every_service(base_topology()))
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), flags=re.M))
    for path in docs_and_architecture():
        for code in all_code(path):
            for name in re.findall(r"\.run/(?:logs|pids)/([a-z]+)\.(?:log|pid)", code):
                assert name in services, f"{path.name}: no service {name!r} writes {code}"
            for target in re.findall(r"\bmake ([a-z][a-z-]*)", code):
                assert target in targets, f"{path.name}: `make {target}` is not a Makefile target"
            for name in re.findall(r"\bSERVICE=([a-z]+)", code):
                assert name in services, f"{path.name}: SERVICE={name} is not a service"
            for name in re.findall(r"\bPROFILE=([a-z]+)", code):
                assert name in PROFILES, f"{path.name}: PROFILE={name} is not a profile"


# ---------------------------------------------------------------- the receiver serves the pages


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The receiver app with its notification store in tmp_path and runbooks from docs/runbooks."""
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path / "import"))  # used if the module is first imported here
    monkeypatch.setenv("RECEIVER_RUNBOOKS_DIR", str(RUNBOOKS_DIR))
    from stack.receiver.app import create_app

    return TestClient(create_app(data_dir=tmp_path / "receiver"))


@pytest.mark.parametrize("alertname", sorted(alertnames()))
def test_receiver_serves_the_runbook(receiver: TestClient, alertname: str) -> None:
    response = receiver.get(f"/runbooks/{alertname}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{alertname}</title>" in response.text
    assert re.search(rf"<h1>{alertname}</h1>", response.text), "the page's # title is not rendered as <h1>"
    assert "<h2>Reproduce in class</h2>" in response.text


def test_receiver_lists_every_runbook(receiver: TestClient) -> None:
    response = receiver.get("/runbooks")
    assert response.status_code == 200
    for alertname in alertnames():
        assert f'href="/runbooks/{alertname}"' in response.text


def test_unknown_runbook_is_a_404_listing_the_known_ones(receiver: TestClient) -> None:
    response = receiver.get("/runbooks/NoSuchAlert")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "NoSuchAlert" in message
    for alertname in alertnames():
        assert alertname in message, f"the 404 message does not list {alertname}: {message}"


# ---------------------------------------------------------------- docs/architecture.md


def test_architecture_ports_table_matches_topology() -> None:
    text = ARCHITECTURE.read_text()
    table = dict(re.findall(r"^\| (\w+) \| (\d+) \|", text, flags=re.M))
    expected = {name: str(s.port) for name, s in every_service(base_topology()).items()}
    assert table == expected, f"docs/architecture.md ports table {table} != stack/topology.yaml {expected}"
