"""The OpenTelemetry GenAI semantic-convention names the stack's spans use, taken from the
`opentelemetry-semantic-conventions` package (pinned in pyproject.toml) rather than typed as strings.

The course teaches the GenAI conventions of the semantic conventions version the pinned package was generated from
(SEMCONV_VERSION, its newest schema: 1.44.0 for 0.66b2). They are still "development" (incubating) upstream,
which is why they live in the package's `_incubating` module and may be renamed again: `gen_ai.system` became `gen_ai.provider.name` in semconv 1.37, and
no span the stack makes carries the old name (tests/test_tracing.py, tests/test_tracing_units.py).
docs/contract.md maps every gateway metric to its GenAI-convention counterpart."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.schemas import Schemas


def _newest_schema() -> Schemas:
    return max(Schemas, key=lambda s: tuple(int(part) for part in s.name[1:].split("_")))


SCHEMA_URL = _newest_schema().value  # e.g. https://opentelemetry.io/schemas/1.44.0
SEMCONV_VERSION = SCHEMA_URL.rsplit("/", 1)[1]  # the version the course teaches
PROVIDER_NAME_SINCE = "1.37.0"  # gen_ai.system was renamed gen_ai.provider.name in this version

# Span attributes
PROVIDER_NAME = _gen_ai.GEN_AI_PROVIDER_NAME  # "gen_ai.provider.name" (was gen_ai.system before 1.37)
OPERATION_NAME = _gen_ai.GEN_AI_OPERATION_NAME  # "gen_ai.operation.name"
REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL  # "gen_ai.request.model"
RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL  # "gen_ai.response.model"
RESPONSE_ID = _gen_ai.GEN_AI_RESPONSE_ID  # "gen_ai.response.id"
RESPONSE_FINISH_REASONS = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS  # "gen_ai.response.finish_reasons" (a list)
USAGE_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS  # "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS  # "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS  # "gen_ai.usage.cache_read.input_tokens"
REQUEST_STREAM = _gen_ai.GEN_AI_REQUEST_STREAM  # "gen_ai.request.stream"
REQUEST_SEED = _gen_ai.GEN_AI_REQUEST_SEED  # "gen_ai.request.seed"
RESPONSE_TIME_TO_FIRST_CHUNK = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK  # "gen_ai.response.time_to_first_chunk" (s)
EVALUATION_NAME = _gen_ai.GEN_AI_EVALUATION_NAME  # "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE  # "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL  # "gen_ai.evaluation.score.label"
DATA_SOURCE_ID = _gen_ai.GEN_AI_DATA_SOURCE_ID  # "gen_ai.data_source.id"
RETRIEVAL_QUERY_TEXT = _gen_ai.GEN_AI_RETRIEVAL_QUERY_TEXT  # "gen_ai.retrieval.query.text"
AGENT_NAME = _gen_ai.GEN_AI_AGENT_NAME  # "gen_ai.agent.name"
DEPRECATED_SYSTEM = _gen_ai.GEN_AI_SYSTEM  # "gen_ai.system": never set; tests assert no span carries it

# Values
OPERATION_CHAT = _gen_ai.GenAiOperationNameValues.CHAT.value  # "chat"
OPERATION_INVOKE_AGENT = _gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value  # "invoke_agent"
OPERATION_RETRIEVAL = _gen_ai.GenAiOperationNameValues.RETRIEVAL.value  # "retrieval"
# The event an evaluation result is recorded as (semconv 1.38+); the package has no constant for event names.
EVENT_EVALUATION_RESULT = "gen_ai.evaluation.result"
PROVIDER = "llmsim"  # not a well-known provider value: the simulated provider names itself

# Metric names of the conventions (docs/contract.md maps the gateway's Prometheus metrics to them)
METRIC_CLIENT_TOKEN_USAGE = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_CLIENT_OPERATION_DURATION = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_CLIENT_TIME_TO_FIRST_CHUNK = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK
METRIC_SERVER_REQUEST_DURATION = _gen_ai_metrics.GEN_AI_SERVER_REQUEST_DURATION
METRIC_SERVER_TIME_TO_FIRST_TOKEN = _gen_ai_metrics.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN
METRIC_SERVER_TIME_PER_OUTPUT_TOKEN = _gen_ai_metrics.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN


def chat_span_name(model: str) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, the conventions' span name for an inference call."""
    return f"{OPERATION_CHAT} {model}"


def finish_reasons(body: object) -> list[str]:
    """The finish reasons of an OpenAI-style chat completion body, one per choice (empty when it has none)."""
    try:
        choices = body["choices"]  # type: ignore[index]
        return [str(c["finish_reason"]) for c in choices if isinstance(c, dict) and c.get("finish_reason")]
    except (KeyError, TypeError):
        return []
