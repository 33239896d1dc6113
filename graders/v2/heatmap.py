"""Lab V2, exercise 9: a Grafana heatmap panel of the time-to-first-token distribution, built with
grafana-foundation-sdk. The panel's structure is checked here; `make grade` also runs its query against Prometheus
(graders/checks/test_v2.py) right after the exercise 8 batch streamed calls through the gateway."""

from __future__ import annotations

import json
import re
from typing import Any

from graders.labcheck import expect, expect_equal, expect_type, fail, not_attempted
from graders.v2.promql import aggregations

TTFT_BUCKETS_METRIC = "llm_time_to_first_token_seconds_bucket"
RATE_OVER_INTERVAL = re.compile(r"\brate\s*\(\s*" + TTFT_BUCKETS_METRIC + r"\s*(\{[^{}]*\})?\s*\[\s*\$__rate_interval\s*\]")


def check_ttft_heatmap(build_ttft_heatmap: Any, hidden: bool = False) -> dict:
    """build_ttft_heatmap() -> the panel dict: a heatmap of TTFT buckets that Grafana draws as a distribution.
    Returns the panel (the notebook writes it into a dashboard file)."""
    if not callable(build_ttft_heatmap):
        not_attempted("implement build_ttft_heatmap in the exercise 9 cell and run it")
    try:
        panel = build_ttft_heatmap()
    except NotImplementedError:
        not_attempted("implement build_ttft_heatmap (exercise 9)")
    expect_type(panel, dict, "build_ttft_heatmap()", "json.loads(JSONEncoder().encode(panel.build()))")
    json.dumps(panel)
    expect_equal(panel.get("type"), "heatmap", "the panel's type",
                 "a heatmap panel (grafana_foundation_sdk.builders.heatmap.Panel): a distribution over time")
    source = panel.get("datasource") or {}
    expect_equal((source.get("type"), source.get("uid")), ("prometheus", "prometheus"), "the panel's datasource",
                 "PROMETHEUS_DATASOURCE")
    expect(bool(panel.get("title")), "the panel has no title", "e.g. .title('Time to first token')")
    targets = panel.get("targets") or []
    expect_equal(len(targets), 1, "number of targets", "one query: the buckets of every model summed by le")
    target = targets[0]
    expr = (target.get("expr") or "").strip()
    if "llm_request_duration_seconds_bucket" in expr:
        fail("the heatmap's metric", TTFT_BUCKETS_METRIC, "llm_request_duration_seconds_bucket",
             "that is the whole answer's latency; what a chat user waits for is the first token: "
             f"{TTFT_BUCKETS_METRIC}")
    expect(TTFT_BUCKETS_METRIC in expr, f"the heatmap does not query {TTFT_BUCKETS_METRIC}",
           "the gateway's time-to-first-token buckets (docs/contract.md)")
    expect(bool(RATE_OVER_INTERVAL.search(expr)),
           f"the heatmap's query does not take rate({TTFT_BUCKETS_METRIC}[$__rate_interval])",
           "buckets are cumulative counters since the gateway started: rate() over Grafana's $__rate_interval "
           "(which follows the zoom and is at least four scrapes)")
    found = aggregations(expr)
    expect(bool(found), "the heatmap's query does not sum the buckets", "sum by (le) (rate(...))")
    for _, clause, labels in found:
        expect(clause == "by" and "le" in labels, "the heatmap's query aggregates the `le` label away",
               "each row of the heatmap is one bucket: sum by (le) (...)")
        expect(labels == {"le"}, f"the heatmap's query keeps {sorted(labels - {'le'})} beside le: one row per bucket "
               "and label value, drawn on top of each other", "sum by (le) only: every model's first tokens together")
    expect_equal(target.get("format"), "heatmap", "the target's format",
                 "format(PromQueryFormat.HEATMAP): Prometheus buckets are cumulative (le); the heatmap format makes "
                 "Grafana subtract each bucket from the next, so each cell counts only its own band")
    if not hidden:
        return panel
    options = panel.get("options") or {}
    expect(options.get("calculate") is False, "the heatmap calculates its own buckets (calculate is not false)",
           ".calculate(False): the data are buckets already; re-bucketing them blurs the bands")
    expect_equal((options.get("yAxis") or {}).get("unit"), "s", "the y axis unit",
                 ".y_axis(YAxisConfig().unit('s')): the rows are seconds to the first token")
    expect_equal(target.get("legendFormat"), "{{le}}", "the target's legend", 'legend_format("{{le}}")')
    return panel
