"""The grade summary at the top of each feedback HTML: every check that scored the lab, the notebook's and the
stack checks', with the same total as the terminal table and grades.csv.

nbgrader's feedback only knows the notebook's grade cells; `make grade` hands this preprocessor the whole
LabResult (through the config, `GradeSummary.lab`) before it generates the feedback."""

from __future__ import annotations

import html
from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell
from traitlets import Bool, Dict

SOURCE_NAMES = {"notebook": "notebook check cell", "stack": "check against the running stack"}


def _points(value: float) -> str:
    return f"{value:g}"


CELL_STYLE = 'style="padding: 2px 12px 2px 0; text-align: left; vertical-align: top"'


def _cell(text: str, tag: str = "td") -> str:
    return f"<{tag} {CELL_STYLE}>{text}</{tag}>"


def _row(exercise: dict[str, Any]) -> str:
    name = html.escape(exercise["exercise"])
    name = f"<code>{name}</code>" if exercise["source"] == "notebook" else name  # as the cell below is headed
    checked_by = SOURCE_NAMES.get(exercise["source"], exercise["source"])
    points = f"{_points(exercise['points'])}&nbsp;/&nbsp;{_points(exercise['max_points'])}"
    return "<tr>" + "".join(_cell(text) for text in (name, checked_by, points, html.escape(exercise["message"]))) \
        + "</tr>"


def summary_markdown(lab: dict[str, Any]) -> str:
    heading = "".join(_cell(title, "th") for title in ("exercise", "checked by", "points", "why points were lost"))
    return "\n".join([
        f"## Grade for {lab['lab'].upper()}: {_points(lab['score'])} / {_points(lab['max_score'])}",
        "",
        "Every check that scored this lab: the check cells of the notebook below and the checks run against the "
        "stack. The total is the one in `make grade`'s table and in grades.csv.",
        "",
        f"<table><thead><tr>{heading}</tr></thead><tbody>",
        *(_row(exercise) for exercise in lab["exercises"]),
        "</tbody></table>",
    ])


class GradeSummary(Preprocessor):
    """Insert the lab's grade summary as the first cell and make the page's score the lab's total."""

    enabled = Bool(True).tag(config=True)
    lab = Dict(help="graders.results.LabResult.as_dict() of the lab being fed back; empty: leave the notebook "
                    "as nbgrader made it").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        if not self.lab:
            return nb, resources
        nb.cells.insert(0, new_markdown_cell(summary_markdown(self.lab), id="grade-summary"))
        resources.setdefault("nbgrader", {}).update(score=self.lab["score"], max_score=self.lab["max_score"])
        return nb, resources
