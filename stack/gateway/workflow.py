"""The multi-step agent workflow: classify → answer → format, three provider calls under one request id.

Traced as one `invoke_agent workflow` span (GenAI semantic conventions) holding a `step <name>` span per step, each
holding the step's provider call (`chat <model>`, see calls.py):

    POST /v1/agent/workflow                  SERVER   (FastAPI instrumentation)
    └── invoke_agent workflow                INTERNAL gen_ai.operation.name=invoke_agent, provider, llm.cost_usd
        ├── step classify                    INTERNAL llm.step=classify
        │   └── chat sim-fast                CLIENT   gen_ai.* (stack/genai.py), llm.cost_usd
        │       └── POST /v1/chat/completions  SERVER  (llmsim, joined through the traceparent header)
        ├── step answer
        │   ├── retrieval runbooks           INTERNAL gen_ai.operation.name=retrieval, llm.retrieval.relevance
        │   └── chat <model> ...             the answer, given the passages; its gen_ai.evaluation.result events
        └── step format  ...

Each step's call goes through the fallback chain of its model (fallback.py): when sim-reasoning is down, the answer
step is served by sim-balanced (step `answer:fallback1`) and the step's report names both models.

The answer step first retrieves passages of the course's runbooks (retrieval.py) and gives them to the model in a
system message; its answer is scored (evaluation.py), groundedness against those passages included.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from stack import genai
from stack.gateway.calls import Caller, CallRecorder
from stack.gateway.fallback import serve_with_fallbacks
from stack.gateway.provider import ProviderError
from stack.gateway.retrieval import CORPUS_ID, Corpus, Retrieval, context_message
from stack.gateway.routing import Router

CORPUS = Corpus()

HELPER_MODEL = "sim-fast"
AGENT_NAME = "workflow"
STEPS = ("classify", "answer", "format")


async def run_workflow(recorder: CallRecorder, router: Router, caller: Caller, question: str,
                       answer_model: str) -> dict:
    steps = [
        ("classify", HELPER_MODEL, lambda _: f"Classify the intent of this question in one word: {question}"),
        ("answer", answer_model, lambda previous: f"Intent: {previous}\nAnswer the question: {question}"),
        ("format", HELPER_MODEL, lambda previous: f"Format this answer as three short bullet points:\n{previous}"),
    ]
    tracer = recorder.tracer
    previous = ""
    report = []
    total_cost = 0.0
    agent_span_name = f"{genai.OPERATION_INVOKE_AGENT} {AGENT_NAME}"
    with tracer.start_as_current_span(agent_span_name, kind=SpanKind.INTERNAL) as workflow_span:
        recording = workflow_span.is_recording()
        if recording:
            workflow_span.set_attributes({
                genai.OPERATION_NAME: genai.OPERATION_INVOKE_AGENT, genai.AGENT_NAME: AGENT_NAME,
                genai.PROVIDER_NAME: genai.PROVIDER, genai.REQUEST_MODEL: answer_model,
                "openinference.span.kind": "AGENT",
                "llm.request_id": caller.request_id, "llm.department": caller.department,
                "llm.application": caller.application,
            })
        retrieval: Retrieval | None = None
        for step, model, prompt in steps:
            messages = [{"role": "user", "content": prompt(previous)}]
            with tracer.start_as_current_span(f"step {step}", attributes={
                    "llm.step": step, "openinference.span.kind": "CHAIN"}):
                if step == "answer":
                    retrieval = _retrieve(recorder, question)
                    messages.insert(0, context_message(retrieval))
                payload = {"model": model, "messages": messages}
                try:
                    result, served = await serve_with_fallbacks(
                        router, recorder.metrics, model, payload,
                        lambda name, routed, requested, more, step=step: recorder.call(
                            caller, name, routed, requested, more, evaluated=step == "answer"), step)
                except ProviderError as error:
                    error.step = step
                    raise
            previous = result.reply.text
            total_cost += result.cost_usd
            report.append({"step": step, "model": served, **({"requested_model": model} if served != model else {}),
                           "input_tokens": result.reply.input_tokens,
                           "output_tokens": result.reply.output_tokens, "cost_usd": result.cost_usd,
                           "duration_seconds": round(result.duration_seconds, 4)})
        if recording:
            workflow_span.set_attribute("llm.cost_usd", total_cost)
    found = retrieval or Retrieval((), 0.0)
    return {"request_id": caller.request_id, "answer": previous, "steps": report, "cost_usd": total_cost,
            "retrieval": {"relevance": round(found.relevance, 4), "sources": [p.source for p in found.passages]}}


def _retrieve(recorder: CallRecorder, question: str) -> Retrieval:
    with recorder.tracer.start_as_current_span(f"{genai.OPERATION_RETRIEVAL} {CORPUS_ID}",
                                               kind=SpanKind.INTERNAL) as span:
        retrieval = CORPUS.retrieve(question)
        if span.is_recording():
            span.set_attributes({genai.OPERATION_NAME: genai.OPERATION_RETRIEVAL, genai.DATA_SOURCE_ID: CORPUS_ID,
                                 "openinference.span.kind": "RETRIEVER", "llm.retrieval.relevance": retrieval.relevance,
                                 "llm.retrieval.documents": len(retrieval.passages)})
    recorder.metrics.record_retrieval(retrieval.relevance)
    return retrieval
