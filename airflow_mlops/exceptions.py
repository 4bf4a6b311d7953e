"""One exception hierarchy for airflow-mlops.

Every message says *what* went wrong, *where*, and *how to fix it*. Gate failures name the gate,
the measured value and the threshold. Nothing here imports Airflow, so domain code can raise
these freely; operators let them propagate (Airflow marks the task failed and shows the message).
"""

from __future__ import annotations

from dataclasses import dataclass


class MLOpsError(Exception):
    """Base class of every error raised by airflow-mlops."""


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


class SpecError(MLOpsError):
    """A spec file cannot be used. Holds every issue found, each with file, line and key path."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        if not issues:
            raise ValueError("SpecError needs at least one issue")
        self.issues = list(issues)
        head = f"{len(self.issues)} problem(s) in pipeline spec {self.issues[0].file}"
        super().__init__(head + ":\n" + "\n".join(i.format() for i in self.issues))

    @property
    def file(self) -> str:
        return self.issues[0].file


# --- artifacts ------------------------------------------------------------------------------


class ArtifactError(MLOpsError):
    """An artifact is missing, unreadable, or cannot be written."""


class ArtifactIntegrityError(ArtifactError):
    """An artifact's content does not match the sha256 recorded in its reference."""


# --- data -----------------------------------------------------------------------------------


class DataError(MLOpsError):
    """Input data cannot be read or lacks what the spec says it has."""


class DataValidationError(DataError):
    """Data failed the spec's expectations (and ``validation.on_failure`` is ``fail``)."""


class PoisoningDetectedError(DataError):
    """The share of suspect rows is above ``poisoning.max_suspect_fraction``."""


# --- training, gates, security, registry ----------------------------------------------------


class TrainingError(MLOpsError):
    """The trainer failed or produced no usable model."""


class GateFailedError(MLOpsError):
    """An evaluation gate blocked the model (or could not decide, which blocks too)."""


class UnsafeModelError(MLOpsError):
    """The model scan found content that could execute code on load."""


class SigningError(MLOpsError):
    """A model could not be signed (missing key, unreadable model)."""


class SignatureVerificationError(MLOpsError):
    """A model's signature is missing or does not verify against the trusted public key."""


class RegistryError(MLOpsError):
    """The model registry refused an operation or holds an inconsistent state."""


class PromotionBlockedError(RegistryError):
    """Promotion refused: a gate did not pass or the signature does not verify."""
