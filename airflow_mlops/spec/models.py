"""The pipeline spec language (``apiVersion: mlops/v1``) as strict pydantic models.

These models are the single source of truth: the loader validates against them, the JSON Schema
is generated from them, and ``docs/spec.md`` is checked against them. Unknown keys are rejected
everywhere (``extra="forbid"``). Every field is optional except what identifies the model and
its data; defaults are the safe ones (gates fail closed, validation failures fail the run).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

API_VERSION = "mlops/v1"

# Expectations the validation stage knows how to run (Great Expectations 1.x core expectations).
SUPPORTED_EXPECTATIONS: tuple[str, ...] = (
    "expect_column_to_exist",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_match_regex",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_median_to_be_between",
    "expect_column_stdev_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between",
    "expect_column_distinct_values_to_be_in_set",
    "expect_table_row_count_to_be_between",
    "expect_table_column_count_to_equal",
    "expect_table_columns_to_match_set",
    "expect_compound_columns_to_be_unique",
)

POISONING_CHECKS = ("duplicates", "label_flips", "outliers", "class_balance")
METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss")
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"1w"`` or a number of seconds -> timedelta."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration such as '5m', '1h' or a number of seconds")
    if isinstance(value, (int, float)):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError("a duration such as '30s', '5m', '1h', '2d' or a number of seconds")


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*[.:][A-Za-z_][A-Za-z0-9_]*$"
Entrypoint = Annotated[str, Field(pattern=ENTRYPOINT_PATTERN)]
STAGES = ("validate", "screen", "train", "scan", "evaluate", "sign", "register", "promote")
Stage = Literal["validate", "screen", "train", "scan", "evaluate", "sign", "register", "promote"]


class NotifierSpec(_Strict):
    """An Airflow notifier (any ``BaseNotifier`` subclass) and its arguments."""

    notifier: Entrypoint = Field(
        description="Import path of the notifier class, e.g. "
        "`airflow.providers.smtp.notifications.smtp.SmtpNotifier` (or `module:Class`)."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the notifier.")


class Notifications(_Strict):
    """Notifiers called on task events (Airflow's ``on_*_callback``)."""

    on_failure: list[NotifierSpec] = Field(default_factory=list)
    on_retry: list[NotifierSpec] = Field(default_factory=list)
    on_success: list[NotifierSpec] = Field(default_factory=list)


class TaskSettings(_Strict):
    """Airflow task settings. Unset keys inherit (see "Precedence of settings" above)."""

    retries: int | None = Field(
        None, ge=0, le=50, description="Times Airflow retries a failed task (built-in: 2)."
    )
    retry_delay: Duration | None = Field(None, description="Wait between retries, e.g. '5m' (built-in: 5m).")
    retry_exponential_backoff: bool | None = Field(None, description="Double the wait after each retry.")
    max_retry_delay: Duration | None = Field(None, description="Cap for exponential backoff.")
    execution_timeout: Duration | None = Field(
        None, description="A task running longer than this fails, e.g. '1h' (built-in: 2h)."
    )
    pool: str | None = Field(None, min_length=1, description="Airflow pool the task runs in.")
    pool_slots: int | None = Field(None, ge=1, description="Pool slots the task takes.")
    queue: str | None = Field(None, min_length=1, description="Executor queue (e.g. a GPU worker queue).")
    priority_weight: int | None = Field(None, description="Airflow priority weight.")
    notify: Notifications | None = Field(None, description="Notifiers called on failure, retry or success.")


class Defaults(TaskSettings):
    """Task settings for every stage of this spec (over the folder's defaults file)."""


class DeadlineConfig(_Strict):
    """A DAG-run deadline alert (Airflow 3 ``DeadlineAlert``): a callback when a run is late."""

    after: Duration = Field(description="How long after the reference the run must be finished, e.g. '2h'.")
    reference: Literal["queued_at", "logical_date"] = Field(
        "queued_at", description="`queued_at`: when the run was queued; `logical_date`: its logical date."
    )
    callback: Entrypoint = Field(
        description="Import path of the callback (e.g. a notifier class), called with the run's context."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the callback.")
    mode: Literal["async", "sync"] = Field(
        "async",
        description="`async`: runs in the triggerer (awaitable callbacks, notifiers); `sync`: on an executor.",
    )


class ScheduleConfig(_Strict):
    """A schedule by time, by asset events, or both (either one starts a run)."""

    time: str | None = Field(
        None, description="Cron expression, preset (`@daily`) or interval (`6h`); null for events only."
    )
    events: list[str] = Field(
        default_factory=list,
        description="Asset events that start a run: `drift` and `new_data` (this pipeline's own "
        "assets, `mlops://<pipeline>/drift`...), or any asset URI (`s3://bucket/key`).",
    )

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        return None if value is None else check_time_schedule(value)

    @model_validator(mode="after")
    def _something_to_run_on(self) -> ScheduleConfig:
        if self.time is None and not self.events:
            raise ValueError("give `time`, `events` or both (or `schedule: null` for manual runs only)")
        if self.events and self.time in ("@once", "@continuous"):
            raise ValueError(
                f"`time: {self.time}` cannot be combined with `events`; use a cron, preset or interval"
            )
        return self


def check_time_schedule(value: str) -> str:
    """Accept a preset, a 5-field cron or an interval such as ``6h``; raise ``ValueError`` otherwise."""
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown schedule preset {value!r}")
        return value
    if _DURATION.match(value):
        if parse_duration(value) <= dt.timedelta(0):
            raise ValueError("a schedule interval must be positive")
        return value
    from airflow_mlops.spec.cron import validate_cron

    validate_cron(value)
    return value


class StepSpec(_Strict):
    """A task of your own, added to the lifecycle DAG (any Airflow operator)."""

    id: Identifier = Field(description="Task id; unique in the DAG.")
    operator: Entrypoint = Field(
        description="Import path of the operator class, e.g. "
        "`airflow.providers.standard.operators.bash.BashOperator`."
    )
    after: list[str] = Field(
        default_factory=list,
        description="What must finish first: stage names (`promote`), task ids (`release.promote`) "
        "or other steps' ids.",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the operator.")
    settings: TaskSettings | None = Field(None, description="Task settings for this step.")


class ArtifactsConfig(_Strict):
    """Where the pipeline's artifacts (data snapshots, reports, models) are stored."""

    root: str | None = Field(
        None,
        description="Local directory or s3://bucket/prefix. Default: the AIRFLOW_MLOPS_ARTIFACT_ROOT "
        "environment variable, else `mlops-artifacts` beside the dags folder.",
    )
    connection: str | None = Field(None, description="Airflow AWS connection id for an s3:// root.")


class DataConfig(_Strict):
    """The training data."""

    source: str = Field(
        description="Path or s3:// URI of the training batch. Templated: `{{ ds }}` and other "
        "Airflow macros select the data interval's partition."
    )
    format: Literal["parquet", "csv"] | None = Field(
        None, description="File format; default: from the file extension."
    )
    target: str = Field(description="The label column.")
    features: list[str] | None = Field(
        None, min_length=1, description="Feature columns; default: every column but the target."
    )
    reference: str | None = Field(
        None, description="Reference data set (the training distribution) for inferred checks."
    )
    positive_label: int | str = Field(1, description="The label value of the positive class.")

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DataConfig:
        if self.features and self.target in self.features:
            raise ValueError(f"the target column {self.target!r} must not be listed in features")
        return self


Expectation = Annotated[
    dict[str, dict[str, Any]],
    Field(
        min_length=1,
        max_length=1,
        description="One Great Expectations expectation: `{expect_...: {column: ..., ...}}`.",
    ),
]


class ValidationConfig(_Strict):
    """Data validation with Great Expectations 1.x."""

    infer_from_reference: bool = Field(
        True,
        description="Add expectations inferred from `data.reference`: columns present, no new "
        "nulls, numeric ranges, known categories.",
    )
    expectations: list[Expectation] = Field(default_factory=list)
    on_failure: Literal["fail", "warn"] = Field(
        "fail", description="`fail` stops the run; `warn` records the failure and goes on."
    )

    @field_validator("expectations")
    @classmethod
    def _known_expectations(cls, value: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        for item in value:
            for name in item:
                if name not in SUPPORTED_EXPECTATIONS:
                    raise ValueError(f"unknown expectation {name!r}")
        return value


class PoisoningConfig(_Strict):
    """Screens for poisoned or corrupt training rows. Suspects are quarantined with reasons."""

    checks: list[Literal["duplicates", "label_flips", "outliers", "class_balance"]] = Field(
        default_factory=lambda: ["duplicates", "label_flips"],  # type: ignore[arg-type]
        description="Which screens run. duplicates: identical feature rows with conflicting "
        "labels. label_flips: rows whose label disagrees with most of their nearest neighbours. "
        "outliers: rows far outside the robust range of the data. class_balance: a label rate "
        "far from the reference's.",
    )
    max_suspect_fraction: float = Field(
        0.02, ge=0, le=1, description="Above this share of suspect rows the run stops before training."
    )
    neighbours: int = Field(10, ge=3, le=100, description="k for the label-flip screen.")
    outlier_threshold: float = Field(8.0, gt=0, description="Robust z-score above which a row is an outlier.")
    max_class_shift: float = Field(
        0.5, gt=0, description="class_balance: largest allowed relative change of the positive rate."
    )


class TrainingParams(_Strict):
    """Hyper-parameters of the built-in MLP."""

    epochs: int = Field(20, ge=1, le=10_000)
    lr: float = Field(1e-3, gt=0, le=10)
    batch_size: int = Field(512, ge=1, le=1_000_000)
    hidden_units: list[int] = Field(default_factory=lambda: [64, 32], min_length=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="`balanced` weighs the positive class by its rarity."
    )


class TrainingConfig(_Strict):
    """How the model is trained."""

    backend: Literal["local"] = Field(
        "local", description="`local`: the trainer entrypoint in a subprocess of the worker."
    )
    model: Literal["mlp"] = Field("mlp", description="Built-in model family.")
    params: TrainingParams = Field(default_factory=TrainingParams)
    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Share of accepted rows kept out of training for evaluation."
    )
    seed: int = Field(42, description="Seed for the split, initialisation and shuffling.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")


class MetricBound(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ChampionComparison(_Strict):
    max_regression: float = Field(
        0.0, ge=0, description="How far below the champion the candidate may score (absolute)."
    )


MetricName = Literal["roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss"]


class EvaluationConfig(_Strict):
    """Gates the candidate must pass on the holdout set. A gate that cannot decide blocks."""

    metrics: dict[MetricName, MetricBound] = Field(default_factory=dict)
    compare_to_champion: dict[MetricName, ChampionComparison] = Field(default_factory=dict)
    threshold: float = Field(0.5, gt=0, lt=1, description="Decision threshold on the score.")


class SigningConfig(_Strict):
    method: Literal["key"] = Field("key", description="`key`: an elliptic-curve key pair.")
    connection: str = Field(
        "mlops_signing",
        description="Airflow connection holding the PEM private key (password) and, optionally, "
        "the public key (extra `public_key`).",
    )


class SecurityConfig(_Strict):
    """Model scanning and signing. Scanning always runs; it cannot be switched off."""

    signing: SigningConfig = Field(default_factory=SigningConfig)
    allowed_pickle_globals: list[str] = Field(
        default_factory=list,
        description="Extra `module.name` globals the pickle scanner accepts (default: none).",
    )


class RegistryConfig(_Strict):
    """MLflow model registry."""

    model_name: str = Field(min_length=1, max_length=256)
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    connection: str = Field(
        "mlflow_default", description="Airflow connection with the MLflow tracking server URL (host)."
    )
    experiment: str | None = Field(None, description="MLflow experiment; default: the pipeline name.")


class PipelineSpec(_Strict):
    """One model's lifecycle."""

    api_version: Literal["mlops/v1"] = Field(alias="apiVersion", description="The spec language version.")
    pipeline: Identifier = Field(description="Identifier; DAG ids derive from it.")
    description: str = Field("", description="What the model is for; shown on the DAG's page.")
    owner: str = Field("airflow", description="The DAG's owner in the Airflow UI.")
    schedule: str | ScheduleConfig | None = Field(
        None,
        description="Cron expression, preset (`@daily`), interval (`6h`), null (manual only), or a "
        "mapping `{time: ..., events: [drift, new_data]}` (see below).",
    )
    start_date: dt.date = Field(dt.date(2026, 1, 1), description="First data interval (UTC).")
    catchup: bool = Field(False, description="`true`: one run per missed data interval since start_date.")
    tags: list[str] = Field(default_factory=list, description="DAG tags; `mlops` is always added.")
    max_active_runs: int = Field(1, ge=1, le=64, description="Runs of this DAG at the same time.")
    dagrun_timeout: Duration | None = Field(None, description="A run taking longer than this fails.")
    deadline: DeadlineConfig | None = Field(None, description="Alert when a run is late.")
    defaults: Defaults = Field(default_factory=Defaults)
    stages: dict[Stage, TaskSettings] = Field(
        default_factory=dict, description="Task settings per stage (they win over `defaults`)."
    )
    steps: list[StepSpec] = Field(default_factory=list, description="Tasks of your own in the DAG.")
    artifacts: ArtifactsConfig = Field(default_factory=ArtifactsConfig)
    data: DataConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    poisoning: PoisoningConfig = Field(default_factory=PoisoningConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    registry: RegistryConfig

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | ScheduleConfig | None) -> str | ScheduleConfig | None:
        if isinstance(value, str):
            return check_time_schedule(value)
        return value

    @property
    def train_dag_id(self) -> str:
        return f"{self.pipeline}__train"


DEFAULTS_FILE_NAME = "mlops-defaults.yaml"


class FolderDefaults(_Strict):
    """``mlops-defaults.yaml``: settings for every spec in its folder and the folders below it."""

    api_version: Literal["mlops/v1"] = Field(alias="apiVersion", description="The spec language version.")
    kind: Literal["Defaults"] = Field(description="Always `Defaults`.")
    owner: str | None = Field(None, description="Owner of specs that set none.")
    tags: list[str] = Field(default_factory=list, description="Tags added to every spec's DAG.")
    defaults: TaskSettings = Field(default_factory=TaskSettings, description="Task settings for every stage.")
    stages: dict[Stage, TaskSettings] = Field(default_factory=dict, description="Task settings per stage.")
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Directories (relative to this file) and s3:// prefixes that data and artifact "
        "locations must lie under.",
    )
