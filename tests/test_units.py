"""Fast in-process checks of the pieces: pricing, the label guard, the simulator's determinism and fault knobs,
and the receiver's handling of Alertmanager payloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from stack import catalog
from stack.gateway.label_guard import OTHER, LabelGuard
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.settings import Settings as LlmsimSettings
from stack.receiver.app import create_app as create_receiver


def test_cost_comes_from_the_per_million_prices_in_the_catalog() -> None:
    prices = yaml.safe_load(catalog.CATALOG_FILE.read_text())["models"]["sim-balanced"]["price_per_million"]
    expected = (1_200_000 * prices["input"] + 300_000 * prices["output"]) / 1_000_000
    assert catalog.cost_usd("sim-balanced", 1_200_000, 300_000) == pytest.approx(expected)
    assert catalog.cost_usd("sim-balanced", 0, 0) == 0
    assert catalog.cost_usd("sim-reasoning", 1000, 1000) > catalog.cost_usd("sim-fast", 1000, 1000) * 50


def test_unknown_model_cost_is_an_error_naming_the_known_models() -> None:
    with pytest.raises(catalog.UnknownModelError, match="sim-fast"):
        catalog.cost_usd("gpt-17", 1, 1)


def test_label_guard_with_allow_list_folds_unknown_values() -> None:
    guard = LabelGuard("department", cap=20, allowed=["support", "sales"])
    assert guard("support") == ("support", False)
    assert guard("Support ") == (OTHER, True)
    assert guard("team-9") == (OTHER, True)
    assert guard.distinct_values == 3


def test_label_guard_with_cap_admits_first_values_then_folds() -> None:
    guard = LabelGuard("application", cap=4)
    admitted = [guard(f"app-{n}") for n in range(100)]
    assert [value for value, folded in admitted if not folded] == ["app-0", "app-1", "app-2"]
    assert guard("app-1") == ("app-1", False)
    assert guard.distinct_values == 4
    with pytest.raises(ValueError):
        LabelGuard("x", cap=1)


def _llmsim(seed: int = 7) -> TestClient:
    return TestClient(create_llmsim(LlmsimSettings(seed=seed, latency_scale=0.0)))


def _completion(client: TestClient, model: str, prompt: str) -> dict:
    response = client.post("/v1/chat/completions", json={"model": model, "messages": [
        {"role": "user", "content": prompt}]})
    assert response.status_code == 200, response.text
    return response.json()


def test_llmsim_is_reproducible_for_the_same_seed_and_prompt() -> None:
    prompt = "Explain the difference between a counter and a gauge."
    with _llmsim() as first, _llmsim() as second:
        a, b = _completion(first, "sim-balanced", prompt), _completion(second, "sim-balanced", prompt)
    assert a["usage"] == b["usage"] and a["choices"] == b["choices"]
    assert a["usage"]["prompt_tokens"] > 0 and a["usage"]["completion_tokens"] > 0


def test_llmsim_prompt_tokens_grow_with_the_prompt() -> None:
    with _llmsim() as client:
        short = _completion(client, "sim-fast", "hi")["usage"]["prompt_tokens"]
        long = _completion(client, "sim-fast", "hi " * 400)["usage"]["prompt_tokens"]
    assert long > short * 20  # ~0.75 token per word plus a fixed per-message overhead


def test_llmsim_fault_knobs_apply_to_chosen_models_and_heal() -> None:
    with _llmsim() as client:
        assert client.post("/faults", json={"error_rate": 1.0, "models": ["sim-fast"]}).status_code == 200
        failed = client.post("/v1/chat/completions", json={"model": "sim-fast", "messages": [
            {"role": "user", "content": "x"}]})
        assert failed.status_code == 500
        assert _completion(client, "sim-balanced", "x")
        client.post("/faults", json={"token_multiplier": 10, "error_rate": 0.0, "models": []})
        blown = _completion(client, "sim-fast", "x")["usage"]["completion_tokens"]
        client.delete("/faults")
        assert client.get("/faults").json()["active"] == {}
        assert _completion(client, "sim-fast", "x")["usage"]["completion_tokens"] < blown


@pytest.mark.parametrize(("knobs", "word"), [
    ({"error_rate": 1.5}, "error_rate"),
    ({"models": ["gpt-17"]}, "gpt-17"),
    ({"duration_seconds": 0}, "duration_seconds"),
])
def test_llmsim_rejects_bad_fault_requests_clearly(knobs: dict, word: str) -> None:
    with _llmsim() as client:
        response = client.post("/faults", json=knobs)
    assert response.status_code == 422 and word in response.text


def _alertmanager_payload(status: str = "firing") -> dict:
    alert = {"status": status, "labels": {"alertname": "TargetDown", "severity": "critical", "job": "gateway"},
             "annotations": {"summary": "gateway is down"}, "startsAt": "2026-11-23T10:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:18790/graph", "fingerprint": "ab"}
    return {"version": "4", "groupKey": "{}:{alertname=\"TargetDown\"}", "truncatedAlerts": 0, "status": status,
            "receiver": "pager", "groupLabels": {"alertname": "TargetDown"}, "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"], "externalURL": "http://127.0.0.1:18793", "alerts": [alert]}


def test_receiver_stores_notifications_per_channel(tmp_path: Path) -> None:
    with TestClient(create_receiver(data_dir=tmp_path)) as client:
        assert client.post("/hook/pager", json=_alertmanager_payload()).status_code == 200
        assert client.post("/hook/pager", json=_alertmanager_payload("resolved")).status_code == 200
        firing = client.get("/api/notifications", params={"channel": "pager", "status": "firing"}).json()
        assert firing["count"] == 1 and firing["notifications"][0]["alertnames"] == ["TargetDown"]
        assert client.get("/api/notifications", params={"channel": "chat"}).json()["count"] == 0
        assert "pager" in client.get("/").text


def test_receiver_rejects_a_payload_that_is_not_from_alertmanager(tmp_path: Path) -> None:
    with TestClient(create_receiver(data_dir=tmp_path)) as client:
        response = client.post("/hook/pager", json={"text": "hello"})
        assert response.status_code == 422 and "alerts" in response.text
        assert client.get("/api/notifications").json()["count"] == 0
