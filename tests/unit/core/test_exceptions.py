"""The exception hierarchy (``airflow_mlops/exceptions.py``): which errors are final, and what
the spec's errors say. That the operators honour ``retryable`` is tested through Airflow's own
task runner in ``tests/unit/operators/test_fail_fast.py``."""

from __future__ import annotations

import pytest

from airflow_mlops import exceptions
from airflow_mlops.exceptions import (
    SPEC_ISSUES_SHOWN,
    DataError,
    MLOpsError,
    SignatureVerificationError,
    SigningError,
    SigstoreUnavailableError,
    SpecError,
    SpecIssue,
    is_retryable,
)

# What each error says about a retry. Written out in full, so that changing one is a decision a
# reviewer sees (a final error that becomes retryable burns retries on a failed gate; the reverse
# fails a task a restarted server would have saved).
RETRYABLE = {
    "MLOpsError": True,
    "SpecError": False,
    "ArtifactError": True,
    "ArtifactIntegrityError": False,
    "DataError": False,
    "OutsideAllowedRootsError": False,
    "DataValidationError": False,
    "PoisoningDetectedError": False,
    "WatermarkError": False,
    "WatermarkConflictError": True,
    "DriftInputError": False,
    "DataQualityAlarm": False,
    "DriftAlarmError": False,
    "TrainingError": True,
    "TrainingRejectedError": False,
    "PrivacyBudgetError": False,
    "GateFailedError": False,
    "UnsafeModelError": False,
    "SigningError": True,
    "SignatureVerificationError": False,
    "SigstoreUnavailableError": True,
    "RegistryError": True,
    "RegistryLookupError": False,
    "PromotionBlockedError": False,
    "PromotionConflictError": False,
    "RetrainLedgerError": True,
    "RetrainLedgerCorruptError": False,
}


def _classes() -> dict[str, type[MLOpsError]]:
    return {
        name: value
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, MLOpsError)
    }


def test_every_error_says_whether_a_retry_can_help() -> None:
    classes = _classes()
    assert set(classes) == set(RETRYABLE), "a new error class: add it to RETRYABLE with its reason"
    for name, cls in classes.items():
        error = cls.__new__(cls)
        assert is_retryable(error) is RETRYABLE[name], name
        assert cls.__doc__ and cls.__doc__.strip(), f"{name} says nothing about when it is raised"


def test_errors_from_elsewhere_keep_the_retry_policy() -> None:
    for error in (ValueError("x"), ConnectionError("down"), KeyboardInterrupt()):
        assert is_retryable(error)


def test_a_sigstore_outage_is_retryable_but_still_blocks_a_verification() -> None:
    error = SigstoreUnavailableError("the TUF trust root cannot be reached")
    assert is_retryable(error)
    # whoever catches a failed verification (the promotion gate) catches the outage too
    assert isinstance(error, SignatureVerificationError) and isinstance(error, SigningError)


def test_a_subclass_inherits_finality_unless_it_says_otherwise() -> None:
    class ReadError(DataError):
        """A test-only data error."""

    class Flaky(DataError):
        """A test-only retryable data error."""

        retryable = True

    assert not is_retryable(ReadError("bad column")) and is_retryable(Flaky("try again"))


# --- the spec's errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issue", "text"),
    [
        (
            SpecIssue("p.yaml", 3, 5, "training.params.epochs", "must be > 0", 0),
            "p.yaml:3:5: training.params.epochs: must be > 0 (got 0)",
        ),
        (SpecIssue("p.yaml", 3, None, "a", "bad"), "p.yaml:3: a: bad"),
        (SpecIssue("p.yaml", None, 7, "a", "bad"), "p.yaml: a: bad"),  # a column without a line
        (
            SpecIssue("p.yaml", 1, 1, "", "not a mapping", "x"),
            "p.yaml:1:1: <document>: not a mapping (got 'x')",
        ),
        (
            SpecIssue("p.yaml", 2, 1, "data.format", "unknown format", "xls", "use csv or parquet"),
            "p.yaml:2:1: data.format: unknown format (got 'xls')\n    hint: use csv or parquet",
        ),
    ],
)
def test_an_issue_names_file_line_column_key_value_and_hint(issue: SpecIssue, text: str) -> None:
    assert issue.format() == text


def test_a_spec_error_holds_every_issue_and_names_the_file() -> None:
    first = SpecIssue("a.yaml", 1, 1, "name", "required")
    second = SpecIssue("a.yaml", 9, 3, "data.target", "required")
    error = SpecError([first, second])
    assert error.issues == [first, second] and error.file == "a.yaml"
    assert str(error) == f"2 problem(s) in pipeline spec a.yaml:\n{first.format()}\n{second.format()}"
    assert not is_retryable(error)


def test_a_spec_error_without_an_issue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one issue"):
        SpecError([])


def test_an_issue_is_immutable() -> None:
    issue = SpecIssue("p.yaml", 1, 1, "a", "bad")
    with pytest.raises(AttributeError):
        issue.line = 2  # type: ignore[misc]


def test_a_spec_with_thousands_of_problems_gets_a_readable_error() -> None:
    """Every issue is kept on the error, but its message (the import error) lists the first 50."""
    issues = [SpecIssue("s.yaml", n, 1, f"k{n}", "bad key", None, None) for n in range(1, 3001)]
    error = SpecError(issues)
    assert len(error.issues) == 3000
    text = str(error)
    assert text.startswith("3000 problem(s) in pipeline spec s.yaml")
    assert "k50" in text and "k51:" not in text and "k51 " not in text
    assert f"... and {3000 - SPEC_ISSUES_SHOWN} more" in text
    assert len(text) < 20_000
