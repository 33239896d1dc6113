"""docs/contract.md against the code: every metric the gateway exports is documented, with the buckets it really
has, and has a row in the GenAI-conventions table."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Histogram

from stack import catalog
from stack.gateway.metrics import GatewayMetrics

CONTRACT = (Path(__file__).resolve().parents[1] / "docs" / "contract.md").read_text()
SECTION = CONTRACT.split("## Gateway metrics", 1)[1].split("\n## ", 1)[0]


def _exported() -> dict[str, object]:
    metrics = GatewayMetrics(catalog.load())
    return {name: value for name, value in vars(metrics).items() if hasattr(value, "_name")}


def _exposed_name(metric: object) -> str:
    kind = getattr(metric, "_type")
    return f"{metric._name}_total" if kind == "counter" else metric._name  # type: ignore[attr-defined]


def test_every_gateway_metric_is_documented_with_a_genai_mapping() -> None:
    table = SECTION.split("| gateway metric |", 1)[1]
    missing, unmapped = [], []
    for metric in _exported().values():
        name = _exposed_name(metric)
        if f"`{name}" not in SECTION.split("### Gateway metrics and", 1)[0]:
            missing.append(name)
        prefix = re.sub(r"_(hits|misses|bypassed|saved_tokens|saved_usd|entries)(_total)?$", "_", name)
        if f"`{name}" not in table and not (prefix.startswith("llm_response_cache") and "`llm_response_cache_*`" in table):
            unmapped.append(name)
    assert not missing, f"docs/contract.md 'Gateway metrics' does not list {missing}"
    assert not unmapped, f"the GenAI mapping table of docs/contract.md has no row for {unmapped}"


def test_documented_histogram_buckets_are_the_exported_ones() -> None:
    for metric in _exported().values():
        if not isinstance(metric, Histogram):
            continue
        line = next(line for line in SECTION.splitlines()
                    if f"`{metric._name}{{" in line or f"`{metric._name}` histogram" in line)
        following = SECTION.split(line, 1)[1].split("\n  -", 1)[0].split("\n- ", 1)[0]
        documented = [float(b) for b in re.findall(r"(?<![\w.])(\d+(?:\.\d+)?)(?=\s|$| \(|\))", (line + following)
                                                   .split("buckets", 1)[1].split(":")[0])]
        assert tuple(documented) == tuple(metric._upper_bounds[:-1]), (metric._name, documented)  # type: ignore[attr-defined]
