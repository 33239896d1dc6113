"""The chat (Slack) and pager (PagerDuty) notifications as the real Alertmanager renders them from
stack/alertmanager/templates/*.tmpl: amtool checks both generated configs with their templates, and renders every
templated field of the two receivers for a firing and a resolved alert group (`amtool template render`, the
template engine of the Alertmanager binary). The live stack's notifications are in tests/test_stack_alerts.py."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from stack.alertmanager.config import TEMPLATES_DIR
from stack.paths import STACK_DIR
from stack.profiles import PROFILE_NAMES
from stack.receiver import headline
from stack.runner import binaries

PROFILES = tuple(sorted(PROFILE_NAMES))
EXTERNAL_URL = "http://127.0.0.1:18793"
RUNBOOK = "http://127.0.0.1:18702/runbooks/LLMHighErrorRatio"
GROUP = {"alertname": "LLMHighErrorRatio", "severity": "warning"}
SEPARATOR = "\n@@next-field@@\n"


def _alert(status: str, model: str, summary: str, **labels: str) -> dict:
    return {"status": status, "labels": {**GROUP, "model": model, **labels},
            "annotations": {"summary": summary, "runbook_url": RUNBOOK},
            "startsAt": "2026-01-01T10:00:00Z",
            "endsAt": "2026-01-01T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"}


def _group(status: str) -> dict:
    """What Alertmanager hands the templates for one group of two alerts (template.Data)."""
    alerts = [_alert(status, "sim-fast", "sim-fast: 12% of requests fail", department="support"),
              _alert(status, "sim-balanced", "sim-balanced: 7% of requests fail")]
    return {"receiver": "chat", "status": status, "externalURL": EXTERNAL_URL, "groupLabels": GROUP,
            "commonLabels": GROUP, "commonAnnotations": {"runbook_url": RUNBOOK}, "alerts": alerts}


def _config(profile: str) -> Path:
    return STACK_DIR / "alertmanager" / profile / "alertmanager.yml"


def _receiver(profile: str, name: str) -> dict:
    config = yaml.safe_load(_config(profile).read_text())
    return next(r for r in config["receivers"] if r["name"] == name)


def _templated(node: object, path: str = "") -> dict[str, str]:
    """Every string with a template in it, by its path in the receiver (`slack_configs.0.fields.0.value`)."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _templated(child, f"{path}{key}.").items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _templated(child, f"{path}{i}.").items()}
    return {path.rstrip("."): node} if isinstance(node, str) and "{{" in node else {}


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        amtool = binaries.find("amtool")
    except binaries.MissingBinary as error:
        pytest.fail(f"{error}\nRun `make test`: it installs amtool before running the tests.", pytrace=False)
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=30)


def _rendered(profile: str, name: str, status: str, tmp_path: Path) -> dict[str, str]:
    """Each templated field of receiver `name`, rendered by amtool for a `status` group (one amtool run)."""
    fields = _templated(_receiver(profile, name))
    data = tmp_path / f"{status}.json"
    data.write_text(json.dumps(_group(status)))
    result = _amtool("template", "render", f"--template.glob={TEMPLATES_DIR}/*.tmpl",
                     f"--template.text={SEPARATOR.join(fields.values())}", f"--template.data={data}")
    assert result.returncode == 0, f"amtool cannot render the {name} receiver's fields:\n{result.stderr}"
    return dict(zip(fields, result.stdout.split(SEPARATOR), strict=True))


@pytest.mark.parametrize("profile", PROFILES)
def test_amtool_accepts_each_profile_with_its_templates(profile: str) -> None:
    config = yaml.safe_load(_config(profile).read_text())
    for pattern in config["templates"]:
        assert not pattern.startswith("/"), f"{pattern}: relative to the config's folder, or compose cannot find it"
        assert list(_config(profile).parent.glob(pattern)), f"templates entry {pattern!r} matches no file"
    result = _amtool("check-config", str(_config(profile)))
    assert result.returncode == 0 and "1 templates" in result.stdout, result.stdout + result.stderr


def test_a_template_that_does_not_parse_is_refused_by_amtool(tmp_path: Path) -> None:
    """The check above would catch a broken template: amtool parses the template files, not only the YAML."""
    (tmp_path / "profile").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "broken.tmpl").write_text('{{ define "x" }}{{ if }}{{ end }}')
    (tmp_path / "profile" / "alertmanager.yml").write_text(
        yaml.safe_dump({**yaml.safe_load(_config("classroom").read_text()), "templates": ["../templates/*.tmpl"]}))
    result = _amtool("check-config", str(tmp_path / "profile" / "alertmanager.yml"))
    assert result.returncode != 0 and "broken.tmpl" in result.stdout


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_every_field_of_chat_and_pager_renders_with_a_headline_the_receiver_files(profile: str, status: str,
                                                                                  tmp_path: Path) -> None:
    chat = _rendered(profile, "chat", status, tmp_path)
    pager = _rendered(profile, "pager", status, tmp_path)
    for title in (chat["slack_configs.0.title"], pager["pagerduty_configs.0.description"]):
        assert headline.parse(title) == headline.Headline(status, 2, "LLMHighErrorRatio"), title
    assert chat["slack_configs.0.title"] == f"[{status.upper()}:2] LLMHighErrorRatio warning"
    empty_when = {"firing": "resolved", "resolved": "firing"}[status]  # the details of the other state
    blank = [path for path, text in {**chat, **pager}.items() if not text.strip()]
    assert blank == [f"pagerduty_configs.0.details.{empty_when}"], blank


def test_the_chat_message_has_severity_summaries_labels_runbook_and_silence(tmp_path: Path) -> None:
    chat = _rendered("classroom", "chat", "firing", tmp_path)
    text = chat["slack_configs.0.text"]
    assert "• sim-fast: 12% of requests fail · model `sim-fast` · department `support`" in text
    assert "• sim-balanced: 7% of requests fail · model `sim-balanced`\n" in text  # no department: none shown
    assert chat["slack_configs.0.fields.0.value"] == "warning"
    assert chat["slack_configs.0.title_link"] == chat["slack_configs.0.actions.0.url"] == RUNBOOK
    assert f"<{RUNBOOK}|" in text
    silence = chat["slack_configs.0.actions.1.url"]
    assert f"<{silence}|" in text
    url = urlsplit(silence)
    assert f"{url.scheme}://{url.netloc}" == EXTERNAL_URL and url.fragment.startswith("/silences/new?filter=")
    assert unquote(url.fragment.split("filter=", 1)[1]) == '{alertname="LLMHighErrorRatio",severity="warning"}'
    assert chat["slack_configs.0.color"] == "warning"


def test_the_amtool_command_silences_the_same_group(tmp_path: Path) -> None:
    chat = _rendered("classroom", "chat", "firing", tmp_path)
    command = chat["slack_configs.0.text"].rsplit("`amtool ", 1)[1].split("`", 1)[0]
    words = shlex.split("amtool " + command)
    assert words[:3] == ["amtool", "silence", "add"]
    assert f"--alertmanager.url={EXTERNAL_URL}" in words and any(w.startswith("--comment=") for w in words)
    assert [w for w in words[3:] if not w.startswith("--")] == ['alertname="LLMHighErrorRatio"', 'severity="warning"']
    pager = _rendered("classroom", "pager", "firing", tmp_path)
    assert pager["pagerduty_configs.0.details.silence"] == "amtool " + command


def test_the_pager_event_is_one_line_with_runbook_and_silence_links(tmp_path: Path) -> None:
    pager = _rendered("classroom", "pager", "firing", tmp_path)
    summary = pager["pagerduty_configs.0.description"]
    assert "\n" not in summary
    assert summary == "[FIRING:2] LLMHighErrorRatio warning: sim-fast: 12% of requests fail (first of 2)"
    assert pager["pagerduty_configs.0.severity"] == "warning"
    assert pager["pagerduty_configs.0.class"] == GROUP["alertname"]
    assert pager["pagerduty_configs.0.links.0.href"] == RUNBOOK
    assert pager["pagerduty_configs.0.links.1.href"].startswith(f"{EXTERNAL_URL}/#/silences/new?filter=")
    assert pager["pagerduty_configs.0.details.firing"].count("• ") == 2
