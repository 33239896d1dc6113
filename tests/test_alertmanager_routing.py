"""The generated Alertmanager configs route and inhibit as stack/alertmanager/route_cases.py says: routing with the
real `amtool config routes test`, inhibition with a real, temporary Alertmanager that is fed every case at once."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml

from graders.v3.alertmanager import temporary_alertmanager
from stack.alertmanager.route_cases import INHIBITION_CASES, ROUTE_CASES
from stack.paths import STACK_DIR
from stack.profiles import PROFILE_NAMES
from stack.runner import binaries
from tests import live

PROFILES = tuple(sorted(PROFILE_NAMES))


def _config_file(profile: str):  # noqa: ANN202
    return STACK_DIR / "alertmanager" / profile / "alertmanager.yml"


def _tool(name: str) -> str:
    try:
        return binaries.find(name)
    except binaries.MissingBinary as error:
        pytest.skip(f"{error} (make test installs it)")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda case: case.description)
def test_each_kind_of_alert_reaches_its_receiver(profile: str, case) -> None:  # noqa: ANN001
    labels = [f"{name}={value}" for name, value in case.labels.items()]
    result = subprocess.run([_tool("amtool"), "config", "routes", "test", f"--config.file={_config_file(profile)}",
                             *labels], capture_output=True, text=True, timeout=30)
    got = sorted(r.strip() for r in result.stdout.strip().split(",") if r.strip())
    assert got == sorted(case.receivers), f"{profile}: {case.description}: {labels} reach {got}; {result.stderr}"


def _without_webhooks(profile: str) -> dict:
    """The generated config with its receivers kept by name only: the temporary Alertmanager must not notify the
    receiver of a stack that may be running on the base ports."""
    config = yaml.safe_load(_config_file(profile).read_text())
    config["receivers"] = [{"name": receiver["name"]} for receiver in config["receivers"]]
    return config


def _inhibited(url: str, count: int, muted: int) -> dict[frozenset, bool]:
    """Whether each alert is inhibited, once the Alertmanager holds all `count` and has registered the sources of the
    `muted` inhibitions expected (it does so a moment after receiving them); a wrongly muted alert still shows."""
    def settled() -> dict[frozenset, bool] | None:
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        states = {frozenset(a["labels"].items()): bool(a["status"]["inhibitedBy"]) for a in alerts}
        return states if len(states) >= count and sum(states.values()) >= muted else None

    try:
        return live.eventually(settled, 10, f"the temporary Alertmanager to hold the {count} alerts")
    except AssertionError:  # fewer inhibitions than expected: report them as they are
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        return {frozenset(a["labels"].items()): bool(a["status"]["inhibitedBy"]) for a in alerts}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_critical_mutes_only_the_warning_of_the_same_alert_about_the_same_model_or_department(profile: str) -> None:
    _tool("alertmanager")
    now = datetime.now(timezone.utc)
    body = [{"labels": case.labels, "annotations": {"summary": case.description}, "startsAt": now.isoformat(),
             "endsAt": (now + timedelta(hours=1)).isoformat()} for case in INHIBITION_CASES]
    with temporary_alertmanager(_without_webhooks(profile)) as alertmanager:
        httpx.post(f"{alertmanager.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()
        muted = _inhibited(alertmanager.url, len(body), sum(case.inhibited for case in INHIBITION_CASES))
    wrong = [f"{case.description}: {'muted' if muted[frozenset(case.labels.items())] else 'not muted'}"
             for case in INHIBITION_CASES if muted[frozenset(case.labels.items())] != case.inhibited]
    assert not wrong, f"{profile}: " + "; ".join(wrong)
