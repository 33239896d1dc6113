"""Answer quality: the cheap word-overlap scores of stack/answer_quality.py, and llmsim's answers they score - normal
ones relevant to the question and grounded in the request's passages, and the ones the `quality_drift` knob spoils
(off-topic, a share of them refusals) while everything else about the call stays the same."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stack import catalog, faults, tracing
from stack.answer_quality import content_words, groundedness, is_refusal, passages_of, question_of, relevance
from stack.llmsim.answers import REFUSALS, AnswerKind
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.generation import simulate
from stack.llmsim.settings import Settings as LlmsimSettings
from stack.prompts import question_pool
from stack.traffic import REPEATED_QUESTION_LENGTHS, REPEATED_QUESTIONS, REPEATED_QUESTIONS_SEED

MODELS = catalog.load().models
QUESTIONS = (
    "Which alert fires when too many requests to a model fail?",
    "How do I read the p95 latency of the gateway from its histogram?",
    "Why did the daily budget alert page the on-call engineer last night?",
    "Explain the difference between a counter and a gauge.",
    "What does the prompt cache hit ratio measure, and how is it computed?",
)
CONTEXT = ("You answer from the passages below only.\nContext:\n"
           "[1] LLMHighErrorRatio fires when more than five percent of a model's requests fail over the rate window.\n"
           "[2] histogram_quantile over summed bucket rates gives the gateway's p95 latency.\n"
           "[3] The daily budget alert compares the pro-rated spend with the catalog budget.\n"
           "[4] A counter only goes up; a gauge goes up and down. The cache hit ratio is cached prompt tokens over "
           "all input tokens.")


def _app() -> FastAPI:
    return create_llmsim(LlmsimSettings(seed=7, latency_scale=0.0), tracing=tracing.setup("llmsim", enabled=False))


def _messages(question: str, context: bool = False) -> list[dict]:
    return [*([{"role": "system", "content": CONTEXT}] if context else []), {"role": "user", "content": question}]


def _answers(drift: float, context: bool, refusal_share: float = 0.0, count: int = 200,
             questions: tuple[str, ...] = QUESTIONS) -> list[tuple[list[dict], object]]:
    """`count` seeded answers over the questions and the three models."""
    names = sorted(MODELS)
    found = []
    for n in range(count):
        messages = _messages(questions[n % len(questions)], context)
        found.append((messages, simulate(MODELS[names[n % len(names)]], messages, None, seed=n,
                                         quality_drift=drift, refusal_share=refusal_share)))
    return found


# ---------------------------------------------------------------------------------------------- the scores

def test_content_words_are_four_letters_or_more_and_not_function_words() -> None:
    assert content_words("Which alert fires when the p95 latency is high? Alert!") == ["alert", "fires", "latency",
                                                                                       "high"]
    assert content_words("") == [] and content_words("a an the of") == []


def test_relevance_is_the_share_of_the_question_found_in_the_answer() -> None:
    question = "Which alert fires when the p95 latency is high?"
    assert relevance(question, "The latency alert fires when p95 is high.") == 1.0
    assert relevance(question, "Latency is high.") == 0.5
    assert relevance(question, "Bake the bread at two hundred degrees.") == 0.0
    assert relevance(question, "ALERT: latency!") == 0.5, "case and punctuation do not matter"
    assert relevance("Hi, is it on?", "anything") == 1.0, "nothing to miss"


def test_groundedness_is_the_share_of_the_answer_found_in_the_passages() -> None:
    passages = ["The error ratio alert fires above five percent.", "Runbooks list triage steps."]
    assert groundedness(passages, "The alert fires above five percent.") == 1.0
    assert groundedness(passages, "The alert fires on Mondays.") == pytest.approx(2 / 3)
    assert groundedness(" ".join(passages), "Mondays, weekends.") == 0.0
    assert groundedness(passages, "") == 0.0 and groundedness(passages, "It is so.") == 0.0


@pytest.mark.parametrize("answer", [
    *REFUSALS, "I can't help with that.", "Sorry, I cannot assist with this request.",
    "I’m sorry, but I can’t do that.",
    "As an AI language model, I cannot provide that.", "  i am unable to answer  ", "", "   ", "...",
])
def test_refusals_and_empty_answers_are_detected(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize("answer", [
    "The alert fires when the ratio is high.", "I can help: the alert fires above five percent.",
    "Cannot is a word; this answer explains the gauge.", "Sorry for the delay: the gauge goes up and down.",
])
def test_answers_are_not_refusals(answer: str) -> None:
    assert not is_refusal(answer)


def test_question_and_passages_are_found_by_the_shared_convention() -> None:
    messages = [{"role": "system", "content": "Be brief.\nContext: first passage\n\nsecond passage\n"},
                {"role": "user", "content": "old question"}, {"role": "assistant", "content": "Context: not one"},
                {"role": "user", "content": "new question"}]
    assert question_of(messages) == "new question" and question_of([]) == ""
    assert passages_of(messages) == ["first passage", "second passage"]
    assert passages_of([{"role": "system", "content": "You are helpful. The context: none."}]) == [], \
        "only a line that starts with Context:"


# ---------------------------------------------------------------------------------------------- llmsim's answers

def test_normal_answers_are_relevant_and_grounded() -> None:
    for context in (False, True):
        scored = [(relevance(question_of(m), c.text), groundedness(passages_of(m), c.text), c)
                  for m, c in _answers(0.0, context)]
        assert all(c.answer is AnswerKind.NORMAL and not is_refusal(c.text) for _, _, c in scored)
        assert min(r for r, _, _ in scored) >= 0.5 and statistics.fmean(r for r, _, _ in scored) >= 0.95
        if context:
            assert statistics.fmean(g for _, g, _ in scored) >= 0.8, "mostly words of the passages"


def test_normal_answers_to_the_steady_traffic_questions_are_relevant() -> None:
    pool = question_pool(REPEATED_QUESTIONS_SEED, "chatbot", REPEATED_QUESTIONS, REPEATED_QUESTION_LENGTHS)
    scores = [relevance(question_of(m), c.text) for m, c in _answers(0.0, False, questions=pool)]
    assert statistics.median(scores) == 1.0 and statistics.fmean(scores) >= 0.9


def test_drifted_answers_are_neither_relevant_nor_grounded_and_some_are_refusals() -> None:
    drifted = _answers(1.0, True)
    assert all(c.answer is AnswerKind.DRIFTED for _, c in drifted)
    assert all(relevance(question_of(m), c.text) == 0.0 for m, c in drifted)
    assert all(groundedness(passages_of(m), c.text) == 0.0 and not is_refusal(c.text) for m, c in drifted)
    refused = _answers(1.0, True, refusal_share=1.0, count=30)
    assert all(c.answer is AnswerKind.REFUSAL and is_refusal(c.text) for _, c in refused)
    kinds = Counter(c.answer for _, c in _answers(1.0, False, refusal_share=0.1))
    assert 8 <= kinds[AnswerKind.REFUSAL] <= 35, kinds


def test_drift_changes_only_the_words_and_raising_it_only_adds_drifted_answers() -> None:
    normal, some, more = _answers(0.0, True), _answers(0.3, True), _answers(0.6, True)
    for (_, a), (_, b) in zip(normal, some):
        assert (a.prompt_tokens, a.completion_tokens, a.finish_reason, a.prefill_seconds, a.decode_seconds) == \
            (b.prompt_tokens, b.completion_tokens, b.finish_reason, b.prefill_seconds, b.decode_seconds)
        assert (a.text == b.text) == (b.answer is AnswerKind.NORMAL)
    drifted_some = {n for n, (_, c) in enumerate(some) if c.answer is not AnswerKind.NORMAL}
    drifted_more = {n for n, (_, c) in enumerate(more) if c.answer is not AnswerKind.NORMAL}
    assert 0.2 <= len(drifted_some) / 200 <= 0.4 and 0.5 <= len(drifted_more) / 200 <= 0.7
    assert drifted_some <= drifted_more


def test_the_quality_drift_knob_spoils_answers_of_the_chosen_models_with_200s_and_heals() -> None:
    question = QUESTIONS[0]

    def ask(client: TestClient, model: str, seed: int, stream: bool = False) -> tuple[int, str]:
        body = {"model": model, "messages": _messages(question, context=True), "seed": seed, "stream": stream}
        response = client.post("/v1/chat/completions", json=body)
        if not stream:
            return response.status_code, response.json()["choices"][0]["message"]["content"]
        chunks = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line.startswith("data: {")]
        return response.status_code, "".join(json.loads(c)["choices"][0]["delta"].get("content", "") for c in chunks)

    with TestClient(_app()) as client:
        before = ask(client, "sim-fast", 1)
        on = client.post("/faults", json={"quality_drift": 1.0, "refusal_share": 0.0, "models": ["sim-fast"]})
        assert on.status_code == 200 and on.json()["active"] == {"quality_drift": 1.0}
        assert on.json()["refusal_share"] == 0.0
        for seed in range(5):
            status, text = ask(client, "sim-fast", seed)
            assert status == 200 and relevance(question, text) == 0.0 and not is_refusal(text)
            assert ask(client, "sim-fast", seed) == (status, text), "the same request, the same (drifted) answer"
            assert ask(client, "sim-fast", seed, stream=True) == (status, text), "streamed alike"
            assert relevance(question, ask(client, "sim-balanced", seed)[1]) == 1.0, "other models: as before"
        client.post("/faults", json={"refusal_share": 1.0})
        assert is_refusal(ask(client, "sim-fast", 1)[1])
        assert 'llmsim_fault_active{fault="quality_drift"} 1.0' in client.get("/metrics").text
        client.delete("/faults/quality_drift")
        assert ask(client, "sim-fast", 1) == before


@pytest.mark.parametrize(("knobs", "field"), [
    ({"quality_drift": 1.5}, "quality_drift"), ({"quality_drift": -0.1}, "quality_drift"),
    ({"quality_drift": "most"}, "quality_drift"), ({"refusal_share": 2}, "refusal_share"),
])
def test_the_quality_knobs_are_bounded_and_a_bad_value_is_a_422_naming_it(knobs: dict, field: str) -> None:
    with TestClient(_app()) as client:
        response = client.post("/faults", json=knobs)
        assert response.status_code == 422 and field in response.json()["error"]["fields"], response.text
        assert client.get("/faults").json()["healthy"]
    assert faults.KNOBS[field].service == "llmsim" and faults.KNOBS[field].params == "0..1"
