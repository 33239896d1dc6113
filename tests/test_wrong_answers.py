"""The wrong-answer corpus (tests/wrong_answers/<lab>.yaml) itself: every graded exercise of a lab has at least three
realistic wrong answers, each names a check cell that exists and an answer cell it still applies to. Whether each one
loses its points with its message is proven per lab (tests/test_lab_<lab>.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from graders.course import select
from tests import notebook_cells as cells, wrong_answers

LABS = [lab for lab in select(None) if wrong_answers.path(lab.short).exists()]


@pytest.mark.parametrize("lab", LABS, ids=[lab.short for lab in LABS])
def test_every_graded_exercise_has_enough_wrong_answers_that_still_apply(lab) -> None:  # noqa: ANN001
    source = lab.source / f"{lab.id}.ipynb"
    corpus = wrong_answers.load(lab.short, source)
    graded = cells.points(source)
    for wrong in corpus.values():
        assert wrong.exercise in graded, f"{wrong.name!r}: {wrong.exercise} is not a graded cell of {lab.id}"
        assert set(wrong.also) <= set(graded), f"{wrong.name!r}: also names unknown exercises {wrong.also}"
        wrong.plant(cells.read(source))
    per_exercise = Counter(wrong.exercise for wrong in corpus.values())
    checked = set(cells.answer_of(source))  # exercises checking an answer cell of their own
    short = {exercise: per_exercise[exercise] for exercise in sorted(checked)
             if per_exercise[exercise] < wrong_answers.MIN_PER_EXERCISE}
    assert not short, f"{wrong_answers.path(lab.short).name}: fewer than {wrong_answers.MIN_PER_EXERCISE} wrong " \
                      f"answers for {short}"


def test_a_name_given_twice_is_refused_not_silently_dropped(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    entry = "  exercise: ex4_cost_by\n  mistake: aggregation\n  replace: [{old: a, new: b}]\n  says: x\n"
    (tmp_path / "v1.yaml").write_text(f"same name:\n{entry}same name:\n{entry}")
    monkeypatch.setattr(wrong_answers, "HERE", tmp_path)
    lab = select("v1")[0]
    with pytest.raises(Exception, match=r"\['same name'\] given twice"):
        wrong_answers.load("v1", lab.source / f"{lab.id}.ipynb")
