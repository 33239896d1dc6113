"""Checks used inside the labs' check cells. A failure is an AssertionError whose first line says what was
checked, what was expected, what was seen, and a hint; `make grade` shows that line in its table."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class LabCheckFailed(AssertionError):
    pass


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raise(message: str) -> None:
    """A failure is the student's one message: raised inside an `except` it does not chain the caught error's
    traceback in front of it."""
    failure = LabCheckFailed(message)
    failure.__suppress_context__ = True
    raise failure


def fail(what: str, expected: Any, seen: Any, hint: str = "") -> None:
    message = f"{what}: expected {_short(expected)}, got {_short(seen)}"
    _raise(message + (f". Hint: {hint}" if hint else ""))


def not_attempted(what: str) -> None:
    """An untouched stub: one line, "not attempted yet: <what>", with no chained traceback even when called while
    handling the stub's NotImplementedError."""
    _raise(f"not attempted yet: {what}")


def expect(condition: bool, what: str, hint: str = "") -> None:
    """For checks that are not a comparison ("the log line has no raw user id")."""
    if not condition:
        _raise(what + (f". Hint: {hint}" if hint else ""))


def expect_equal(seen: Any, expected: Any, what: str, hint: str = "") -> None:
    if seen != expected:
        fail(what, expected, seen, hint)


def expect_close(seen: Any, expected: float, what: str, rel: float = 1e-6, abs_: float = 1e-12,
                 hint: str = "") -> None:
    try:
        close = math.isclose(float(seen), float(expected), rel_tol=rel, abs_tol=abs_)
    except (TypeError, ValueError):
        fail(what, expected, seen, hint or "return a number")
    else:
        if not close:
            fail(what, expected, seen, hint)


def expect_type(seen: Any, expected_type: type | tuple[type, ...], what: str, hint: str = "") -> None:
    if not isinstance(seen, expected_type):
        names = expected_type.__name__ if isinstance(expected_type, type) else " or ".join(
            t.__name__ for t in expected_type)
        fail(what, f"a {names}", f"{type(seen).__name__} {_short(seen, 60)}", hint)


def yaml_value(value: Any, variable: str, unset_hint: str, yaml_hint: str = "check the indentation") -> Any:
    """What the student set `variable` to, parsed when it is YAML text; a LabCheckFailed when it is unset or is
    text that is not YAML (with the parser's first line)."""
    expect(value is not None, f"{variable} is not set", unset_hint)
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise LabCheckFailed(f"{variable} is not valid YAML ({str(error).splitlines()[0]}). Hint: {yaml_hint}") \
            from None


def reports_stubs(check: Callable[..., T]) -> Callable[..., T]:
    """A check whose student function is still the released stub (`raise NotImplementedError()`) fails in one line
    naming the function to write ("not attempted yet: implement cost_by"), instead of a bare NotImplementedError."""

    @functools.wraps(check)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return check(*args, **kwargs)
        except NotImplementedError as error:
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            name = tb.tb_frame.f_code.co_qualname if tb is not None else "<module>"
            what = "the exercise cell above" if name.startswith("<") else f"{name} in the exercise cell above"
            raise LabCheckFailed(f"not attempted yet: implement {what}") from None

    return guarded
