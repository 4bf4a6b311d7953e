"""Fail-fast: a project error that no retry can change fails the task at once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.exceptions import MLOpsError, is_retryable

_F = TypeVar("_F", bound=Callable[..., Any])
_FAIL_FAST_MARK = "__mlops_fail_fast__"
_FINAL_TYPES: dict[type[MLOpsError], type[MLOpsError]] = {}


def final_error_type(cls: type[MLOpsError]) -> type[MLOpsError]:
    """``cls`` that is also an :class:`AirflowFailException` (made once per class).

    Airflow's task runner fails an ``AirflowFailException`` without using the task's retries;
    being a subclass of ``cls`` too, the error still reads and catches as what it is
    (``except GateFailedError`` works, the log shows ``GateFailedError: ...``).
    """
    made = _FINAL_TYPES.get(cls)
    if made is None:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
        made = cast("type[MLOpsError]", type(cls.__name__, (cls, AirflowFailException), namespace))
        _FINAL_TYPES[cls] = made
    return made


def as_final(exc: MLOpsError) -> MLOpsError:
    """A copy of ``exc`` (same message, attributes and traceback) that fails the task at once."""
    final_cls = final_error_type(type(exc))
    final = final_cls.__new__(final_cls, *exc.args)
    final.__dict__.update(exc.__dict__)
    final.__cause__ = exc.__cause__
    final.__suppress_context__ = True  # the copy stands in for exc: don't print exc twice
    return final.with_traceback(exc.__traceback__)


def fail_fast(method: _F) -> _F:
    """Wrap an operator method so a final project error (``retryable = False``) fails the task
    without retry; every other error propagates unchanged and keeps Airflow's retry policy."""
    if getattr(method, _FAIL_FAST_MARK, False):
        return method

    @functools.wraps(method)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
            if hasattr(type(self), "_lineage_result"):  # MLOpsBaseOperator declares it
                self._lineage_result = result  # what get_openlineage_facets_on_complete reports
            return result
        except MLOpsError as exc:
            if is_retryable(exc) or isinstance(exc, AirflowFailException):
                raise
            self.log.error("%s: no retry can change this, failing the task now", type(exc).__name__)
            raise as_final(exc) from exc.__cause__

    setattr(wrapper, _FAIL_FAST_MARK, True)
    return cast("_F", wrapper)
