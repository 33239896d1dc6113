"""What grading produces: per exercise, points and (when points were lost) why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ExerciseResult:
    lab: str
    exercise: str
    points: float
    max_points: float
    message: str = ""      # why points were lost (first line first); empty when full marks
    source: str = "notebook"  # notebook | stack

    @property
    def lost(self) -> bool:
        return self.points < self.max_points


@dataclass
class LabResult:
    lab: str
    student: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    feedback_html: str | None = None
    problem: str | None = None  # an infrastructure problem that stopped grading this lab

    @property
    def score(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(e.max_points for e in self.exercises)

    def as_dict(self) -> dict:
        return {"lab": self.lab, "student": self.student, "score": self.score, "max_score": self.max_score,
                "feedback_html": self.feedback_html, "problem": self.problem,
                "exercises": [asdict(e) for e in self.exercises]}

    @classmethod
    def from_dict(cls, data: dict) -> LabResult:
        """The inverse of as_dict (a class run keeps its results between runs as JSON)."""
        return cls(data["lab"], data["student"], [ExerciseResult(**e) for e in data["exercises"]],
                   data.get("feedback_html"), data.get("problem"))
