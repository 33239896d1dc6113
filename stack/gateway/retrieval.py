"""The agent workflow's retrieval step: the passages of a small local corpus that best match the question.

The corpus ships with the project: the course's own runbooks (docs/runbooks/*.md), cut into passages at blank lines
(headings, tables and code fences are left out; each passage is one paragraph or list item of prose). A passage's
score is the share of the question's content words it contains (stack/answer_quality.py's words, the same ones the
evaluators use), each word weighted by its inverse document frequency (a word most passages hold, "alert", counts
less than a rare one, "latency"); the top TOP_K with a score above 0 are retrieved. The retrieval's relevance is the
best passage's score: 0 when nothing in the corpus speaks of the question."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stack.answer_quality import content_words, words
from stack.paths import DOCS_DIR

CORPUS_DIR = DOCS_DIR / "runbooks"
CORPUS_ID = "runbooks"  # gen_ai.data_source.id
TOP_K = 3
MIN_PASSAGE_CHARS = 60
_SKIP = re.compile(r"^\s*(#|\||```|<!--)")


@dataclass(frozen=True)
class Passage:
    source: str  # the runbook's file name
    text: str


@dataclass(frozen=True)
class Retrieval:
    passages: tuple[Passage, ...]
    relevance: float  # the best passage's share of the question's content words (0..1)


def _passages(path: Path) -> list[Passage]:
    found, inside_code = [], False
    for block in re.split(r"\n\s*\n", path.read_text()):
        if block.lstrip().startswith("```"):
            inside_code = not inside_code if block.count("```") % 2 else inside_code
            continue
        if inside_code or _SKIP.match(block):
            continue
        text = " ".join(block.split())
        if len(text) >= MIN_PASSAGE_CHARS:
            found.append(Passage(path.name, text))
    return found


class Corpus:
    def __init__(self, folder: Path = CORPUS_DIR) -> None:
        self.folder = folder

    @cached_property
    def passages(self) -> list[tuple[Passage, frozenset[str]]]:
        return [(p, frozenset(words(p.text))) for path in sorted(self.folder.glob("*.md")) for p in _passages(path)]

    @cached_property
    def document_frequency(self) -> Counter[str]:
        return Counter(word for _, vocabulary in self.passages for word in vocabulary)

    def weight(self, word: str) -> float:
        """Inverse document frequency, smoothed: a word no passage holds still weighs (it can only miss)."""
        return math.log(1 + len(self.passages) / (1 + self.document_frequency[word]))

    def retrieve(self, question: str, top_k: int = TOP_K) -> Retrieval:
        asked = content_words(question)
        if not asked:
            return Retrieval((), 0.0)
        weights = {word: self.weight(word) for word in asked}
        total = sum(weights.values())
        scored = sorted(((sum(w for word, w in weights.items() if word in vocabulary) / total, n, passage)
                         for n, (passage, vocabulary) in enumerate(self.passages)),
                        key=lambda item: (-item[0], item[1]))
        best = [(score, passage) for score, _, passage in scored[:top_k] if score > 0]
        return Retrieval(tuple(p for _, p in best), best[0][0] if best else 0.0)


def context_message(retrieval: Retrieval) -> dict:
    """The system message that carries the passages to the model, in the convention stack/answer_quality.py reads
    (a `Context:` line, then one passage a line)."""
    lines = [f"{p.text}" for p in retrieval.passages] or ["(nothing relevant found)"]
    return {"role": "system", "content": "Answer from these passages of the runbooks.\nContext:\n" + "\n".join(lines)}
