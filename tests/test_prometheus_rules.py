"""The generated Prometheus config, rules and promtool unit tests, checked with the real promtool.

`make test` installs promtool (Debian's prometheus package); without it these tests fail, they never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
import yaml

from stack.paths import STACK_DIR
from stack.profiles import PROFILE_NAMES, Duration
from stack.prometheus import alerts
from stack.prometheus.alert_cases import ALWAYS_FIRING
from stack.prometheus.unit_tests import RECORDING_TESTS, RULE_SUBSETS, rule_subset
from stack.runner import binaries

PROFILES = tuple(sorted(PROFILE_NAMES))
PROMTOOL_TIMEOUT = 120
Key = tuple[str, str, str | None]  # (alertname, severity, reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    try:
        return binaries.find("promtool")
    except binaries.MissingBinary as error:
        pytest.fail(f"{error}\nRun `make test`: it installs promtool before running the tests.", pytrace=False)


def _run(promtool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT)


def _folder(profile: str) -> Path:
    return STACK_DIR / "prometheus" / profile


@cache
def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _alert_rules(profile: str) -> list[dict]:
    return [rule for path in sorted((_folder(profile) / "rules").glob("*.yml"))
            for group in _yaml(path)["groups"] for rule in group["rules"] if "alert" in rule]


def _key(alertname: str, labels: dict[str, str]) -> Key:
    return alertname, labels.get("severity", ""), labels.get("reason")


def _test_files(profile: str) -> list[str]:
    """The promtool test files one profile must have: one per alertname, and the recording rules'."""
    return [RECORDING_TESTS, *sorted({f"{rule['alert']}.yml" for rule in _alert_rules(profile)})]


# ---------------------------------------------------------------- promtool checks

@pytest.mark.parametrize("profile", PROFILES)
def test_prometheus_config_and_its_rule_files_are_valid(promtool: str, profile: str) -> None:
    result = _run(promtool, "check", "config", str(_folder(profile) / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_rule_files_are_valid(promtool: str, profile: str) -> None:
    files = sorted(str(path) for path in (_folder(profile) / "rules").glob("*.yml"))
    assert files, f"no rule files in {_folder(profile) / 'rules'}: run `make generate`"
    result = _run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("profile", "test_file"), [(p, f) for p in PROFILES for f in _test_files(p)])
def test_promtool_unit_tests_pass(promtool: str, profile: str, test_file: str) -> None:
    tests = _folder(profile) / "tests"
    assert (tests / test_file).exists(), f"{tests / test_file} is missing: run `make generate`"
    result = _run(promtool, "test", "rules", test_file, cwd=tests)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- what the rules and the tests hold

@pytest.mark.parametrize("profile", PROFILES)
def test_each_alerts_rule_subset_holds_its_rules_as_in_the_real_rule_files(profile: str) -> None:
    """An alert's promtool tests read tests/rules/<alertname>.yml: its rules and the recording rules they need,
    copied unchanged from rules/ (so the tests test the real rules)."""
    real = [rule for path in sorted((_folder(profile) / "rules").glob("*.yml")) for group in _yaml(path)["groups"]
            for rule in group["rules"]]
    subsets = sorted((_folder(profile) / "tests" / RULE_SUBSETS).glob("*.yml"))
    assert {path.stem for path in subsets} == {rule["alert"] for rule in _alert_rules(profile)}
    for path in subsets:
        rules = [rule for group in _yaml(path)["groups"] for rule in group["rules"]]
        assert {rule.get("alert") for rule in rules} - {None} == {path.stem}, path.name
        missing = [rule.get("alert") or rule["record"] for rule in rules if rule not in real]
        assert not missing, f"{path.name}: {missing} differ from rules/: run `make generate`"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_alert_has_a_severity_a_summary_a_description_and_its_runbook(profile: str) -> None:
    rules = _alert_rules(profile)
    assert rules
    for rule in rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity"), f"{name} has no severity label"
        annotations = rule.get("annotations", {})
        for field in ("summary", "description", "runbook_url"):
            assert annotations.get(field), f"{name} has no {field} annotation"
        assert annotations["runbook_url"].endswith(f"/runbooks/{name}"), annotations["runbook_url"]


def _checks_by_group(profile: str) -> list[tuple[str, int, list[dict]]]:
    """(test group name, interval in seconds, alert checks) for every test group of every test file."""
    found = []
    for path in sorted((_folder(profile) / "tests").glob("*.yml")):
        for group in _yaml(path).get("tests", []):
            found.append((f"{path.name}: {group.get('name')}", Duration.parse(group["interval"]).seconds,
                          group.get("alert_rule_test", [])))
    return found


def _expected_keys(check: dict) -> set[Key]:
    return {_key(check["alertname"], alert.get("exp_labels", {})) for alert in check.get("exp_alerts") or []}


def _cases(profile: str, hold: dict[Key, int]) -> tuple[set[Key], set[Key], list[str]]:
    """Which alert rules have a firing case, which a quiet case, and firing cases not checked just before."""
    firing, quiet, unchecked = set(), set(), []
    for group, interval, checks in _checks_by_group(profile):
        at = {(check["alertname"], Duration.parse(check["eval_time"]).seconds): _expected_keys(check)
              for check in checks}
        fired = set().union(*at.values()) if at else set()
        firing |= fired
        for key in fired:
            first = min(t for (name, t), keys in at.items() if name == key[0] and key in keys)
            before = at.get((key[0], first - interval))
            if hold.get(key) and (before is None or key in before):
                unchecked.append(f"{group}: {key} is not checked one interval before it fires")
        # A quiet case: the group checks the alertname late enough for `for` to have elapsed, and never expects it.
        quiet |= {key for key in hold if key not in fired
                  and any(name == key[0] and t >= hold[key] for name, t in at)}
    return firing, quiet, unchecked


@pytest.mark.parametrize("profile", PROFILES)
def test_every_alert_rule_has_a_firing_and_a_quiet_case(profile: str) -> None:
    hold = {_key(rule["alert"], rule["labels"]): Duration.parse(rule["for"]).seconds if "for" in rule else 0
            for rule in _alert_rules(profile)}
    firing, quiet, unchecked = _cases(profile, hold)
    assert not set(hold) - firing, f"no promtool case where these fire: {sorted(set(hold) - firing, key=str)}"
    needs_quiet = {key for key in hold if key[0] not in ALWAYS_FIRING}
    assert not needs_quiet - quiet, f"no promtool case where these stay quiet: {sorted(needs_quiet - quiet, key=str)}"
    assert not unchecked, "\n".join(unchecked)


# ---------------------------------------------------------------- the tests can fail

def _yaml_fresh(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    data = _yaml_fresh(path)
    for group in data["groups"]:
        for rule in group["rules"]:
            change(rule)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _raise_warning_threshold(rule: dict) -> None:
    if rule.get("alert") == "LLMHighErrorRatio" and rule["labels"]["severity"] == "warning":
        threshold = f"> {alerts.ERROR_RATIO_WARNING:g}\n"
        assert threshold in rule["expr"], rule["expr"]
        rule["expr"] = rule["expr"].replace(threshold, "> 0.5\n")


def _drop_minimum_rate(rule: dict) -> None:
    if rule.get("alert") == "LLMHighErrorRatio":
        rule["expr"] = rule["expr"].split("\nand\n")[0]


def _divide_per_series(rule: dict) -> None:
    if rule.get("record") == "model:llm_request_error_ratio:rate":
        numerator, denominator = (part.strip() for part in rule["expr"].split("\n/\n"))
        rule["expr"] = f"{numerator.removeprefix('sum by (model) ')} / {denominator.removeprefix('sum by (model) ')}"


def _average_cache_hit_ratio_per_model(rule: dict) -> None:
    if rule.get("record") == "job:llm_response_cache_hit_ratio:rate":
        rule["expr"] = f"avg by (job) (\n{rule['expr'].replace('sum by (job)', 'sum by (job, model)')}\n)"


def _guard_first_token_on_all_requests(rule: dict) -> None:
    if rule.get("alert") == "LLMTimeToFirstTokenP95High":
        rule["expr"] = rule["expr"].replace("model:llm_streamed_requests:rate", "model:llm_requests:rate")


def _read_breaker_state_instantly(rule: dict) -> None:
    if rule.get("alert") == "LLMCircuitBreakerOpen":
        rule["expr"] = re.sub(r"max_over_time\((llm_circuit_breaker_state\{[^}]*\})\[\w+\]\)", r"\1", rule["expr"])


def _read_tier_instantly(rule: dict) -> None:
    if rule.get("alert") == "LLMDegradedService":
        rule["expr"] = re.sub(r"max_over_time\((llm_degradation_tier\{[^}]*\})\[\w+\]\)", r"\1", rule["expr"])


def _fallback_ratio_from_hand_overs(rule: dict) -> None:
    """The fallback share from llm_fallbacks_total{outcome="success"}, by the model that failed last."""
    if rule.get("record") == "requested_model:llm_fallback_ratio:rate":
        window = re.search(r"\[(\w+)\]", rule["expr"]).group(1)
        succeeded = f'rate(llm_fallbacks_total{{job="gateway",outcome="success"}}[{window}])'
        rule["expr"] = (f'sum by (requested_model) (label_replace({succeeded}, "requested_model", "$1", "from_model", '
                        f'"(.*)"))\n/\nsum by (requested_model) (rate(llm_routed_requests_total{{job="gateway"}}'
                        f"[{window}]))")


def _headroom_without_traffic_guard(rule: dict) -> None:
    if rule.get("alert") == "LLMRateLimitHeadroomLow":
        rule["expr"] = rule["expr"].split("\nand on (model)\n")[0]


# (rule file, edit, test file, what promtool's failure output must name)
BREAKAGES = {
    "warning-threshold-raised": ("llm-alerts.yml", _raise_warning_threshold, "LLMHighErrorRatio.yml",
                                 "LLMHighErrorRatio"),
    "minimum-request-rate-dropped": ("llm-alerts.yml", _drop_minimum_rate, "LLMHighErrorRatio.yml",
                                     "under the minimum request rate"),
    "error-ratio-divided-per-series": ("recording.yml", _divide_per_series, RECORDING_TESTS,
                                       "model:llm_request_error_ratio:rate"),
    "cache-hit-ratio-averaged-per-model": ("recording.yml", _average_cache_hit_ratio_per_model,
                                           "LLMResponseCacheHitRatioLow.yml", "an averaged rule would"),
    "first-token-guard-on-all-requests": ("llm-alerts.yml", _guard_first_token_on_all_requests,
                                          "LLMTimeToFirstTokenP95High.yml", "do not count"),
    "breaker-state-read-instantly": ("llm-alerts.yml", _read_breaker_state_instantly, "LLMCircuitBreakerOpen.yml",
                                     "lucky probe"),
    "tier-read-instantly": ("llm-alerts.yml", _read_tier_instantly, "LLMDegradedService.yml", "whenever a breaker"),
    "fallback-ratio-from-hand-overs": ("recording.yml", _fallback_ratio_from_hand_overs, "LLMFallbackRatioHigh.yml",
                                       "second hand-overs"),
    "headroom-without-traffic-guard": ("llm-alerts.yml", _headroom_without_traffic_guard,
                                       "LLMRateLimitHeadroomLow.yml", "stale, not low"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("profile", PROFILES)
def test_promtool_unit_tests_fail_when_a_rule_is_broken(
    promtool: str, profile: str, breakage: str, tmp_path: Path,
) -> None:
    rule_file, change, test_file, named = BREAKAGES[breakage]
    copy = tmp_path / profile
    for folder in ("rules", "tests"):
        shutil.copytree(_folder(profile) / folder, copy / folder)
    before = (copy / "rules" / rule_file).read_text()
    _edit(copy / "rules" / rule_file, change)
    assert (copy / "rules" / rule_file).read_text() != before, f"{breakage} changed nothing in {rule_file}"
    edited = {path.name: _yaml_fresh(path) for path in sorted((copy / "rules").glob("*.yml"))}
    for subset in (copy / "tests" / RULE_SUBSETS).glob("*.yml"):  # as `make generate` would write them now
        subset.write_text(yaml.safe_dump(rule_subset(edited, subset.stem), sort_keys=False))
    assert _run(promtool, "check", "rules", str(copy / "rules" / rule_file)).returncode == 0, "still a valid rule"
    result = _run(promtool, "test", "rules", test_file, cwd=copy / "tests")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"promtool passed with {breakage}:\n{output}"
    assert "FAILED" in output and named in output, output
