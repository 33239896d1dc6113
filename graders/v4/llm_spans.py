"""Lab V4, exercise 5: what an LLM call's span holds that an HTTP call's does not, as the gateway records it.

(a) a streamed call: an `llm.first_token` event at the first chunk that carries content, and
    gen_ai.response.time_to_first_chunk (stack/gateway/streamed_call.py);
(b) a fallback: every attempt a `chat <model>` span under one step span, the failed one ERROR with error.type, the
    step's gen_ai.request.model the model asked for and gen_ai.response.model the one that answered
    (stack/gateway/fallback.py, calls.py);
(c) retrieval as its own span with its relevance, and the answer's scores as gen_ai.evaluation.result events on the
    chat span (stack/gateway/workflow.py, retrieval.py, evaluation.py).

Everything runs in-process into an InMemorySpanExporter: the stream is a scripted generator that records when it
handed out each chunk, the provider is the course's simulated one (graders/v4/traces.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from graders.labcheck import expect, expect_equal, fail, reports_stubs
from graders.v4.traces import (PROVIDER, ProviderCallError, RecordingClient, check_current_conventions,
                               in_memory_tracer, simulated_provider)
from stack import genai
from stack.gateway.evaluation import evaluate
from stack.gateway.retrieval import CORPUS_ID, Corpus, Retrieval, context_message
from stack.gateway.streamed_call import FIRST_TOKEN_EVENT

__all__ = ["FIRST_TOKEN_EVENT", "CORPUS_ID", "context_message", "evaluate", "retrieve", "ScriptedStream",
           "ProviderCallError", "FALLBACK_STEP", "RAG_STEP"]

# ---------------------------------------------------------------- (a) a streamed call


@dataclass
class ScriptedStream:
    """An OpenAI-style chat completion stream: a role-only chunk at once (content ""), a pause before the first
    content chunk, content chunks `gap_seconds` apart, a finish chunk and a usage-only chunk. `arrivals` holds
    time.time_ns() of each chunk as it was handed out, and whether it carried content."""

    words: tuple[str, ...]
    first_token_seconds: float = 0.15
    gap_seconds: float = 0.02
    input_tokens: int = 42
    arrivals: list[tuple[int, bool]] = field(default_factory=list)

    def __iter__(self) -> Iterator[dict]:
        yield self._hand_out({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, False)
        time.sleep(self.first_token_seconds)
        for number, word in enumerate(self.words):
            if number:
                time.sleep(self.gap_seconds)
            yield self._hand_out({"choices": [{"index": 0, "delta": {"content": word + " "}}]}, True)
        yield self._hand_out({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, False)
        yield self._hand_out({"choices": [], "usage": {"prompt_tokens": self.input_tokens,
                                                       "completion_tokens": len(self.words),
                                                       "total_tokens": self.input_tokens + len(self.words)}}, False)

    def _hand_out(self, chunk: dict, content: bool) -> dict:
        self.arrivals.append((time.time_ns(), content))
        return chunk

    def content_arrivals(self) -> list[int]:
        return [moment for moment, content in self.arrivals if content]


STREAM_WORDS = ("Check", "the", "p95", "panel", "first", "then", "its", "exemplar")
HIDDEN_STREAM_WORDS = ("Budgets", "reset", "monthly", "in", "UTC")
TTFC_TOLERANCE_SECONDS = 0.05  # the student's clock vs the stream's: both read right after the chunk arrives


def _only_span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    named = [s for s in spans if s.name == name]
    expect(len(named) == 1, f"spans named {name!r}: expected 1, got {len(named)} (your spans: "
           f"{[s.name for s in spans] or 'none'})", "one span each, named as the exercise says (`step answer`, "
           "`chat <model>` from genai.chat_span_name)")
    return named[0]


def _check_stream(traced_stream: Callable, model: str, words: tuple[str, ...], first_token_seconds: float) -> None:
    exporter = InMemorySpanExporter()
    stream = ScriptedStream(words, first_token_seconds=first_token_seconds)
    text = traced_stream(in_memory_tracer(exporter), iter(stream), model)
    spans = list(exporter.get_finished_spans())
    span = _only_span(spans, genai.chat_span_name(model))
    check_current_conventions(spans)
    expect_equal(span.kind, SpanKind.CLIENT, f"kind of {span.name!r}", "a call to the provider is a CLIENT span")
    for key, value in ((genai.PROVIDER_NAME, PROVIDER), (genai.REQUEST_MODEL, model), (genai.REQUEST_STREAM, True),
                       (genai.USAGE_OUTPUT_TOKENS, len(words)), (genai.USAGE_INPUT_TOKENS, stream.input_tokens)):
        seen = span.attributes.get(key)
        if seen != value or type(seen) is not type(value):
            hint = ("the last chunk carries usage (prompt_tokens, completion_tokens): ints" if "usage" in key
                    else "see the attribute table of exercise 5 (a)")
            fail(f"attribute {key} of {span.name!r}", value, seen, hint)
    expect_equal(text, "".join(w + " " for w in words), "the text traced_stream returned",
                 "join the content of every chunk's delta (some chunks have none)")
    content = stream.content_arrivals()
    events = [e for e in span.events if e.name == FIRST_TOKEN_EVENT]
    expect(len(events) == 1, f"{FIRST_TOKEN_EVENT!r} events on {span.name!r}: expected 1, got {len(events)}",
           f"span.add_event({FIRST_TOKEN_EVENT!r}) once, when the first chunk with content arrives")
    moment = events[0].timestamp
    if moment < content[0]:
        fail(f"when the {FIRST_TOKEN_EVENT} event was added", "at the first chunk WITH CONTENT",
             f"{(content[0] - moment) / 1e6:.0f} ms before it",
             'the first chunk only says role "assistant" with content "": no token has arrived yet')
    if moment >= content[-1]:
        fail(f"when the {FIRST_TOKEN_EVENT} event was added", "at the first content chunk",
             f"at (or after) the last chunk, {(moment - content[0]) / 1e6:.0f} ms late",
             "the event marks the FIRST token: add it inside the loop the moment a chunk first has content, not "
             "after the stream ends")
    expect(moment < content[1], f"the {FIRST_TOKEN_EVENT} event came after the second content chunk",
           "add it when the first content chunk arrives")
    ttfc = span.attributes.get(genai.RESPONSE_TIME_TO_FIRST_CHUNK)
    expected = (content[0] - (span.start_time or 0)) / 1e9
    expect(isinstance(ttfc, float), f"attribute {genai.RESPONSE_TIME_TO_FIRST_CHUNK} of {span.name!r}: expected "
           f"seconds as a float, got {ttfc!r}", "genai.RESPONSE_TIME_TO_FIRST_CHUNK: seconds from the start of the "
           "call to the first content chunk (time.perf_counter() differences are floats)")
    if not math.isclose(ttfc, expected, abs_tol=TTFC_TOLERANCE_SECONDS):
        total = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
        hint = ("that is in milliseconds: the attribute is in SECONDS" if math.isclose(ttfc, expected * 1000,
                                                                                    rel_tol=0.3)
                else "that is the whole stream's duration: stop the clock at the first content chunk, not the last"
                if math.isclose(ttfc, total, abs_tol=TTFC_TOLERANCE_SECONDS)
                else "that is the role-only first chunk: no token had arrived yet" if ttfc < expected / 2
                else "seconds from the start of the span to the first chunk with content")
        fail(f"{genai.RESPONSE_TIME_TO_FIRST_CHUNK} of {span.name!r} (s)", round(expected, 3), round(ttfc, 3), hint)


@reports_stubs
def check_streamed_span(traced_stream: Callable, hidden: bool = False) -> None:
    _check_stream(traced_stream, "sim-balanced", STREAM_WORDS, 0.15)
    if hidden:
        _check_stream(traced_stream, "sim-fast", HIDDEN_STREAM_WORDS, 0.2)


# ---------------------------------------------------------------- (b) a fallback as attempts in one trace


FALLBACK_STEP = "answer"
FALLBACK_PROMPT = "Summarise last night's provider outage in two sentences."


@dataclass
class FallbackRun:
    spans: list[ReadableSpan]
    calls: list[tuple[dict, int, dict | None]]
    result: Any
    error: BaseException | None


def _run_fallback(answer_with_fallbacks: Callable, chain: tuple[str, ...], failing: tuple[str, ...]) -> FallbackRun:
    exporter = InMemorySpanExporter()
    client = RecordingClient(simulated_provider(exporter, failing_models=failing))
    result, error = None, None
    try:
        result = answer_with_fallbacks(in_memory_tracer(exporter), client, FALLBACK_PROMPT, list(chain))
    except NotImplementedError:
        raise
    except Exception as caught:  # noqa: BLE001 - the check judges what was raised
        error = caught
    mine = [s for s in exporter.get_finished_spans() if s.resource.attributes.get("service.name") != PROVIDER]
    return FallbackRun(mine, client.calls, result, error)


def _check_fallback(answer_with_fallbacks: Callable, chain: tuple[str, ...], failing: tuple[str, ...]) -> None:
    run = _run_fallback(answer_with_fallbacks, chain, failing)
    served = next(model for model in chain if model not in failing)
    attempts = list(chain[:chain.index(served) + 1])
    if run.error is not None:
        fail(f"answer_with_fallbacks({list(chain)}) with {', '.join(failing) or 'no model'} down",
             f"an answer from {served}", f"{type(run.error).__name__}: {run.error}",
             "catch ProviderCallError of an attempt (after its span ended) and try the next model of the chain")
    expect_equal([request.get("model") for request, _, _ in run.calls], attempts, "the models called, in order",
                 "call the chain's models in order until one answers, and stop there")
    check_current_conventions(run.spans)
    steps = [s for s in run.spans if s.name == f"step {FALLBACK_STEP}"]
    expect(len(steps) == 1, f"'step {FALLBACK_STEP}' spans: expected 1, got {len(steps)}",
           "the attempts are children of ONE step span: open it once, then loop over the chain inside it (a new "
           "step span per attempt splits one answer into several)")
    step = steps[0]
    expect(step.parent is None, f"'step {FALLBACK_STEP}' has a parent", "it is the root of this exercise's trace")
    chats = sorted((s for s in run.spans if s.name.startswith("chat ")), key=lambda s: s.start_time or 0)
    expect_equal([s.name for s in chats], [genai.chat_span_name(m) for m in attempts], "the attempts' chat spans",
                 "one `chat <model>` span per attempt, named after the model called")
    for chat in chats:
        expect(chat.parent is not None and chat.parent.span_id == step.context.span_id
               and chat.context.trace_id == step.context.trace_id,
               f"{chat.name!r} is not a child of 'step {FALLBACK_STEP}'",
               "every attempt inside the step span's `with` block: one trace shows the whole fallback")
        expect_equal(chat.kind, SpanKind.CLIENT, f"kind of {chat.name!r}", "a provider call is a CLIENT span")
    for chat, model in zip(chats, attempts):
        expect_equal(chat.attributes.get(genai.REQUEST_MODEL), model, f"{genai.REQUEST_MODEL} of {chat.name!r}",
                     "the model this attempt called")
        expect_equal(chat.attributes.get(genai.PROVIDER_NAME), PROVIDER, f"{genai.PROVIDER_NAME} of {chat.name!r}")
    for chat in chats[:-1]:
        expect_equal(chat.status.status_code, StatusCode.ERROR, f"status of the failed attempt's span {chat.name!r}",
                     "let ProviderCallError leave the chat span's `with` block (it records the exception and sets "
                     "ERROR), and catch it outside, in the step")
        expect_equal(chat.attributes.get("error.type"), "500", f"error.type of the failed attempt {chat.name!r}",
                     "the HTTP status code as text, set before raising")
    answered = chats[-1]
    expect(answered.status.status_code is not StatusCode.ERROR, f"the answering attempt {answered.name!r} is ERROR")
    expect_equal(answered.attributes.get(genai.RESPONSE_MODEL), served, f"{genai.RESPONSE_MODEL} of {answered.name!r}",
                 "the reply's `model`: the model that answered")
    expect_equal(step.attributes.get(genai.REQUEST_MODEL), chain[0], f"{genai.REQUEST_MODEL} of the step",
                 "the model the request asked for: the chain's first")
    seen = step.attributes.get(genai.RESPONSE_MODEL)
    if seen != served:
        fail(f"{genai.RESPONSE_MODEL} of the step", served, seen,
             "the model that ANSWERED (the fallback's reply's `model`), not the one asked for: cost, latency and "
             "quality belong to the model that served" if seen == chain[0] else "the reply's `model`")
    expect(step.status.status_code is not StatusCode.ERROR, f"'step {FALLBACK_STEP}' is ERROR although a fallback "
           "answered", "a failed attempt is an error on ITS span; the step succeeded")
    model = run.result.get("model") if isinstance(run.result, dict) else None
    expect_equal(model, served, "the `model` answer_with_fallbacks returned", 'return {"answer": ..., "model": ...}')


@reports_stubs
def check_fallback_trace(answer_with_fallbacks: Callable, hidden: bool = False) -> None:
    _check_fallback(answer_with_fallbacks, ("sim-reasoning", "sim-balanced"), ("sim-reasoning",))
    if hidden:
        _check_fallback(answer_with_fallbacks, ("sim-reasoning", "sim-balanced", "sim-fast"),
                        ("sim-reasoning", "sim-balanced"))
        _check_fallback(answer_with_fallbacks, ("sim-balanced", "sim-fast"), ())


# ---------------------------------------------------------------- (c) retrieval and evaluation


RAG_STEP = "answer"
RAG_QUESTION = "Why is the p95 latency of the answer step so high?"
HIDDEN_RAG_QUESTION = "A department went over its monthly budget: who gets paged?"
_CORPUS = Corpus()


def retrieve(question: str) -> Retrieval:
    """The runbook passages that best match the question, as the gateway's answer step retrieves them."""
    return _CORPUS.retrieve(question)


def _check_rag(traced_rag: Callable, question: str, model: str) -> None:
    exporter = InMemorySpanExporter()
    client = RecordingClient(simulated_provider(exporter))
    traced_rag(in_memory_tracer(exporter), client, question, model)
    spans = [s for s in exporter.get_finished_spans() if s.resource.attributes.get("service.name") != PROVIDER]
    check_current_conventions(spans)
    expected = retrieve(question)
    name = f"{genai.OPERATION_RETRIEVAL} {CORPUS_ID}"
    found = [s for s in spans if s.name == name]
    expect(len(found) == 1, f"spans named {name!r}: expected 1, got {len(found)} (your spans: "
           f"{[s.name for s in spans]})", "retrieval is its own step of the answer: its own span, so its time and "
           "its relevance show in the trace")
    retrieval = found[0]
    step = _only_span(spans, f"step {RAG_STEP}")
    chat = _only_span(spans, genai.chat_span_name(model))
    parent = next((s.name for s in spans if retrieval.parent and s.context.span_id == retrieval.parent.span_id), None)
    expect_equal(parent, step.name, f"parent of {name!r}",
                 "retrieve BEFORE the model call, beside it in the step (not inside the chat span)")
    expect((retrieval.end_time or 0) <= (chat.start_time or 0), f"{name!r} ends after {chat.name!r} starts",
           "retrieve first, then call the model with the passages")
    for key, value in ((genai.OPERATION_NAME, genai.OPERATION_RETRIEVAL), (genai.DATA_SOURCE_ID, CORPUS_ID),
                       ("llm.retrieval.documents", len(expected.passages))):
        expect_equal(retrieval.attributes.get(key), value, f"attribute {key} of {name!r}")
    relevance = retrieval.attributes.get("llm.retrieval.relevance")
    expect(isinstance(relevance, float) and math.isclose(relevance, expected.relevance, rel_tol=1e-9),
           f"llm.retrieval.relevance of {name!r}: expected {expected.relevance:.6f}, got {relevance!r}",
           "the Retrieval's relevance (the best passage's score), a float")
    ok = [(request, reply) for request, status, reply in client.calls if status == 200 and reply]
    expect_equal(len(ok), 1, "model calls made", "one call, with the passages in a system message")
    request, reply = ok[0]
    messages = request.get("messages") or []
    expect(any(m.get("role") == "system" and m.get("content") == context_message(expected)["content"]
               for m in messages), "the model was not given the retrieved passages",
           "messages = [context_message(found), {'role': 'user', 'content': question}]")
    scores = evaluate(messages, reply["choices"][0]["message"]["content"])
    events = [e for e in chat.events if e.name == genai.EVENT_EVALUATION_RESULT]
    if not events:
        on_span = genai.EVALUATION_NAME in (chat.attributes or {})
        fail(f"{genai.EVENT_EVALUATION_RESULT} events on {chat.name!r}", len(scores), 0,
             "scores written as span attributes overwrite each other (one evaluator survives): add one "
             f"span.add_event({genai.EVENT_EVALUATION_RESULT!r}, {{...}}) per score" if on_span
             else f"one span.add_event(genai.EVENT_EVALUATION_RESULT, attributes) per score, on the chat span")
    seen = [(e.attributes.get(genai.EVALUATION_NAME), e.attributes.get(genai.EVALUATION_SCORE_VALUE),
             e.attributes.get(genai.EVALUATION_SCORE_LABEL)) for e in events]
    want = [(s.evaluator, s.value, s.label) for s in scores]
    if seen != want:
        fail(f"the evaluation events (name, score, label) of {chat.name!r}", want, seen,
             "evaluate(messages, answer): the messages sent and the ANSWER the model gave (not the question), "
             "one event per score with genai.EVALUATION_NAME, EVALUATION_SCORE_VALUE, EVALUATION_SCORE_LABEL")


@reports_stubs
def check_rag_spans(traced_rag: Callable, hidden: bool = False) -> None:
    _check_rag(traced_rag, RAG_QUESTION, "sim-balanced")
    if hidden:
        _check_rag(traced_rag, HIDDEN_RAG_QUESTION, "sim-reasoning")
