"""One exception hierarchy for airflow-mlops.

Every message says *what* went wrong, *where*, and *how to fix it*. Gate failures name the gate,
the measured value and the threshold. Nothing here imports Airflow, so domain code can raise
these freely; operators let them propagate (Airflow marks the task failed and shows the message).

Fail fast, one rule: an error whose ``retryable`` is False is final -- no retry can change it (a
failed gate, an unsafe model, a poisoned batch, a refused promotion, a spec or data error, an
integrity error). The lifecycle operators' base class fails such a task at once, without using
its retries; every other error (network, a 5xx answer) keeps Airflow's retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class MLOpsError(Exception):
    """Base class of every error raised by airflow-mlops.

    ``retryable`` (class attribute): False when no retry can change the outcome; the operators
    then fail the task without retrying (see :func:`is_retryable`).
    """

    retryable: ClassVar[bool] = True


def is_retryable(exc: BaseException) -> bool:
    """False for the project's final errors (``retryable = False``); True for everything else."""
    return not isinstance(exc, MLOpsError) or type(exc).retryable


# --- the spec -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a spec file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    path: str  # dotted key path, e.g. "training.params.epochs" ("" for the whole document)
    message: str
    value: object = None
    hint: str | None = None

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.path or '<document>'}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


#: Issues a SpecError's message lists (all stay in ``issues``): an import error stays readable.
SPEC_ISSUES_SHOWN = 50


class SpecError(MLOpsError):
    """A spec file cannot be used. Holds every issue found, each with file, line and key path."""

    retryable = False

    def __init__(self, issues: list[SpecIssue]) -> None:
        if not issues:
            raise ValueError("SpecError needs at least one issue")
        self.issues = list(issues)
        head = f"{len(self.issues)} problem(s) in pipeline spec {self.issues[0].file}"
        shown = [i.format() for i in self.issues[:SPEC_ISSUES_SHOWN]]
        if len(self.issues) > SPEC_ISSUES_SHOWN:
            shown.append(f"... and {len(self.issues) - SPEC_ISSUES_SHOWN} more (fix these first)")
        super().__init__(head + ":\n" + "\n".join(shown))

    @property
    def file(self) -> str:
        return self.issues[0].file


# --- artifacts ------------------------------------------------------------------------------


class ArtifactError(MLOpsError):
    """An artifact is missing, unreadable, or cannot be written."""


class ArtifactIntegrityError(ArtifactError):
    """An artifact's content does not match the sha256 recorded in its reference."""

    retryable = False


# --- data -----------------------------------------------------------------------------------


class DataError(MLOpsError):
    """Input data cannot be read or lacks what the spec says it has."""

    retryable = False


class OutsideAllowedRootsError(DataError):
    """A data or artifact location resolves outside every allowed root, or cannot be judged (an
    unsupported scheme, a file URI naming another host). See :mod:`airflow_mlops.allowed_roots`."""


class DataValidationError(DataError):
    """Data failed the spec's expectations (and ``validation.on_failure`` is ``fail``)."""


class PoisoningDetectedError(DataError):
    """The share of suspect rows is above ``poisoning.max_suspect_fraction``."""


class WatermarkError(DataError):
    """A new-data watermark cannot be read or written (corrupt file, wrong location, bad store)."""


class WatermarkConflictError(WatermarkError):
    """Another writer changed a new-data watermark since it was read (two watchers share one state).

    Retryable: the next try re-reads the watermark and takes only what is still new.
    """

    retryable = True


class DriftInputError(DataError):
    """Drift detection cannot run on its input: the live window's schema differs from the
    reference (the message lists every difference), a window is empty, or a setting is invalid."""


class DataQualityAlarm(DataError):
    """A live window failed a data-quality check (a surge of nulls, values out of range, new
    categories, too few rows). The monitor stores its report, then fails: no retraining starts."""


class DriftAlarmError(MLOpsError):
    """The live window drifted and the spec says ``monitoring.on_drift: alert`` (no retraining)."""

    retryable = False


# --- training, gates, security, registry ----------------------------------------------------


class TrainingError(MLOpsError):
    """The trainer failed or produced no usable model."""


class TrainingRejectedError(TrainingError):
    """The trainer refused its job for a reason no retry can change: bad data or config, an input
    whose sha256 differs from its reference, a privacy budget the run would exceed, a fit
    entrypoint that does not keep its contract."""

    retryable = False


class PrivacyBudgetError(TrainingRejectedError):
    """DP-SGD would spend (or spent) more epsilon than ``training.privacy.epsilon`` allows."""


class GateFailedError(MLOpsError):
    """An evaluation gate blocked the model (or could not decide, which blocks too)."""

    retryable = False


class UnsafeModelError(MLOpsError):
    """The model scan found content that could execute code on load."""

    retryable = False


class SigningError(MLOpsError):
    """A model could not be signed (missing key, unreadable model)."""


class SignatureVerificationError(MLOpsError):
    """A model's signature is missing or does not verify against what the verifier trusts."""

    retryable = False


class SigstoreUnavailableError(SigningError, SignatureVerificationError):
    """Sigstore's services (the TUF trust root, Fulcio, Rekor, the OIDC issuer) cannot be reached.

    A retry may succeed once the network is back, so this one is retryable; being a
    :class:`SignatureVerificationError` too, a verification that cannot reach them blocks.
    """

    retryable = True


class RegistryError(MLOpsError):
    """The model registry refused an operation or holds an inconsistent state.

    Retryable: a registry that is down or answers 5xx may answer on the next try. A lookup whose
    answer no retry can change raises :class:`RegistryLookupError`.
    """


class RegistryLookupError(RegistryError):
    """A registry lookup got an answer that is not MLflow's exact "does not exist" and not a
    transient failure (a proxy's 404 page, a refused permission, a misspelt model name). Final:
    the gate that needed the answer blocks, and a retry would get the same answer."""

    retryable = False


class PromotionBlockedError(RegistryError):
    """Promotion refused: a gate did not pass or the signature does not verify."""

    retryable = False


class PromotionConflictError(PromotionBlockedError):
    """Another request holds the lock on the alias: two promotions raced and this one lost.
    Final: the other decides, and this candidate's evidence compared it with a champion that is
    about to change; re-run it after the other has finished."""


class RetrainLedgerError(MLOpsError):
    """The retrain ledger (the durable record of the retrain gate's decisions) could not be read
    or written: the store failed, or another gate wrote it between this one's read and write
    more often than it retries. Transient: the gate task retries and decides against the new
    ledger (a retried gate finds the decision it recorded, if any)."""


class RetrainLedgerCorruptError(RetrainLedgerError):
    """The retrain ledger holds something that is not a ledger of this pipeline (edited or copied
    by hand). Final: the gate never decides on a ledger it cannot read; restore or delete it."""

    retryable = False
