"""Realistic wrong answers to the labs' graded exercises, kept as data: one YAML file per lab (`v1.yaml` ...), one
entry per wrong answer. Each lab's tests plant every entry in a copy of the solution notebook and prove that it loses
points on exactly its own exercise with a message naming the mistake (tests/test_lab_<lab>.py); the test in
tests/test_wrong_answers.py checks the corpus itself (every graded cell has enough entries, every edit still applies).

An entry, by its name (what the student did, in a few words):

    exercise   the check cell (nbgrader grade id) that must lose its points
    mistake    its kind, one of KINDS (the mistakes students make over and over)
    cell       the answer cell edited (default: the answer cell the exercise checks)
    replace    [{old, new}, ...]: each `old` must occur exactly once in that cell; `new` replaces it
    says       a phrase the failure message must contain
    also       other exercises it rightly costs too (default none)

Add one: copy an entry of the same exercise, change `replace` and `says`, run the lab's tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from tests import notebook_cells as cells

HERE = Path(__file__).resolve().parent
KINDS = {
    "units": "milliseconds for seconds, cents for dollars, per 1k tokens for per 1M",
    "clocks": "wall-clock time for a duration, local or naive timestamps where UTC is asked",
    "aggregation": "the wrong label, averaged ratios, aggregated quantiles, a label dropped that must stay",
    "selection": "the first or latest item where the slowest, most expensive or most recent in a window is asked",
    "failure paths": "failed calls not recorded or counted, errors swallowed, partial results kept",
    "llm": "the classic LLM-specific mistake of the exercise (TTFT to the last chunk, cost of the requested model ...)",
    "privacy": "raw user ids where only a hash may go",
    "config": "a setting missing or wrong: no `for`, no runbook, no guard, the wrong receiver",
}
MIN_PER_EXERCISE = 3


@dataclass(frozen=True)
class WrongAnswer:
    name: str
    exercise: str
    mistake: str
    cell: str
    replace: tuple[tuple[str, str], ...]
    says: str
    also: tuple[str, ...] = ()

    def plant(self, notebook: nbformat.NotebookNode) -> None:
        """Edit the notebook in place (AssertionError, naming the entry, if an edit no longer applies)."""
        for old, new in self.replace:
            target = cells.cell(notebook, self.cell)
            assert target.source.count(old) == 1, \
                f"wrong answer {self.name!r}: {old!r} is no longer exactly once in cell {self.cell}: update " \
                f"tests/wrong_answers/"
            target.source = target.source.replace(old, new)


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a name given twice (plain YAML keeps the last one and drops the other silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        names = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(name) for name in names if names.count(name) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"{twice} given twice", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def path(lab: str) -> Path:
    return HERE / f"{lab}.yaml"


def load(lab: str, source: Path) -> dict[str, WrongAnswer]:
    """Lab `lab`'s wrong answers (v1 ... v4), their default cells taken from the solution notebook `source`."""
    raw = yaml.load(path(lab).read_text(), Loader=_UniqueKeys) or {}  # noqa: S506 - a SafeLoader
    answer_of = cells.answer_of(source)
    found = {}
    for name, entry in raw.items():
        unknown = set(entry) - {"exercise", "mistake", "cell", "replace", "says", "also"}
        assert not unknown, f"{path(lab).name}: {name!r} has unknown field(s) {sorted(unknown)}"
        assert entry.get("mistake") in KINDS, f"{path(lab).name}: {name!r}: mistake must be one of {sorted(KINDS)}"
        exercise = entry["exercise"]
        cell = entry.get("cell") or answer_of.get(exercise)
        assert cell, f"{path(lab).name}: {name!r}: no answer cell above {exercise}; name it in `cell`"
        found[name] = WrongAnswer(name, exercise, entry["mistake"], cell,
                                  tuple((r["old"], r["new"]) for r in entry["replace"]), entry["says"],
                                  tuple(entry.get("also", ())))
    return found
