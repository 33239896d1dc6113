"""An untouched exercise stub (`raise NotImplementedError()`) fails its check with one line naming what to write,
instead of a bare NotImplementedError with an empty message."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from graders.labcheck import LabCheckFailed

Check = TypeVar("Check", bound=Callable[..., None])


def not_attempted(answer: object) -> LabCheckFailed:
    name = getattr(answer, "__name__", "the exercise's function")
    return LabCheckFailed(f"not attempted yet: implement {name} (replace `raise NotImplementedError()` in the "
                          "exercise cell above)")


def reports_stubs(check: Check) -> Check:
    """Wraps a check whose first argument is the student's function."""

    @functools.wraps(check)
    def wrapper(answer: object, *args: Any, **kwargs: Any) -> None:
        try:
            check(answer, *args, **kwargs)
        except NotImplementedError:
            raise not_attempted(answer) from None

    return wrapper  # type: ignore[return-value]
