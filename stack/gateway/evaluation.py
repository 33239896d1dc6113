"""Every answered chat call scored by cheap deterministic evaluators (stack/answer_quality.py: word overlap, no model),
as an online evaluation would: the scores go to the `llm_quality_score` histogram by model and evaluator, to the
store (table llm_evaluations, joinable with the call's row on request_id) and to the call's span as
`gen_ai.evaluation.result` events.

Evaluators (score 0..1, and a label):
- relevance: the share of the question's content words the answer uses; `relevant` from RELEVANT, else `off_topic`;
- groundedness (only when the request carries retrieved passages): the share of the answer's content words found in
  them; `grounded` from GROUNDED, else `ungrounded`;
- answered: 1 for an answer, 0 for a refusal or an empty answer (`answered` / `refused`)."""

from __future__ import annotations

from dataclasses import dataclass

from stack.answer_quality import groundedness, is_refusal, passages_of, question_of, relevance

RELEVANCE, GROUNDEDNESS, ANSWERED = "relevance", "groundedness", "answered"
EVALUATORS = (RELEVANCE, GROUNDEDNESS, ANSWERED)
RELEVANT = 0.5
GROUNDED = 0.5
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Score:
    evaluator: str
    value: float
    label: str


def evaluate(messages: list[dict], answer: str) -> list[Score]:
    relevant = relevance(question_of(messages), answer)
    scores = [Score(RELEVANCE, relevant, "relevant" if relevant >= RELEVANT else "off_topic")]
    passages = passages_of(messages)
    if passages:
        grounded = groundedness(passages, answer)
        scores.append(Score(GROUNDEDNESS, grounded, "grounded" if grounded >= GROUNDED else "ungrounded"))
    refused = is_refusal(answer)
    scores.append(Score(ANSWERED, 0.0 if refused else 1.0, "refused" if refused else "answered"))
    return scores
