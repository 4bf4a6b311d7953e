"""Fail fast: a final project error fails the task at once; a transient one keeps its retries.

Run through Airflow's own task runner (``_run_task_and_map_outcome``, the function that maps an
``execute`` outcome to the task's next state) with the API server's "this task may retry"
answer, so the test sees the state Airflow would record: FAILED or UP_FOR_RETRY.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import uuid
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

import airflow_mlops.operators
from airflow_mlops import exceptions as exc_module
from airflow_mlops.exceptions import (
    ArtifactError,
    ArtifactIntegrityError,
    DataValidationError,
    GateFailedError,
    MLOpsError,
    PoisoningDetectedError,
    PromotionBlockedError,
    RegistryError,
    RegistryLookupError,
    SignatureVerificationError,
    SpecError,
    SpecIssue,
    TrainingError,
    UnsafeModelError,
    is_retryable,
)
from airflow_mlops.operators.base import MLOpsBaseOperator

NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


class _RaisingOperator(MLOpsBaseOperator):
    """A lifecycle stage whose execute raises what it is given (defined like any other stage)."""

    def __init__(self, *, error: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.calls = 0

    def execute(self, context: Any) -> dict[str, Any]:
        self.calls += 1
        raise self.error


class _DerivedOperator(_RaisingOperator):
    """A subclass of a subclass that extends execute through super()."""

    def execute(self, context: Any) -> dict[str, Any]:
        return super().execute(context)


def _run(op_class: type[_RaisingOperator], error: BaseException) -> tuple[str, BaseException | None]:
    """Run the operator once through Airflow's task runner; the next state and the error."""
    import structlog
    from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType, TIRunContext
    from airflow.sdk.execution_time import task_runner

    with DAG("fail_fast", schedule=None, start_date=NOW):
        op = op_class(task_id="stage", pipeline="p", error=error, retries=3)
    run = DagRun(
        dag_id="fail_fast",
        run_id="r1",
        logical_date=NOW,
        data_interval_start=NOW,
        data_interval_end=NOW,
        run_after=NOW,
        start_date=NOW,
        end_date=None,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        conf={},
        consumed_asset_events=[],
        partition_key=None,
    )
    server_says = TIRunContext(dag_run=run, max_tries=3, should_retry=True)  # retries are left
    ti = task_runner.RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id="stage",
        dag_id="fail_fast",
        run_id="r1",
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=op,
        bundle_instance=None,
        max_tries=3,
        start_date=NOW,
    )
    ti._ti_context_from_server = server_says
    with mock.patch.object(task_runner, "SUPERVISOR_COMMS", mock.MagicMock(), create=True):
        context = ti.get_template_context()
        state, _msg, raised = task_runner._run_task_and_map_outcome(ti, context, structlog.get_logger())
    assert ti.task.calls == 1  # the runner executes a copy of the task: it ran once
    return str(state.value), raised


def _spec_error() -> SpecError:
    return SpecError([SpecIssue("p.yaml", 3, 5, "evaluation.metrics.roc_auc.min", "must be <= 1", 1.5)])


FINAL = [
    GateFailedError("1 of 1 evaluation gate(s) failed: roc_auc.min: roc_auc = 0.61 is below the minimum 0.8"),
    UnsafeModelError("model at /m failed the security scan with 1 finding(s)"),
    PoisoningDetectedError("12% of rows are suspect, above max_suspect_fraction 5%"),
    PromotionBlockedError("version 3 of m was not promoted: its signature does not verify"),
    SignatureVerificationError("model version 3 of m has no signature artifact"),
    DataValidationError("amount: 4 values outside [0, 10000]"),
    ArtifactIntegrityError("sha256 of s3://b/k differs from its ref"),
    RegistryLookupError("champion lookup 'm'@champion failed with ENDPOINT_NOT_FOUND"),
    _spec_error(),
]
TRANSIENT = [
    RegistryError("champion lookup 'm'@champion failed with INTERNAL_ERROR: connection refused"),
    TrainingError("the training pod was evicted"),
    ArtifactError("s3://b/k: connection reset"),
    ConnectionError("connection refused"),  # not ours: Airflow's policy, untouched
]


@pytest.mark.parametrize("error", FINAL, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("op_class", [_RaisingOperator, _DerivedOperator], ids=["stage", "derived"])
def test_a_final_error_fails_the_task_without_retry(op_class, error: MLOpsError) -> None:
    state, raised = _run(op_class, error)
    assert state == "failed"
    # Still the same error to anyone who catches it, with the same message and attributes.
    assert isinstance(raised, type(error)) and isinstance(raised, AirflowFailException)
    assert str(raised) == str(error)
    assert type(raised).__name__ == type(error).__name__
    if isinstance(error, SpecError):
        assert raised.issues == error.issues  # type: ignore[attr-defined]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_transient_error_keeps_its_retries(error: BaseException) -> None:
    state, raised = _run(_RaisingOperator, error)
    assert state == "up_for_retry"
    assert raised is error
    assert not isinstance(raised, AirflowFailException)


def test_direct_execute_raises_the_final_error_catchable_as_itself(tmp_path) -> None:
    op = _RaisingOperator(task_id="t", pipeline="p", error=GateFailedError("gate roc_auc.min failed"))
    with pytest.raises(GateFailedError, match=r"roc_auc\.min") as caught:
        op.execute({})
    assert isinstance(caught.value, AirflowFailException)
    assert caught.value.__traceback__ is not None


def test_every_lifecycle_operator_is_fail_fast() -> None:
    """Every MLOpsBaseOperator subclass in the package, present and future, gets the wrapper."""
    for module in pkgutil.iter_modules(airflow_mlops.operators.__path__):
        importlib.import_module(f"airflow_mlops.operators.{module.name}")

    def subclasses(cls: type) -> list[type]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    found = [c for c in subclasses(MLOpsBaseOperator) if c.__module__.startswith("airflow_mlops.")]
    assert len(found) >= 6  # scan, evaluate, sign, register, promote, the data stages ...
    for cls in found:
        assert getattr(cls.execute, "__mlops_fail_fast__", False), cls


def test_the_final_errors_are_exactly_the_ones_no_retry_can_change() -> None:
    classes = [
        c
        for c in vars(exc_module).values()
        if isinstance(c, type) and issubclass(c, MLOpsError) and c.__module__ == exc_module.__name__
    ]
    final = {c.__name__ for c in classes if not is_retryable(c.__new__(c))}
    assert {type(e).__name__ for e in FINAL} <= final
    assert not final & {type(e).__name__ for e in TRANSIENT}
    assert is_retryable(ValueError("not ours"))
