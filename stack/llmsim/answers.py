"""The text of a simulated answer, built so that the word-overlap scores of stack/answer_quality.py tell a normal
answer from one the `quality_drift` fault knob spoiled.

Every answer is `word_count` words in sentences of 6 to 12 (the first word capitalised, the last followed by a
period), except a refusal. Words shorter than four letters ("the", "and", "of", ...) are fillers between the others:
they count for no score.
- normal: first the question's content words (its last user message, in order, each once, as many as fit), then
  words of the retrieved passages (`Context:` in a system message, answer_quality.passages_of) when there are some,
  else the question's words and generic course words. Relevant (its relevance is 1.0 when the answer has room for
  the question's content words, which takes about 1.25 words per content word) and, with passages, grounded.
- drifted: only off-topic words (everyday nouns) that are neither in the question nor in the passages: relevance
  and groundedness exactly 0.
- refusal: one short refusal sentence, whatever `word_count`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum

from stack.answer_quality import content_words, passages_of, question_of


class AnswerKind(str, Enum):
    NORMAL = "normal"
    DRIFTED = "drifted"
    REFUSAL = "refusal"


FILLERS = ("the", "and", "of", "to", "in", "a", "is", "for", "on", "as", "so", "by", "it")
PASSAGE_SHARE = 0.85  # with passages: share of the words after the question's that come from them
TOPIC_WORDS = (
    "latency tokens budget model provider gateway request trace metric alert cost department "
    "quantile histogram label series scrape rule route receiver dashboard signal error ratio"
).split()
OFF_TOPIC_WORDS = (
    "weather garden recipe holiday football painting mountain river guitar novel kitchen bicycle sunset coffee "
    "piano beach forest castle poetry soup cinema tennis orchard violin harbour meadow lantern pebble volcano "
    "penguin tulip marathon sailing pottery jungle canyon festival bakery"
).split()
REFUSALS = ("I cannot help with that.", "I'm sorry, but I can't assist with that request.",
            "I am unable to answer that question.")
SENTENCE_WORDS = (6, 12)


def answer_text(rng: random.Random, messages: Sequence[dict], word_count: int, kind: AnswerKind) -> str:
    if kind is AnswerKind.REFUSAL:
        return rng.choice(REFUSALS)
    asked = content_words(question_of(messages))
    passages = content_words(" ".join(passages_of(messages)))
    if kind is AnswerKind.DRIFTED:
        avoid = set(asked) | set(passages)
        pool = [w for w in OFF_TOPIC_WORDS if w not in avoid] or list(FILLERS)
        return _sentences(rng, _words(rng, word_count, [], {pool_word: 1.0 for pool_word in pool}))
    if passages:
        mix = _mixture(passages, asked, PASSAGE_SHARE)
    else:
        mix = _mixture(asked, TOPIC_WORDS, 0.5)
    return _sentences(rng, _words(rng, max(1, word_count), asked, mix))


def _mixture(main: Sequence[str], other: Sequence[str], main_share: float) -> dict[str, float]:
    """Weights drawing `main` words `main_share` of the time and `other` words the rest (all `main` if no other)."""
    if not other:
        return dict.fromkeys(main, 1.0)
    weights = dict.fromkeys(other, (1 - main_share) / len(other))
    for word in main:
        weights[word] = weights.get(word, 0.0) + main_share / len(main)
    return weights


def _words(rng: random.Random, count: int, first: Sequence[str], weights: dict[str, float]) -> list[str]:
    """`count` words: the `first` content words in order, then ones drawn by `weights`, a filler after about a
    quarter of them (two random bits each)."""
    content = iter([*first, *rng.choices(list(weights), weights=list(weights.values()), k=count)])
    fillers = iter(rng.choices(FILLERS, k=count))
    bits = rng.getrandbits(2 * count)
    found: list[str] = []
    while len(found) < count:
        found.append(next(content))
        if bits & 3 == 3:
            found.append(next(fillers))
        bits >>= 2
    return found[:count]


def _sentences(rng: random.Random, found: list[str]) -> str:
    sentences, start = [], 0
    while start < len(found):
        end = min(len(found), start + rng.randint(*SENTENCE_WORDS))
        if len(found) - end < SENTENCE_WORDS[0]:
            end = len(found)  # no short sentence at the end
        sentence = found[start:end]
        sentences.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + ".")
        start = end
    return " ".join(sentences)
