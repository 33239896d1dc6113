"""The course dashboards, defined as code with grafana-foundation-sdk.

`python -m stack.grafana.build` writes them as JSON under stack/grafana/dashboards/<folder>/<uid>.json (each
folder becomes a Grafana folder through the provisioning in stack/grafana/provisioning/dashboards/), and
`--check` fails when a committed file differs from what this module produces.

Every query reads the metrics of docs/contract.md (or the recording rules in stack/prometheus/rules.py) and is
proven against the live embedded Prometheus by `make dashboards-check` (stack/grafana/check.py). Thresholds come
from the alert definitions (stack/prometheus/alerts.py) and the catalog budget, so a dashboard turns red where
an alert fires.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Callable

# The SDK warns that the classic dashboard schema is superseded by dashboard v2; Grafana 11.3 (docker-compose.yml)
# provisions the classic schema only, so that is what these dashboards use.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import bargauge, gauge, heatmap, stat, statetimeline, timeseries
    from grafana_foundation_sdk.builders.common import (
        GraphThresholdsStyleConfig,
        ReduceDataOptions,
        StackingConfig,
        VizLegendOptions,
        VizTooltipOptions,
    )
    from grafana_foundation_sdk.builders.dashboard import (
        AnnotationQuery,
        Dashboard,
        QueryVariable,
        Row,
        ThresholdsConfig,
    )
    from grafana_foundation_sdk.builders.heatmap import (
        CellValues,
        HeatmapColorOptions,
        HeatmapTooltip,
        RowsHeatmapOptions,
        YAxisConfig,
    )
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.common import (
        BarGaugeDisplayMode,
        BigValueColorMode,
        BigValueGraphMode,
        DataSourceRef,
        GraphThresholdsStyleMode,
        HeatmapCellLayout,
        LegendDisplayMode,
        LegendPlacement,
        SortOrder,
        StackingMode,
        TooltipDisplayMode,
        VisibilityMode,
        VizOrientation,
    )
    from grafana_foundation_sdk.models.dashboard import (
        DashboardCursorSync,
        Threshold,
        ThresholdsMode,
        VariableOption,
        ValueMap,
        ValueMappingResult,
        VariableRefresh,
        VariableSort,
    )
    from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from prometheus_client.utils import floatToGoString

from stack import catalog
from stack.gateway import routing
from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS, STATE_VALUES
from stack.grafana.provisioning import datasource_uid
from stack.prometheus import alerts
from stack.prometheus.scrape import SCRAPED_SERVICES

# Grafana 11.3 (docker-compose.yml) understands dashboards up to this schema version; the SDK's default is newer.
SCHEMA_VERSION = 39
REFRESH = "10s"
TAGS = ("llmobs", "generated")

# ---------------------------------------------------------------- service level objectives
# Availability: the share of provider calls that succeed. 99 % leaves a 1 % error budget, so the
# LLMHighErrorRatio warning (5 %) is a 5x burn and the critical one (20 %) a 20x burn.
AVAILABILITY_OBJECTIVE = 0.99
# Latency: the share of calls answered within the p95 objective of LLMLatencyP95High (4 s). "95 % within 4 s"
# is the same promise as "p95 <= 4 s", measured from the histogram bucket instead of an interpolated quantile.
LATENCY_OBJECTIVE = 0.95
LATENCY_THRESHOLD_SECONDS = alerts.LATENCY_P95_SECONDS
# Multi-window, multi-burn-rate alerting (Google SRE workbook, chapter 5): page when both the long and the short
# window burn faster than the factor. 14.4x spends 2 % of a 30-day budget in 1 h; 6x spends 5 % in 6 h.
FAST_BURN = ("1h", "5m", 14.4)
SLOW_BURN = ("6h", "30m", 6.0)
BURN_WINDOWS = ("5m", "30m", "1h", "6h")

if LATENCY_THRESHOLD_SECONDS not in LATENCY_BUCKETS_SECONDS:  # pragma: no cover - guards a future edit
    raise ValueError(f"the latency SLO threshold {LATENCY_THRESHOLD_SECONDS}s must be a histogram bucket boundary "
                     f"({LATENCY_BUCKETS_SECONDS}) or the SLI cannot be read from the buckets")
# prometheus_client writes bucket boundaries as Go floats: le="4.0", not le="4".
LATENCY_LE = floatToGoString(LATENCY_THRESHOLD_SECONDS)

GATEWAY = 'job="gateway"'
MODEL = 'model=~"$model"'
DEPARTMENT = 'department=~"$department"'
RATE = "$__rate_interval"

ALL = VariableOption(selected=True, text="All", value="$__all")
GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"


@dataclass(frozen=True)
class DashboardSpec:
    folder: str          # sub-folder of stack/grafana/dashboards = Grafana folder
    uid: str
    build: Callable[[], dict]

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.uid}.json"


# ---------------------------------------------------------------- helpers over the SDK builders


def _ds() -> DataSourceRef:
    return DataSourceRef(type_val="prometheus", uid=datasource_uid())


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False,
          exemplar: bool = False) -> Dataquery:
    target = Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(_ds())
    if instant:
        target = target.instant()
    else:
        target = target.range()
    if exemplar:
        target = target.exemplar(True)
    return target


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


BASE = (None, GREEN)


def series(title: str, unit: str, description: str, targets: list[Dataquery], *, span: int = 12, height: int = 8,
           limits: ThresholdsConfig | None = None, stacked: bool = False, minimum: float | None = 0,
           maximum: float | None = None, decimals: int | None = None) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).unit(unit).datasource(_ds())
        .span(span).height(height).line_width(1).fill_opacity(10 if not stacked else 40).show_points("never")
        .legend(VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST)
                .placement(LegendPlacement.BOTTOM).calcs([]))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    for target in targets:
        panel = panel.with_target(target)
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL).group("A"))
    if limits is not None:
        panel = panel.thresholds(limits).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    else:
        panel = panel.thresholds(thresholds(BASE))
    return panel


def single(title: str, unit: str, description: str, targets: list[Dataquery], limits: ThresholdsConfig, *,
           span: int = 6, height: int = 5, decimals: int | None = None,
           states: list[ValueMap] | None = None) -> stat.Panel:
    """A stat panel; `states` (see `named_states`) shows a number as its name, in the name's colour."""
    panel = (
        stat.Panel().title(title).description(description).unit(unit).datasource(_ds()).span(span).height(height)
        .thresholds(limits).color_mode(BigValueColorMode.VALUE).graph_mode(BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    for target in targets:
        panel = panel.with_target(target)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if states is not None:
        panel = panel.mappings(states)
    return panel


def named_states(names: dict[int, tuple[str, str]]) -> list[ValueMap]:
    """Grafana value mappings: each number shown as its (name, colour)."""
    return [ValueMap(options={str(number): ValueMappingResult(text=name, color=color, index=index)
                              for index, (number, (name, color)) in enumerate(sorted(names.items()))})]


def timeline(title: str, description: str, targets: list[Dataquery], states: list[ValueMap], *, span: int = 12,
             height: int = 8) -> statetimeline.Panel:
    """A state timeline: one lane per series, coloured by the state its number names (`named_states`)."""
    panel = (
        statetimeline.Panel().title(title).description(description).datasource(_ds()).span(span).height(height)
        .mappings(states).thresholds(thresholds((None, BLUE))).show_value(VisibilityMode.AUTO).merge_values(True)
        .row_height(0.8).fill_opacity(80).line_width(0)
        .legend(VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST)
                .placement(LegendPlacement.BOTTOM).calcs([]))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.SINGLE).sort(SortOrder.NONE))
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def dial(title: str, unit: str, description: str, target: Dataquery, limits: ThresholdsConfig, *,
         maximum: float, span: int = 6, height: int = 5, decimals: int | None = None) -> gauge.Panel:
    """A gauge; a query with several series shows one gauge per series (named by its legend)."""
    panel = (
        gauge.Panel().title(title).description(description).unit(unit).datasource(_ds()).span(span).height(height)
        .min(0).max(maximum).thresholds(limits).show_threshold_markers(True)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)).with_target(target)
    )
    return panel.decimals(decimals) if decimals is not None else panel


def bars(title: str, unit: str, description: str, target: Dataquery, limits: ThresholdsConfig, *,
         span: int = 12, height: int = 8) -> bargauge.Panel:
    return (
        bargauge.Panel().title(title).description(description).unit(unit).datasource(_ds()).span(span)
        .height(height).thresholds(limits).display_mode(BarGaugeDisplayMode.GRADIENT)
        .orientation(VizOrientation.HORIZONTAL).min(0)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)).with_target(target)
    )


def distribution(title: str, description: str, histogram: str, *, span: int = 12, height: int = 8,
                 extra: str = "", bucket_unit: str = "s", model_label: bool = True) -> heatmap.Panel:
    """A heatmap of a histogram's buckets (in `bucket_unit`, seconds by default) over time: one row per bucket,
    coloured by observations per second; Prometheus's buckets are cumulative (`le`): the query's heatmap format tells
    Grafana to subtract each from the next. `model_label=False` for a histogram without a model label."""
    selector = buckets(extra, histogram) if model_label else f"{histogram}_bucket{{{GATEWAY}{extra}}}"
    target = query(f"sum by (le) (rate({selector}[{RATE}]))", "{{le}}",
                   exemplar=bucket_unit == "s").format(PromQueryFormat.HEATMAP)
    return (
        heatmap.Panel().title(title).description(description).unit("reqps").datasource(_ds()).span(span)
        .height(height).calculate(False).rows_frame(RowsHeatmapOptions().layout(HeatmapCellLayout.LE))
        .y_axis(YAxisConfig().unit(bucket_unit)).cell_values(CellValues().unit("reqps"))
        .color(HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("Oranges").fill("dark-orange")
               .scale(HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64))
        .show_legend().tooltip(HeatmapTooltip().mode(TooltipDisplayMode.SINGLE).y_histogram(True)
                               .show_color_scale(True))
        .with_target(target)
    )


def model_variable() -> QueryVariable:
    return (
        QueryVariable("model").label("Model").description("Catalog models (stack/catalog.yaml) seen by the gateway")
        .datasource(_ds()).query(f"label_values(llm_requests_total{{{GATEWAY}}}, model)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*").current(ALL)
    )


def department_variable() -> QueryVariable:
    return (
        QueryVariable("department").label("Department")
        .description("Departments with spend (the gateway folds unknown ones into 'other')")
        .datasource(_ds()).query(f"label_values(llm_cost_usd_total{{{GATEWAY},{MODEL}}}, department)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*").current(ALL)
    )


def dashboard(uid: str, title: str, description: str, time_from: str) -> Dashboard:
    annotations = (
        AnnotationQuery().name("Annotations & Alerts")
        .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)").type("dashboard").built_in(1)
    )
    return (
        Dashboard(title).uid(uid).description(description).tags(list(TAGS)).refresh(REFRESH).time(time_from, "now")
        .timezone("browser").tooltip(DashboardCursorSync.CROSSHAIR).annotation(annotations)
    )


def _finish(builder: Dashboard) -> dict:
    """The dashboard as plain JSON data, with ids and row positions Grafana can rely on."""
    model = builder.build()
    model.schema_version = SCHEMA_VERSION
    data = json.loads(json.dumps(model, cls=JSONEncoder))
    panels = []
    for number, panel in enumerate(data["panels"], start=1):
        panel.pop("repeatDirection", None)
        panel.pop("id", None)
        panels.append({"id": number, **panel})
    data["panels"] = panels
    return data


# ---------------------------------------------------------------- selectors shared by the dashboards


LATENCY = "llm_request_duration_seconds"
TTFT = "llm_time_to_first_token_seconds"
TIME_PER_OUTPUT_TOKEN = "llm_time_per_output_token_seconds"


def gateway(metric: str, extra: str = "") -> str:
    """A gateway series of the models the $model variable selects."""
    return f"{metric}{{{GATEWAY},{MODEL}{extra}}}"


def requests(extra: str = "") -> str:
    return gateway("llm_requests_total", extra)


def errors() -> str:
    return requests(',status="error"')


def buckets(extra: str = "", histogram: str = LATENCY) -> str:
    return gateway(f"{histogram}_bucket", extra)


def durations_count() -> str:
    return gateway(f"{LATENCY}_count")


def cost(with_department: bool = True) -> str:
    return gateway("llm_cost_usd_total", f",{DEPARTMENT}" if with_department else "")


def _sum(by: str) -> str:
    return f"sum by ({by}) " if by else "sum"


def rate_ratio(numerator: str, denominator: str, window: str = RATE, by: str = "") -> str:
    """A ratio done right: both sides' rates summed (by the labels kept) before dividing."""
    return f"{_sum(by)}(rate({numerator}[{window}]))\n/\n{_sum(by)}(rate({denominator}[{window}]))"


def error_ratio(window: str, by: str = "") -> str:
    return rate_ratio(errors(), requests(), window, by)


def latency_sli(window: str, by: str = "") -> str:
    """The share of calls answered within the latency threshold."""
    return rate_ratio(buckets(f',le="{LATENCY_LE}"'), durations_count(), window, by)


def quantile(q: float, by: str | None = "model", histogram: str = LATENCY) -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q:g}, sum by ({labels}) (rate({buckets(histogram=histogram)}[{RATE}])))"


def _pct(value: float) -> str:
    return f"{value * 100:g} %"


# ---------------------------------------------------------------- resilience signals (operations and resilience)

# llm_circuit_breaker_state's numbers (stack/gateway/metrics.py) as Grafana shows them.
BREAKER_STATES = named_states({STATE_VALUES[routing.CLOSED]: ("closed", GREEN),
                               STATE_VALUES[routing.OPENED]: ("open", RED),
                               STATE_VALUES[routing.HALF_OPENED]: ("half-open", YELLOW)})
# llm_degradation_tier's numbers, named as stack/gateway/routing.py names them (without the explanation).
TIER_COLORS = {routing.TIER_FULL: GREEN, routing.TIER_DEGRADED: YELLOW, routing.TIER_LAST_RESORT: ORANGE,
               routing.TIER_CACHE_ONLY: RED}
TIER_STATES = named_states({tier: (name.split(" (")[0], TIER_COLORS[tier])
                            for tier, name in routing.TIER_NAMES.items()})
TIER_LIMITS = thresholds(*((None if tier == routing.TIER_FULL else tier, color) for tier, color in TIER_COLORS.items()))
DEGRADATION_TIER = f"max(llm_degradation_tier{{{GATEWAY}}})"
BREAKER_STATE = f"max by (model) ({gateway('llm_circuit_breaker_state')})"


def degradation_tier_stat(span: int) -> stat.Panel:
    return single("Degradation tier", "none",
                  "The gateway's degradation tier (llm_degradation_tier, docs/reliability.md): 1 full service, 2 "
                  "degraded (fallbacks serve the models whose breaker is open), 3 last resort only (every breaker "
                  "open), 4 cache only. No model label: the model filter does not apply.",
                  [query(DEGRADATION_TIER, "tier", instant=True)], TIER_LIMITS, span=span, decimals=0,
                  states=TIER_STATES)


def breaker_state_stat(span: int) -> stat.Panel:
    return single("Circuit breakers", "none",
                  "State of each model's circuit breaker (only models with fallbacks have one): closed, open (calls "
                  "go to its fallbacks) or half-open (one trial call).",
                  [query(BREAKER_STATE, "{{model}}", instant=True)],
                  thresholds(BASE, (STATE_VALUES[routing.OPENED], RED)), span=span, decimals=0,
                  states=BREAKER_STATES)


# ---------------------------------------------------------------- 1. LLM operations


def operations() -> dict:
    tokens = f"llm_tokens_total{{{GATEWAY},{MODEL}}}"
    warn, crit = alerts.ERROR_RATIO_WARNING, alerts.ERROR_RATIO_CRITICAL
    error_limits = thresholds(BASE, (warn, ORANGE), (crit, RED))
    latency_limits = thresholds(BASE, (alerts.LATENCY_P95_SECONDS, RED))
    board = (
        dashboard("llmobs-operations", "LLM operations",
                  "Is the LLM gateway healthy right now? Traffic, errors, latency, provider failures and tokens, "
                  "per model.", "now-1h")
        .with_variable(model_variable())
        .with_row(Row("Right now"))
        .with_panel(single("Requests per second", "reqps", "Provider calls per second through the gateway.",
                           [query(f"sum(rate({requests()}[{RATE}]))", "requests/s", instant=True)],
                           thresholds((None, BLUE)), span=4))
        .with_panel(single("Error ratio", "percentunit",
                           f"Share of provider calls that failed. LLMHighErrorRatio warns above {_pct(warn)} and "
                           f"pages above {_pct(crit)}.",
                           [query(error_ratio(RATE), "error ratio", instant=True)], error_limits, span=4,
                           decimals=1))
        .with_panel(single("p95 latency", "s",
                           f"95 % of calls finished within this time. LLMLatencyP95High warns above "
                           f"{alerts.LATENCY_P95_SECONDS:g} s.",
                           [query(quantile(0.95, by=None), "p95", instant=True)], latency_limits, span=4,
                           decimals=2))
        .with_panel(single("In flight", "short",
                           "Provider calls under way at the last scrape (the gateway gauge has no model label, so "
                           "the model filter does not apply).",
                           [query(f"sum(llm_requests_in_flight{{{GATEWAY}}})", "in flight", instant=True)],
                           thresholds(BASE, (20, ORANGE), (50, RED)), span=4, decimals=0))
        .with_panel(degradation_tier_stat(span=4))
        .with_panel(breaker_state_stat(span=4))
        .with_row(Row("Traffic and errors"))
        .with_panel(series("Requests by model and status", "reqps",
                           "Provider calls per second, per model and outcome (success or error).",
                           [query(f"sum by (model, status) (rate({requests()}[{RATE}]))", "{{model}} {{status}}")]))
        .with_panel(series("Error ratio by model", "percentunit",
                           "Failed calls over all calls, per model: both sides summed by model before dividing. "
                           f"Dashed lines: the {_pct(warn)} warning and {_pct(crit)} critical thresholds.",
                           [query(error_ratio(RATE, by="model"), "{{model}}")], limits=error_limits, maximum=1))
        .with_row(Row("Latency"))
        .with_panel(series("Latency p50 / p95 / p99 by model", "s",
                           "Quantiles from the llm_request_duration_seconds histogram (sum by le and model, then "
                           "histogram_quantile). Exemplars link to traces once the gateway records them. Dashed: "
                           f"the {alerts.LATENCY_P95_SECONDS:g} s p95 objective.",
                           [query(quantile(0.5), "{{model}} p50", "A", exemplar=True),
                            query(quantile(0.95), "{{model}} p95", "B", exemplar=True),
                            query(quantile(0.99), "{{model}} p99", "C", exemplar=True)],
                           limits=latency_limits, decimals=2))
        .with_panel(distribution("Request latency distribution",
                                 "How long provider calls took, as a heatmap: one row per bucket of the "
                                 "llm_request_duration_seconds histogram, the brighter the more calls per second "
                                 "finished in it. Two bands mean two populations (a fast model and a slow one, or "
                                 "a fault on one model) that a p95 line averages away.", LATENCY))
        .with_row(Row("Provider and tokens"))
        .with_panel(series("Provider errors by type", "reqps",
                           "Failed provider calls per second by kind: server_error (5xx), rate_limited (429), "
                           "timeout, unavailable (outage), bad_response.",
                           [query(f"sum by (error_type) (rate(llm_provider_errors_total{{{GATEWAY},{MODEL}}}[{RATE}]))",
                                  "{{error_type}}")], span=8, stacked=True))
        .with_panel(series("Tokens per minute by model", "suffix: tokens/min",
                           "Tokens billed per minute, input and output, per model: what drives cost.",
                           [query(f"sum by (model, token_type) (rate({tokens}[{RATE}])) * 60",
                                  "{{model}} {{token_type}}")], span=8))
        .with_panel(series("In-flight requests", "short", "Concurrent provider calls (gateway gauge).",
                           [query(f"sum(llm_requests_in_flight{{{GATEWAY}}})", "in flight")], span=8, decimals=0))
    )
    return _finish(board)


# ---------------------------------------------------------------- 2. Cost and attribution


def cost_and_attribution() -> dict:
    budget = catalog.load().daily_budget_usd
    folded = f'llm_label_overflow_total{{{GATEWAY},label="department"}}'
    budget_limits = thresholds(BASE, (alerts.BUDGET_WARNING, ORANGE), (alerts.BUDGET_CRITICAL, RED))
    department_limits = thresholds(BASE, (alerts.DEPARTMENT_BUDGET_INFO, YELLOW),
                                   (alerts.DEPARTMENT_BUDGET_WARNING, ORANGE), (alerts.DEPARTMENT_BUDGET_CRITICAL, RED))
    money = thresholds((None, BLUE))
    board = (
        dashboard("llmobs-cost", "Cost and attribution",
                  "Where does the money go? Spend per hour by model and department, cost per request, and the "
                  f"burn of the {budget:g} USD daily budget (stack/catalog.yaml).", "now-6h")
        .with_variable(model_variable())
        .with_variable(department_variable())
        .with_row(Row("Spend"))
        .with_panel(single("Spend per hour", "currencyUSD", "Current spend rate, in US dollars per hour.",
                           [query(f"sum(rate({cost()}[{RATE}])) * 3600", "USD/hour", instant=True)], money,
                           decimals=2))
        .with_panel(single("Cost per request", "currencyUSD",
                           "Average cost of one provider call over the time range (all departments: requests carry "
                           "no department label).",
                           [query(f"sum(increase({cost(with_department=False)}[$__range]))\n/\n"
                                  f"sum(increase({requests()}[$__range]))", "USD/request", instant=True)],
                           money, decimals=4))
        .with_panel(dial("Budget burn (pace of the last hour)", "percentunit",
                         "Spend of the last hour extrapolated to a day, as a share of the daily budget: 100 % "
                         f"spends exactly {budget:g} USD a day. Orange from {_pct(alerts.BUDGET_WARNING)}, red from "
                         f"{_pct(alerts.BUDGET_CRITICAL)} (the LLMDailyBudgetBurn thresholds).",
                         query(f"sum(rate(llm_cost_usd_total{{{GATEWAY}}}[1h])) * 86400\n/\n"
                               f"max(llm_daily_budget_usd{{{GATEWAY}}})", "budget pace", instant=True),
                         budget_limits, maximum=2))
        .with_panel(dial("Daily budget used (last 24 h)", "percentunit",
                         f"Spend of the last 24 hours over the {budget:g} USD daily budget.",
                         query(f"sum(increase(llm_cost_usd_total{{{GATEWAY}}}[1d]))\n/\n"
                               f"max(llm_daily_budget_usd{{{GATEWAY}}})", "budget used", instant=True),
                         budget_limits, maximum=1.5))
        .with_panel(series("Cost per hour by model", "currencyUSD", "Spend rate per model, stacked.",
                           [query(f"sum by (model) (rate({cost()}[{RATE}])) * 3600", "{{model}}")],
                           stacked=True, decimals=2))
        .with_panel(series("Cost per hour by department", "currencyUSD",
                           "Spend rate per department (chargeback), stacked. 'other' collects departments outside "
                           "the catalog list.",
                           [query(f"sum by (department) (rate({cost()}[{RATE}])) * 3600", "{{department}}")],
                           stacked=True, decimals=2))
        .with_row(Row("Attribution"))
        .with_panel(bars("Top departments by spend", "currencyUSD",
                         "The five departments that spent most over the time range.",
                         query(f"topk(5, sum by (department) (increase({cost()}[$__range])))", "{{department}}",
                               instant=True),
                         thresholds((None, BLUE)), span=8))
        .with_panel(series("Cost per request by model", "currencyUSD",
                           "Average cost of one call per model: a change here means longer answers or a price "
                           "change, not more traffic.",
                           [query(f"sum by (model) (rate({cost(with_department=False)}[{RATE}]))\n/\n"
                                  f"sum by (model) (rate({requests()}[{RATE}]))", "{{model}}")],
                           span=10, decimals=4))
        .with_panel(single("Department labels folded", "short",
                           "Requests whose department was not in the catalog and was recorded as 'other' by the "
                           "cardinality guard over the time range. Non-zero: attribution by department is "
                           "incomplete; the raw value is in the logs and the attribution store.",
                           [query(f"sum(increase({folded}[$__range]))", "folded", instant=True)],
                           thresholds(BASE, (1, ORANGE)), span=6, height=8, decimals=0))
        .with_row(Row("Monthly budgets"))
        .with_panel(bars("Monthly budget used by department", "percentunit",
                         "Month-to-date spend (calendar month, UTC) over each department's budgets.monthly_usd "
                         f"(stack/catalog.yaml). Yellow from {_pct(alerts.DEPARTMENT_BUDGET_INFO)} (LLMDepartmentBudget "
                         f"info: shown here only), orange from {_pct(alerts.DEPARTMENT_BUDGET_WARNING)} (chat), red "
                         f"from {_pct(alerts.DEPARTMENT_BUDGET_CRITICAL)} (pager; the gateway refuses or downgrades "
                         "the department's calls).",
                         query(f"sum by (department) (llm_budget_spent_usd{{{GATEWAY}}})\n/\n"
                               f"max by (department) (llm_budget_monthly_usd{{{GATEWAY}}})", "{{department}}",
                               instant=True),
                         department_limits))
        .with_panel(series("Projected month-end spend by department", "percentunit",
                           "Where each department's month ends at its month-to-date pace (spent x month length / "
                           "elapsed time), as a share of its monthly budget: over 100 % means it runs out before the "
                           "month ends unless it slows down.",
                           [query(f"sum by (department) (llm_budget_projected_usd{{{GATEWAY}}})\n/\n"
                                  f"max by (department) (llm_budget_monthly_usd{{{GATEWAY}}})", "{{department}}")],
                           limits=department_limits))
    )
    return _finish(board)


# ---------------------------------------------------------------- 3. SLO and error budget


def _burn(sli_error: Callable[[str], str], budget: float, window: str) -> str:
    return f"(\n{sli_error(window)}\n) / {budget:g}"


def _availability_error(window: str) -> str:
    return error_ratio(window)


def _latency_error(window: str) -> str:
    return f"1 - (\n{latency_sli(window)}\n)"


def slo() -> dict:
    availability_budget = round(1 - AVAILABILITY_OBJECTIVE, 6)
    latency_budget = round(1 - LATENCY_OBJECTIVE, 6)
    burn_limits = thresholds(BASE, (1, YELLOW), (SLOW_BURN[2], ORANGE), (FAST_BURN[2], RED))
    remaining_limits = thresholds((None, RED), (0, ORANGE), (0.25, GREEN))

    def sli_limits(objective: float) -> ThresholdsConfig:
        return thresholds((None, RED), (objective, GREEN))

    def burn_stat(title: str, sli_error: Callable[[str], str], budget: float,
                  windows: tuple[str, str, float]) -> stat.Panel:
        long, short, factor = windows
        return single(title, "suffix:x",
                      f"Burn rate over {long} and over {short}: the multi-window alert fires when both exceed "
                      f"{factor:g}x (1x spends the budget exactly over the SLO period).",
                      [query(_burn(sli_error, budget, long), long, "A", instant=True),
                       query(_burn(sli_error, budget, short), short, "B", instant=True)],
                      thresholds(BASE, (factor, RED)), span=6, height=5, decimals=1)

    def burn_series(title: str, sli_error: Callable[[str], str], budget: float) -> timeseries.Panel:
        return series(title, "suffix:x",
                      "How fast the error budget burns over several windows (error ratio / budget). Dashed: 1x, the "
                      f"slow-burn page ({SLOW_BURN[2]:g}x over {SLOW_BURN[0]} and {SLOW_BURN[1]}) and the fast-burn "
                      f"page ({FAST_BURN[2]:g}x over {FAST_BURN[0]} and {FAST_BURN[1]}).",
                      [query(_burn(sli_error, budget, w), w, chr(ord("A") + i)) for i, w in enumerate(BURN_WINDOWS)],
                      limits=burn_limits, decimals=1)

    board = (
        dashboard("llmobs-slo", "SLO and error budget",
                  f"Are we keeping our promises? Availability objective {_pct(AVAILABILITY_OBJECTIVE)} of calls "
                  f"succeed; latency objective {_pct(LATENCY_OBJECTIVE)} of calls within "
                  f"{LATENCY_THRESHOLD_SECONDS:g} s. Budgets are computed over the dashboard time range (pick 30 "
                  "days for the monthly budget).", "now-6h")
        .with_variable(model_variable())
        .with_row(Row("Service level indicators over the time range"))
        .with_panel(single("Availability", "percentunit",
                           f"Share of successful calls over the time range. Objective: {_pct(AVAILABILITY_OBJECTIVE)}.",
                           [query(f"1 - (\n{error_ratio('$__range')}\n)", "availability", instant=True)],
                           sli_limits(AVAILABILITY_OBJECTIVE), decimals=2))
        .with_panel(single("Availability budget remaining", "percentunit",
                           f"Share of the {_pct(availability_budget)} error budget not yet spent over the time range "
                           "(negative: overspent).",
                           [query(f"1 - (\n{error_ratio('$__range')}\n) / {availability_budget:g}", "remaining",
                                  instant=True)], remaining_limits, decimals=1))
        .with_panel(single(f"Calls within {LATENCY_THRESHOLD_SECONDS:g} s", "percentunit",
                           f"Share of calls answered within {LATENCY_THRESHOLD_SECONDS:g} s over the time range "
                           f"(histogram bucket le={LATENCY_LE}). Objective: {_pct(LATENCY_OBJECTIVE)}.",
                           [query(latency_sli("$__range"), "within threshold", instant=True)],
                           sli_limits(LATENCY_OBJECTIVE), decimals=2))
        .with_panel(single("Latency budget remaining", "percentunit",
                           f"Share of the {_pct(latency_budget)} slow-call budget not yet spent over the time range.",
                           [query(f"1 - (\n{_latency_error('$__range')}\n) / {latency_budget:g}", "remaining",
                                  instant=True)], remaining_limits, decimals=1))
        .with_panel(series("Availability SLI", "percentunit",
                           "Share of successful calls per model. Dashed: the "
                           f"{_pct(AVAILABILITY_OBJECTIVE)} objective.",
                           [query(f"1 - (\n{error_ratio(RATE, by='model')}\n)", "{{model}}")],
                           limits=sli_limits(AVAILABILITY_OBJECTIVE), minimum=None, maximum=1, decimals=2))
        .with_panel(series(f"Latency SLI (calls within {LATENCY_THRESHOLD_SECONDS:g} s)", "percentunit",
                           f"Share of calls within {LATENCY_THRESHOLD_SECONDS:g} s per model. Dashed: the "
                           f"{_pct(LATENCY_OBJECTIVE)} objective.",
                           [query(latency_sli(RATE, by="model"), "{{model}}")],
                           limits=sli_limits(LATENCY_OBJECTIVE), minimum=None, maximum=1, decimals=2))
        .with_row(Row("Burn rates (multi-window alerts)"))
        .with_panel(burn_stat("Availability fast burn", _availability_error, availability_budget, FAST_BURN))
        .with_panel(burn_stat("Availability slow burn", _availability_error, availability_budget, SLOW_BURN))
        .with_panel(burn_stat("Latency fast burn", _latency_error, latency_budget, FAST_BURN))
        .with_panel(burn_stat("Latency slow burn", _latency_error, latency_budget, SLOW_BURN))
        .with_panel(burn_series("Availability burn rate", _availability_error, availability_budget))
        .with_panel(burn_series("Latency burn rate", _latency_error, latency_budget))
    )
    return _finish(board)


# ---------------------------------------------------------------- 4. Monitoring the monitoring


def short_group(expr: str) -> str:
    """Rule groups are labelled `<rule file path>;<group>`; keep the group name as label `group`."""
    return f'label_replace({expr}, "group", "$1", "rule_group", ".*;(.*)")'


def monitoring() -> dict:
    stack_jobs = "|".join(SCRAPED_SERVICES)
    job = (
        QueryVariable("job").label("Job")
        .description("Scrape jobs. All = the jobs `make up` starts (lab targets only run with a lab notebook).")
        .datasource(_ds()).query("label_values(up, job)").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True).all_value(stack_jobs)
        .current(ALL)
    )
    targets = 'job=~"$job"'
    prom = 'job="prometheus"'
    am = 'job="alertmanager"'
    over_limit = f"prometheus_target_scrapes_exceeded_sample_limit_total{{{prom}}}"
    failures = f"prometheus_rule_evaluation_failures_total{{{prom}}}"
    received = 'alert_receiver_notifications_total{job="receiver"}'
    board = (
        dashboard("llmobs-meta", "Monitoring the monitoring",
                  "Can we trust the other dashboards and alerts? Scrapes, series, rule evaluation and "
                  "notification delivery of the monitoring stack itself.", "now-1h")
        .with_variable(job)
        .with_row(Row("Is the pipeline alive?"))
        .with_panel(single("Targets down", "short", "Scrape targets whose last scrape failed (up == 0).",
                           [query(f"count(up{{{targets}}} == 0) or vector(0)", "down", instant=True)],
                           thresholds(BASE, (1, RED)), decimals=0))
        .with_panel(single("Watchdog", "short",
                           "1 while the always-firing Watchdog alert is firing: rules are evaluated and alerts "
                           "reach Alertmanager. 0 means the alerting pipeline itself is broken.",
                           [query('count(ALERTS{alertname="Watchdog",alertstate="firing"}) or vector(0)', "watchdog",
                                  instant=True)],
                           thresholds((None, RED), (1, GREEN)), decimals=0))
        .with_panel(single("Sample-limit rejections", "short",
                           "Scrapes refused because the target exposed more samples than its sample_limit, over "
                           "the time range: a cardinality explosion (the gateway's cardinality demo shows here).",
                           [query(f"sum(increase({over_limit}[$__range]))", "rejections", instant=True)],
                           thresholds(BASE, (1, RED)), decimals=0))
        .with_panel(single("Failed notifications", "short",
                           "Alertmanager notifications that could not be delivered over the time range.",
                           [query(f"sum(increase(alertmanager_notifications_failed_total{{{am}}}[$__range]))",
                                  "failed", instant=True)],
                           thresholds(BASE, (1, RED)), decimals=0))
        .with_row(Row("Scrapes and series"))
        .with_panel(series("Scrape duration by target", "s",
                           "How long each scrape took. Near the scrape timeout, scrapes start to fail.",
                           [query(f"scrape_duration_seconds{{{targets}}}", "{{job}}")], decimals=3))
        .with_panel(series("Samples per scrape by target", "short",
                           "Samples each target exposes. A steep climb is a label with unbounded values; at the "
                           "gateway's sample_limit every scrape fails.",
                           [query(f"scrape_samples_scraped{{{targets}}}", "{{job}}")], decimals=0))
        .with_panel(series("Head series", "short",
                           "Series in Prometheus's in-memory head block: memory use follows it.",
                           [query(f"prometheus_tsdb_head_series{{{prom}}}", "head series")], decimals=0))
        .with_panel(series("Scrapes over sample_limit", "short",
                           "Scrapes refused per interval because a target exceeded its sample_limit.",
                           [query(f"sum(increase({over_limit}[{RATE}]))", "rejected scrapes")],
                           limits=thresholds(BASE, (1, RED)), decimals=0))
        .with_row(Row("Rules and notifications"))
        .with_panel(series("Rule group evaluation time", "s",
                           "Duration of the last evaluation of each rule group; it must stay well under the "
                           "evaluation interval.",
                           [query(short_group(f"prometheus_rule_group_last_duration_seconds{{{prom}}}"),
                                  "{{group}}")],
                           decimals=4))
        .with_panel(series("Notifications sent and failed", "suffix: /min",
                           "Alertmanager notification attempts per minute (all integrations; this stack uses "
                           "webhooks), and the failed ones.",
                           [query(f"sum(rate(alertmanager_notifications_total{{{am}}}[{RATE}])) * 60", "sent", "A"),
                            query(f"sum(rate(alertmanager_notifications_failed_total{{{am}}}[{RATE}])) * 60",
                                  "failed", "B")], decimals=1))
        .with_panel(series("Notifications received by channel", "suffix: /min",
                           "What the receiver (standing in for Slack and PagerDuty) got, per channel and status.",
                           [query(f"sum by (channel, status) (rate({received}[{RATE}])) * 60",
                                  "{{channel}} {{status}}")], decimals=1))
        .with_panel(series("Rule evaluation failures", "short",
                           "Failed rule evaluations per interval (a broken recording or alerting rule).",
                           [query(short_group(f"sum by (rule_group) (increase({failures}[{RATE}]))"),
                                  "{{group}}")], limits=thresholds(BASE, (1, RED)), decimals=0))
    )
    return _finish(board)


# ---------------------------------------------------------------- 5. LLM experience


def cache_hit_ratio(by: str = "") -> str:
    """Hits over lookups (hits + misses), each side summed before dividing."""
    hits = f"{_sum(by)}(rate({gateway('llm_response_cache_hits_total')}[{RATE}]))"
    misses = f"{_sum(by)}(rate({gateway('llm_response_cache_misses_total')}[{RATE}]))"
    return f"{hits}\n/\n(\n{hits}\n+\n{misses}\n)"


def experience() -> dict:
    ttft_limits = thresholds(BASE, (alerts.TTFT_P95_SECONDS, RED))
    cache_limits = thresholds((None, ORANGE), (alerts.CACHE_HIT_RATIO_MIN, GREEN))
    share = thresholds((None, BLUE))
    streamed = gateway("llm_streamed_requests_total")
    cached_prompt_tokens = gateway("llm_cached_prompt_tokens_total")
    input_tokens = gateway("llm_tokens_total", ',token_type="input"')
    saved = gateway("llm_response_cache_saved_usd_total")
    entries = f"llm_response_cache_entries{{{GATEWAY}}}"
    ttft_objective = f"{alerts.TTFT_P95_SECONDS:g} s"
    hit_ratio_minimum = _pct(alerts.CACHE_HIT_RATIO_MIN)
    board = (
        dashboard("llmobs-experience", "LLM experience",
                  "What does a user of the chat feel, and what does the cache save? Time to first token and "
                  "streaming speed of streamed calls, and what the response cache and the provider's prompt cache "
                  "save, per model.", "now-1h")
        .with_variable(model_variable())
        .with_row(Row("Right now"))
        .with_panel(single("Time to first token p95", "s",
                           f"95 % of streamed calls showed their first token within this time (objective "
                           f"{ttft_objective}). Only streamed calls have a first token.",
                           [query(quantile(0.95, by=None, histogram=TTFT), "p95", instant=True)], ttft_limits,
                           span=4, decimals=2))
        .with_panel(single("Time per output token p95", "s",
                           "95 % of streamed calls, once their answer flowed, took at most this long per output "
                           "token.", [query(quantile(0.95, by=None, histogram=TIME_PER_OUTPUT_TOKEN), "p95",
                                            instant=True)], thresholds((None, BLUE)), span=4, decimals=4))
        .with_panel(single("Streamed share", "percentunit", "Share of provider calls that were streamed.",
                           [query(rate_ratio(streamed, requests()), "streamed", instant=True)], share, span=4,
                           decimals=0))
        .with_panel(single("Response-cache hit ratio", "percentunit",
                           f"Cacheable requests (with a seed) answered from the gateway's response cache, over all "
                           f"cacheable requests. Orange below {hit_ratio_minimum}.",
                           [query(cache_hit_ratio(), "hit ratio", instant=True)], cache_limits, span=4, decimals=0))
        .with_panel(single("Prompt-cache hit ratio", "percentunit",
                           "Share of prompt tokens the provider served from its prompt cache (token-weighted), "
                           "billed at the cached-input price.",
                           [query(rate_ratio(cached_prompt_tokens, input_tokens), "cached", instant=True)], share,
                           span=4, decimals=0))
        .with_panel(single("Saved by the response cache", "currencyUSD",
                           "What the response cache's hits did not spend over the time range: each hit saves what "
                           "its answer cost when it was stored.",
                           [query(f"sum(increase({saved}[$__range]))", "saved", instant=True)],
                           thresholds((None, BLUE)), span=4, decimals=4))
        .with_row(Row("Time to first token"))
        .with_panel(series("Time to first token p50 / p95 by model", "s",
                           "From the start of a streamed provider call to its first content chunk: the empty box a "
                           "chat user stares at (llm_time_to_first_token_seconds, streamed calls only). Dashed: the "
                           f"{ttft_objective} p95 objective.",
                           [query(quantile(0.5, histogram=TTFT), "{{model}} p50", "A", exemplar=True),
                            query(quantile(0.95, histogram=TTFT), "{{model}} p95", "B", exemplar=True)],
                           limits=ttft_limits, decimals=2))
        .with_panel(distribution("Time to first token distribution",
                                 "Streamed calls per second by time to first token, one row per bucket of "
                                 "llm_time_to_first_token_seconds: a band above the "
                                 f"{ttft_objective} row is a population of users waiting, whatever the p95.", TTFT))
        .with_row(Row("Streaming"))
        .with_panel(series("Time per output token p50 / p95 by model", "s",
                           "Once the answer flows: (last content chunk - first) / (output tokens - 1), per streamed "
                           "call (llm_time_per_output_token_seconds).",
                           [query(quantile(0.5, histogram=TIME_PER_OUTPUT_TOKEN), "{{model}} p50", "A"),
                            query(quantile(0.95, histogram=TIME_PER_OUTPUT_TOKEN), "{{model}} p95", "B")],
                           span=6, decimals=4))
        .with_panel(series("Streaming speed by model", "suffix: tokens/s",
                           "Output tokens per second a reader sees once the answer flows: streamed calls over the "
                           "sum of their times per output token, i.e. 1 / mean time per output token.",
                           [query(rate_ratio(gateway(f"{TIME_PER_OUTPUT_TOKEN}_count"),
                                             gateway(f"{TIME_PER_OUTPUT_TOKEN}_sum"), by="model"), "{{model}}")],
                           span=6, decimals=0))
        .with_panel(series("Streamed share by model", "percentunit",
                           "Streamed provider calls over all provider calls, per model (both summed by model).",
                           [query(rate_ratio(streamed, requests(), by="model"), "{{model}}")], span=6, maximum=1,
                           decimals=0))
        .with_panel(series("Client disconnects per minute by model", "suffix: /min",
                           "Streamed calls whose client hung up before the answer ended (booked with finish_reason "
                           "cancelled): impatient users, or a client timeout shorter than the answer.",
                           [query(f"sum by (model) (rate({gateway('llm_client_disconnects_total')}[{RATE}])) * 60",
                                  "{{model}}")], span=6, decimals=1))
        .with_row(Row("Caches"))
        .with_panel(series("Response-cache hit ratio by model", "percentunit",
                           "Hits over lookups (hits + misses) of cacheable requests, for the whole gateway and per "
                           "model; each side summed before dividing, never an average of per-model ratios. Dashed: "
                           f"the {hit_ratio_minimum} minimum.",
                           [query(cache_hit_ratio(), "all models", "A"),
                            query(cache_hit_ratio(by="model"), "{{model}}", "B")],
                           limits=cache_limits, maximum=1, decimals=0))
        .with_panel(series("Saved by the response cache per hour by model", "currencyUSD",
                           "US dollars per hour the response cache's hits did not spend, stacked.",
                           [query(f"sum by (model) (rate({saved}[{RATE}])) * 3600", "{{model}}")], stacked=True,
                           decimals=4))
        .with_panel(series("Prompt-cache hit ratio by model", "percentunit",
                           "Prompt tokens served from the provider's prompt cache over all prompt tokens, per model "
                           "(token-weighted). A drop with steady traffic: the shared prompt prefix changed.",
                           [query(rate_ratio(cached_prompt_tokens, input_tokens, by="model"), "{{model}}")],
                           span=8, maximum=1, decimals=0))
        .with_panel(series("Response-cache bypasses by reason", "reqps",
                           "Requests that skipped the response cache: no_seed (not cacheable) or requested "
                           "(\"cache\": {\"no-cache\": true}). No model label, so the model filter does not apply.",
                           [query(f"sum by (reason) (rate(llm_response_cache_bypassed_total{{{GATEWAY}}}[{RATE}]))",
                                  "{{reason}}")], span=8, stacked=True))
        .with_panel(series("Cached answers", "short", "Answers the response cache holds (gateway gauge).",
                           [query(f"sum({entries})", "entries")], span=8, decimals=0))
    )
    return _finish(board)


# ---------------------------------------------------------------- 6. Resilience

# Rate-limit headroom (remaining / limit of the provider's window) below which a panel turns red: LLMRateLimitHeadroomLow's.
RATELIMIT_HEADROOM_MIN = alerts.RATELIMIT_HEADROOM_MIN
ROUTED = "llm_routed_requests_total"


def routed() -> str:
    """Chat requests answered by a provider call, by requested_model and served_model, of the models $model selects
    (as asked for)."""
    return f'{ROUTED}{{{GATEWAY},requested_model=~"$model"}}'


def served_elsewhere_share(by: str = "") -> str:
    """Requests served by another model than the one asked for, over all requests: the routed series whose
    served_model differs from their requested_model (PromQL cannot compare two labels in a selector, so the series
    with equal labels are built with label_replace and removed with `unless`), each side summed before dividing; 0
    where no request was served elsewhere."""
    rates = f"rate({routed()}[{RATE}])"
    same_model = (f'label_replace(sum by (served_model) ({rates}), "requested_model", "$1", "served_model", '
                  '"(.+)")')
    elsewhere = f"{_sum(by)}(\n{rates}\nunless on (requested_model, served_model)\n{same_model}\n)"
    # `or 0 * ...`: 0 % for a model no request of which was ever served elsewhere (no such series yet)
    return f"(\n{elsewhere}\nor\n0 * {_sum(by)}({rates})\n)\n/\n{_sum(by)}({rates})"


def headroom(by: str = "model, kind") -> str:
    """What is left of the provider's rate-limit window, as a share of the limit (llmsim's x-ratelimit headers)."""
    return (f"min by ({by}) ({gateway('llm_ratelimit_remaining')})\n/\n"
            f"max by ({by}) ({gateway('llm_ratelimit_limit')})")


def resilience() -> dict:
    headroom_limits = thresholds((None, RED), (RATELIMIT_HEADROOM_MIN, GREEN))
    rate_limited = gateway("llm_provider_errors_total", ',error_type="rate_limited"')
    rate_limited_limits = thresholds(BASE, (alerts.RATE_LIMITED_RATIO, ORANGE))
    fallbacks = f'llm_fallbacks_total{{{GATEWAY},from_model=~"$model"}}'
    transitions = gateway("llm_circuit_breaker_transitions_total")
    headroom_minimum = _pct(RATELIMIT_HEADROOM_MIN)
    board = (
        dashboard("llmobs-resilience", "Resilience",
                  "Does the gateway keep answering when a model fails? Circuit breakers, fallbacks, the degradation "
                  "tier and the provider's rate-limit headroom (docs/reliability.md).", "now-1h")
        .with_variable(model_variable())
        .with_row(Row("Right now"))
        .with_panel(degradation_tier_stat(span=6))
        .with_panel(breaker_state_stat(span=6))
        .with_panel(single("Served by another model", "percentunit",
                           "Share of chat requests answered by another model than the one asked for (a fallback, or "
                           "a downgrade by the monthly budget policy): llm_routed_requests_total with served_model "
                           "different from requested_model, over all of them.",
                           [query(served_elsewhere_share(), "served elsewhere", instant=True)],
                           thresholds(BASE, (0.01, YELLOW), (0.25, ORANGE)), span=6, decimals=1))
        .with_panel(single("Lowest rate-limit headroom", "percentunit",
                           "The smallest share of any model's provider rate-limit window (requests or tokens) left "
                           f"at the last answer. Red below {headroom_minimum}: 429s are near.",
                           [query(f"min(\n{headroom('model, kind')}\n)", "headroom", instant=True)],
                           headroom_limits, span=6, decimals=0))
        .with_row(Row("Circuit breakers and degradation"))
        .with_panel(timeline("Circuit breaker state by model",
                             "Each model's breaker over time (llm_circuit_breaker_state): closed, open (calls go to "
                             "the model's fallbacks for the reset time) or half-open (one trial call: a success "
                             "closes it, a failure opens it again). Only models with fallbacks have a breaker.",
                             [query(BREAKER_STATE, "{{model}}")], BREAKER_STATES))
        .with_panel(timeline("Degradation tier",
                             "The gateway's degradation tier over time: full service, degraded, last resort only, "
                             "cache only. No model label: the model filter does not apply.",
                             [query(DEGRADATION_TIER, "tier")], TIER_STATES))
        .with_panel(series("Circuit breaker transitions", "short",
                           "Breaker state changes per interval, by model and the state entered "
                           "(llm_circuit_breaker_transitions_total): opened, half-opened, closed. A model flapping "
                           "between opened and half-opened is still failing.",
                           [query(f"sum by (model, to_state) (increase({transitions}[{RATE}]))",
                                  "{{model}} {{to_state}}")], decimals=0))
        .with_panel(series("Fallbacks per minute", "suffix: /min",
                           "Chat requests handed from a model that failed (or whose breaker was open) to the next of "
                           "its chain, by from → to and the outcome of the attempt on the next model "
                           "(llm_fallbacks_total): success, error, circuit_open.",
                           [query(f"sum by (from_model, to_model, outcome) (rate({fallbacks}[{RATE}])) * 60",
                                  "{{from_model}} → {{to_model}} {{outcome}}")], stacked=True, decimals=1))
        .with_panel(series("Served by another model, by requested model", "percentunit",
                           "Per model asked for: the share of its chat requests another model answered (each side "
                           "summed by requested_model before dividing).",
                           [query(served_elsewhere_share(by="requested_model"), "{{requested_model}}")],
                           maximum=1, decimals=0))
        .with_panel(series("Requests by requested and served model", "reqps",
                           "Chat requests per second answered by a provider call, by the model asked for and the "
                           "model that served (llm_routed_requests_total).",
                           [query(f"sum by (requested_model, served_model) (rate({routed()}[{RATE}]))",
                                  "{{requested_model}} → {{served_model}}")], stacked=True))
        .with_row(Row("Provider rate limits"))
        .with_panel(series("Rate-limit headroom by model and kind", "percentunit",
                           "What the provider's window holds after the last answer, as a share of its limit "
                           "(llm_ratelimit_remaining / llm_ratelimit_limit, from the x-ratelimit headers), per "
                           f"model and kind (requests, tokens). Dashed: {headroom_minimum}.",
                           [query(headroom(), "{{model}} {{kind}}")], limits=headroom_limits, maximum=1,
                           decimals=0))
        .with_panel(series("Rate-limit remaining by model and kind", "short",
                           "Requests and tokens left in the provider's window at the last answer, against the "
                           "limit (dashed lines).",
                           [query(f"min by (model, kind) ({gateway('llm_ratelimit_remaining')})",
                                  "{{model}} {{kind}} remaining", "A"),
                            query(f"max by (model, kind) ({gateway('llm_ratelimit_limit')})",
                                  "{{model}} {{kind}} limit", "B")], decimals=0))
        .with_panel(series("429s per second by model", "reqps",
                           "Provider calls refused with 429 (llm_provider_errors_total{error_type=\"rate_limited\"}): "
                           "the caller's rate, not the model's health, so no fallback and no breaker.",
                           [query(f"sum by (model) (rate({rate_limited}[{RATE}]))", "{{model}}")]))
        .with_panel(series("429 share by model", "percentunit",
                           "Rate-limited calls over all provider calls, per model (both summed by model). Dashed: "
                           f"the {_pct(alerts.RATE_LIMITED_RATIO)} threshold of LLMRateLimited.",
                           [query(rate_ratio(rate_limited, requests(), by="model"), "{{model}}")],
                           limits=rate_limited_limits, maximum=1, decimals=0))
    )
    return _finish(board)


# ---------------------------------------------------------------- 7. Quality and budgets


def mean_score(by: str, window: str = RATE, extra: str = "") -> str:
    """The mean of llm_quality_score: a ratio of the summed rates of its _sum and _count."""
    return rate_ratio(gateway("llm_quality_score_sum", extra), gateway("llm_quality_score_count", extra), window, by)


def quality_and_budgets() -> dict:
    score_limits = thresholds((None, BLUE))
    feedback = gateway("llm_feedback_total")
    retrieval = f"llm_retrieval_relevance{{{GATEWAY}}}"
    budgets = catalog.load().monthly_budgets.monthly_usd
    department_limits = thresholds(BASE, (alerts.DEPARTMENT_BUDGET_INFO, YELLOW),
                                   (alerts.DEPARTMENT_BUDGET_WARNING, ORANGE), (alerts.DEPARTMENT_BUDGET_CRITICAL, RED))
    spent = f"llm_budget_spent_usd{{{GATEWAY},{DEPARTMENT}}}"
    monthly = f"llm_budget_monthly_usd{{{GATEWAY},{DEPARTMENT}}}"
    projected = f"llm_budget_projected_usd{{{GATEWAY},{DEPARTMENT}}}"
    actions = f"llm_budget_policy_actions_total{{{GATEWAY},{DEPARTMENT}}}"
    board = (
        dashboard("llmobs-quality", "Quality and budgets",
                  "Are the answers good, do users like them, and will each department's monthly budget last? Answer "
                  "scores, retrieval relevance, user feedback, and the monthly budgets with their policy.", "now-1h")
        .with_variable(model_variable())
        .with_variable(
            QueryVariable("department").label("Department")
            .description("Departments with a monthly budget (stack/catalog.yaml budgets.monthly_usd)")
            .datasource(_ds()).query(f"label_values(llm_budget_monthly_usd{{{GATEWAY}}}, department)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*").current(ALL))
        .with_row(Row("Answer quality"))
        .with_panel(single("Mean score by evaluator", "none",
                           "Mean score (0..1) of the answers over the time range, per evaluator: relevance (the "
                           "answer's share of the question's content words), groundedness (only answers built from "
                           "retrieved passages: the agent workflow), answered (0 for a refusal or an empty answer).",
                           [query(mean_score("evaluator", "$__range"), "{{evaluator}}", instant=True)],
                           score_limits, span=8, decimals=2))
        .with_panel(series("Mean score by model and evaluator", "none",
                           "sum(rate(llm_quality_score_sum)) / sum(rate(llm_quality_score_count)) by model and "
                           "evaluator: a drop is drifted answers (llmsim's quality_drift) or refusals.",
                           [query(mean_score("model, evaluator"), "{{model}} {{evaluator}}")], span=16, maximum=1,
                           decimals=2))
        .with_panel(distribution("Score distribution (relevance and groundedness)",
                                 "Scored answers per second by score, one row per bucket of llm_quality_score "
                                 "(0.1 wide): healthy answers light the top rows; drifted ones a band near 0.",
                                 "llm_quality_score", extra=',evaluator=~"relevance|groundedness"',
                                 bucket_unit="none"))
        .with_panel(series("Retrieval relevance", "none",
                           "Mean relevance of the agent workflow's retrieval step (the best runbook passage's share "
                           "of the question's content words, llm_retrieval_relevance). No model label: the model "
                           "filter does not apply.",
                           [query(rate_ratio(f"llm_retrieval_relevance_sum{{{GATEWAY}}}",
                                             f"llm_retrieval_relevance_count{{{GATEWAY}}}"), "mean relevance")],
                           maximum=1, decimals=2))
        .with_row(Row("User feedback"))
        .with_panel(series("Feedback per minute by model and rating", "suffix: /min",
                           "Ratings callers sent with POST /v1/feedback (llm_feedback_total), up and down, counted "
                           "by the model that served the answer.",
                           [query(f"sum by (model, rating) (rate({feedback}[{RATE}])) * 60", "{{model}} {{rating}}")],
                           stacked=True, decimals=1))
        .with_panel(series("Negative feedback share by model", "percentunit",
                           "Thumbs down over all ratings, per model (both summed by model before dividing).",
                           [query(rate_ratio(gateway("llm_feedback_total", ',rating="down"'), feedback, by="model"),
                                  "{{model}}")], maximum=1, decimals=0))
        .with_row(Row("Monthly budgets"))
        .with_panel(dial("Monthly budget used", "percentunit",
                         "Month-to-date spend over each department's monthly budget (stack/catalog.yaml "
                         f"budgets.monthly_usd), one gauge per department. Yellow from "
                         f"{_pct(alerts.DEPARTMENT_BUDGET_INFO)}, orange from {_pct(alerts.DEPARTMENT_BUDGET_WARNING)}, "
                         f"red from {_pct(alerts.DEPARTMENT_BUDGET_CRITICAL)}: the LLMDepartmentBudget info, warning "
                         "and critical steps (at 100 % the policy refuses or downgrades). The cost dashboard shows "
                         "the same ratio as bars.",
                         query(f"sum by (department) ({spent})\n/\nmax by (department) ({monthly})",
                               "{{department}}", instant=True),
                         department_limits, maximum=1.2, span=24, height=6, decimals=0))
        .with_panel(series("Projected month-end spend vs budget", "currencyUSD",
                           "Where each department's month ends at its month-to-date pace "
                           "(llm_budget_projected_usd), in US dollars, beside its budget (dashed lines of the same "
                           f"department; budgets {', '.join(f'{k} {v:g}' for k, v in budgets.items())} USD).",
                           [query(f"sum by (department) ({projected})", "{{department}} projected", "A"),
                            query(f"max by (department) ({monthly})", "{{department}} budget", "B")], decimals=0))
        .with_panel(series("Remaining budget by department", "currencyUSD",
                           "Budget minus month-to-date spend (llm_budget_remaining_usd); below 0 the department is "
                           "over its budget.",
                           [query(f"sum by (department) (llm_budget_remaining_usd{{{GATEWAY},{DEPARTMENT}}})",
                                  "{{department}}")], minimum=None, decimals=0))
        .with_panel(series("Budget policy actions per minute", "suffix: /min",
                           "Requests the monthly budget policy acted on once a department reached 100 %: refused "
                           "(HTTP 402) or downgraded to the cheapest model (llm_budget_policy_actions_total).",
                           [query(f"sum by (department, action) (rate({actions}[{RATE}])) * 60",
                                  "{{department}} {{action}}")], span=24, decimals=1))
    )
    return _finish(board)


DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("operations", "llmobs-operations", operations),
    DashboardSpec("cost", "llmobs-cost", cost_and_attribution),
    DashboardSpec("slo", "llmobs-slo", slo),
    DashboardSpec("meta-monitoring", "llmobs-meta", monitoring),
    DashboardSpec("experience", "llmobs-experience", experience),
    DashboardSpec("resilience", "llmobs-resilience", resilience),
    DashboardSpec("quality", "llmobs-quality", quality_and_budgets),
)


def render_all() -> dict[str, str]:
    """Relative path under stack/grafana/dashboards -> file text, for every dashboard."""
    return {spec.path: json.dumps(spec.build(), indent=2, sort_keys=False) + "\n" for spec in DASHBOARDS}
