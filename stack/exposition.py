"""Read a service's own /metrics now (not through Prometheus): the current value of a few named samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families


def current_values(metrics_url: str, names: Iterable[str], labels: Mapping[str, str],
                   client: httpx.Client | None = None, timeout: float = 5.0) -> dict[str, float] | None:
    """Sample name -> value, for the samples of `names` whose labels include `labels` (the last one wins); None when
    the service does not answer."""
    wanted = set(names)
    try:
        text = (client.get(metrics_url, timeout=timeout) if client else httpx.get(metrics_url, timeout=timeout)).text
    except httpx.HTTPError:
        return None
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and all(sample.labels.get(k) == v for k, v in labels.items()):
                found[sample.name] = sample.value
    return found
