"""The pipeline spec language (``apiVersion: mlops/v1``) as strict pydantic models.

The models live by section in :mod:`airflow_mlops.spec.sections` (``base``: the shared parts;
``data``, ``training``, ``evaluation``, ``release``, ``monitoring``); this module holds the
whole spec (:class:`PipelineSpec`, whose validators check the sections against each other) and
the folder defaults, and re-exports every section's names: import them from here.

These models are the single source of truth: the loader validates against them, the JSON Schema
is generated from them, and ``docs/spec.md`` is checked against them. Unknown keys are rejected
everywhere (``extra="forbid"``). Every field is optional except what identifies the model and
its data; defaults are the safe ones (gates fail closed, validation failures fail the run).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.data.expectation_names import SUPPORTED_EXPECTATIONS
from airflow_mlops.metrics import METRICS as METRIC_TABLE
from airflow_mlops.metrics import tasks_of
from airflow_mlops.spec.sections.base import (
    API_VERSION,
    DATE_RANGE,
    ENTRYPOINT_PATTERN,
    MAX_DURATION,
    MAX_SCHEDULE_EVENTS,
    METRICS,
    PIPELINE_EVENTS,
    POISONING_CHECKS,
    SCHEDULE_PRESETS,
    STAGES,
    Date,
    DeadlineConfig,
    Defaults,
    Duration,
    Entrypoint,
    Identifier,
    Notifications,
    NotifierSpec,
    RetrainPolicyConfig,
    ScheduleConfig,
    Stage,
    StepSpec,
    StrictModel,
    TaskSettings,
    check_time_schedule,
    event_problem,
    parse_date,
    parse_duration,
)
from airflow_mlops.spec.sections.data import (
    ArtifactsConfig,
    DataConfig,
    Expectation,
    NewDataWatch,
    PoisoningConfig,
    ValidationConfig,
)
from airflow_mlops.spec.sections.evaluation import (
    METRIC_RANGES,
    BinnedSlice,
    ChampionComparison,
    ColumnName,
    DropBound,
    EvaluationConfig,
    FairnessConfig,
    GapBound,
    MetricBound,
    MetricName,
    NoiseSettings,
    Perturbation,
    RobustnessConfig,
    TaskName,
    Threshold,
    ThresholdRule,
    ThresholdRuleName,
)
from airflow_mlops.spec.sections.monitoring import (
    MONITOR_REFERENCE_KEYWORDS,
    CategoricalDriftTest,
    DriftTestsConfig,
    MonitoringConfig,
    NumericDriftTest,
    PerformanceBound,
    QualityConfig,
)
from airflow_mlops.spec.sections.release import (
    ApprovalConfig,
    RegistryConfig,
    RolloutConfig,
    RolloutGate,
    SecurityConfig,
    SigningConfig,
)
from airflow_mlops.spec.sections.training import (
    BUILTIN_MODELS,
    ESTIMATOR_SHORT_NAMES,
    GPU_TOLERATION,
    DockerTraining,
    KubernetesTraining,
    PrivacyConfig,
    SecretEnv,
    Toleration,
    TrainingConfig,
    TrainingParams,
    TrainingResources,
    model_kind,
)
from airflow_mlops.tasks import TASKS

__all__ = [
    "StrictModel",
    "API_VERSION",
    "ApprovalConfig",
    "ArtifactsConfig",
    "BUILTIN_MODELS",
    "BinnedSlice",
    "CategoricalDriftTest",
    "ChampionComparison",
    "ColumnName",
    "DATE_RANGE",
    "DEFAULTS_FILE_NAME",
    "DataConfig",
    "Date",
    "DeadlineConfig",
    "Defaults",
    "DockerTraining",
    "DriftTestsConfig",
    "DropBound",
    "Duration",
    "ENTRYPOINT_PATTERN",
    "ESTIMATOR_SHORT_NAMES",
    "Entrypoint",
    "EvaluationConfig",
    "Expectation",
    "FairnessConfig",
    "FolderDefaults",
    "GPU_TOLERATION",
    "GapBound",
    "Identifier",
    "KubernetesTraining",
    "MAX_DURATION",
    "MAX_SCHEDULE_EVENTS",
    "METRICS",
    "METRIC_RANGES",
    "MONITOR_REFERENCE_KEYWORDS",
    "MetricBound",
    "MetricName",
    "MonitoringConfig",
    "NewDataWatch",
    "NoiseSettings",
    "Notifications",
    "NotifierSpec",
    "NumericDriftTest",
    "PIPELINE_EVENTS",
    "POISONING_CHECKS",
    "PerformanceBound",
    "Perturbation",
    "PipelineSpec",
    "PoisoningConfig",
    "PrivacyConfig",
    "QualityConfig",
    "RegistryConfig",
    "RetrainPolicyConfig",
    "RobustnessConfig",
    "RolloutConfig",
    "RolloutGate",
    "SCHEDULE_PRESETS",
    "STAGES",
    "SUPPORTED_EXPECTATIONS",
    "ScheduleConfig",
    "SecretEnv",
    "SecurityConfig",
    "SigningConfig",
    "Stage",
    "StepSpec",
    "TaskName",
    "TaskSettings",
    "Threshold",
    "ThresholdRule",
    "ThresholdRuleName",
    "Toleration",
    "TrainingConfig",
    "TrainingParams",
    "TrainingResources",
    "ValidationConfig",
    "check_time_schedule",
    "event_problem",
    "model_kind",
    "parse_date",
    "parse_duration",
]


class PipelineSpec(StrictModel):
    """One model's lifecycle."""

    api_version: Literal["mlops/v1"] = Field(alias="apiVersion", description="The spec language version.")
    pipeline: Identifier = Field(description="Identifier; DAG ids derive from it.")
    task: TaskName | None = Field(
        None,
        description="`binary`, `multiclass` or `regression`. Default: inferred -- from the spec (the "
        "metrics it names, an estimator class, a threshold) and otherwise from the target column at run "
        "time (text, booleans and up to 20 distinct integers are classes; other numbers a regression).",
    )
    description: str = Field("", description="What the model is for; shown on the DAG's page.")
    owner: str = Field("airflow", description="The DAG's owner in the Airflow UI.")
    schedule: str | ScheduleConfig | None = Field(
        None,
        description="Cron expression, preset (`@daily`), interval (`6h`), null (manual only), or a "
        "mapping `{time: ..., events: [drift, new_data]}` (see below).",
    )
    start_date: Date = Field(dt.date(2026, 1, 1), description="First data interval (UTC).")
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
    monitoring: MonitoringConfig | None = Field(
        None, description="Drift and data-quality monitoring of live data (the `<pipeline>__monitor` DAG)."
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | ScheduleConfig | None) -> str | ScheduleConfig | None:
        if isinstance(value, str):
            return check_time_schedule(value)
        return value

    @model_validator(mode="after")
    def _watched_data_is_scheduled(self) -> PipelineSpec:
        events = self.schedule.events if isinstance(self.schedule, ScheduleConfig) else []
        if self.data.new_data is not None and "new_data" not in events:
            raise ValueError(
                "data.new_data watches for new batches, but `new_data` is not in schedule.events, so "
                "nothing would run on them; add it: `schedule: {time: ..., events: [new_data]}`"
            )
        if self.monitoring is not None and self.monitoring.reference == "data" and not self.data.reference:
            raise ValueError("monitoring.reference is `data`, but data.reference is not set")
        strategy = self.registry.rollout.strategy
        if strategy != "direct" and self.monitoring is None:
            raise ValueError(
                f"registry.rollout.strategy is {strategy!r}: its later gate runs on the live windows of "
                "the monitor DAG, so the spec needs a `monitoring` section (or use `strategy: direct`)"
            )
        return self

    @model_validator(mode="after")
    def _evaluation_columns_are_features(self) -> PipelineSpec:
        """Fairness slices and perturbed columns are model features: not the target, and among
        ``data.features`` when those are listed. Each refusal is located at its own key."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        evaluation = self.evaluation
        columns: list[tuple[tuple[str | int, ...], str]] = []
        if evaluation.fairness is not None:
            for i, entry in enumerate(evaluation.fairness.slices):
                if isinstance(entry, str):
                    columns.append((("fairness", "slices", i), entry))
                else:
                    columns.append((("fairness", "slices", i, "column"), entry.column))
        if evaluation.robustness is not None:
            for i, perturbation in enumerate(evaluation.robustness.perturbations):
                columns += [
                    (("robustness", "perturbations", i, "missing", j), c)
                    for j, c in enumerate(perturbation.missing or [])
                ]
                noised = perturbation.noise.features if perturbation.noise is not None else None
                columns += [
                    (("robustness", "perturbations", i, "noise", "features", j), c)
                    for j, c in enumerate(noised or [])
                ]
        errors: list[InitErrorDetails] = []
        for loc, column in columns:
            if column == self.data.target:
                why = f"{column!r} is the target column (data.target), not a feature"
            elif self.data.features and column not in self.data.features:
                why = f"{column!r} is not among data.features ({', '.join(self.data.features)})"
            else:
                continue
            error = PydanticCustomError("evaluation_column", "{why}", {"why": why})
            errors.append(InitErrorDetails(type=error, loc=("evaluation", *loc), input=column))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _task_evidence(self) -> list[tuple[tuple[str | int, ...], str, set[str]]]:
        """What the spec itself says of the task: ``(location, what, tasks it allows)``."""
        evidence: list[tuple[tuple[str | int, ...], str, set[str]]] = []
        evaluation = self.evaluation
        named: list[tuple[tuple[str | int, ...], str]] = [
            (("evaluation", "metrics", m), m) for m in evaluation.metrics
        ]
        named += [(("evaluation", "compare_to_champion", m), m) for m in evaluation.compare_to_champion]
        if evaluation.fairness is not None:
            named += [(("evaluation", "fairness", "metrics", m), m) for m in evaluation.fairness.metrics]
        if evaluation.robustness is not None:
            named += [(("evaluation", "robustness", "metrics", m), m) for m in evaluation.robustness.metrics]
        if self.monitoring is not None:
            named += [(("monitoring", "performance", m), m) for m in self.monitoring.performance]
        for loc, name in named:
            evidence.append((loc, f"metric {name}", tasks_of([name])))
        if "threshold" in evaluation.model_fields_set:
            evidence.append((("evaluation", "threshold"), "an operating threshold", {"binary"}))
        kind = self.training.estimator_kind()
        if kind == "classifier":
            evidence.append(
                (("training", "model"), f"the classifier {self.training.model}", {"binary", "multiclass"})
            )
        elif kind == "regressor":
            evidence.append((("training", "model"), f"the regressor {self.training.model}", {"regression"}))
        if "positive_label" in self.data.model_fields_set:
            evidence.append((("data", "positive_label"), "data.positive_label", {"binary"}))
        if self.training.backend == "federated":
            evidence.append((("training", "backend"), "`backend: federated` (the built-in mlp)", {"binary"}))
        return evidence

    @property
    def task_hint(self) -> str | None:
        """The task the spec names or implies, or None when only the data can tell (at run time)."""
        if self.task is not None:
            return self.task
        allowed = set(TASKS)
        for _, _, tasks in self._task_evidence():
            allowed &= tasks
        return next(iter(allowed)) if len(allowed) == 1 else None

    @model_validator(mode="after")
    def _task_consistent(self) -> PipelineSpec:
        """Metrics, threshold and estimator must fit the task (declared, or implied by the rest):
        a classification metric on a regression, a threshold on a multiclass, a regressor for a
        classification are refused here, at their keys, with the fix."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        evidence = self._task_evidence()
        errors: list[InitErrorDetails] = []
        if self.task is not None:
            for loc, what, tasks in evidence:
                if self.task not in tasks:
                    fits = " or ".join(sorted(tasks))
                    why = f"{what} applies to {fits} tasks, but `task` is {self.task}"
                    if loc[-1] == "threshold" or what == "data.positive_label":
                        why += "; remove it (a threshold and a positive label are for binary classification)"
                    elif what.startswith("metric"):
                        why += f"; {self.task} metrics: " + ", ".join(
                            m for m, info in METRIC_TABLE.items() if self.task in info.tasks
                        )
                    error = PydanticCustomError("task_mismatch", "{why}", {"why": why})
                    errors.append(InitErrorDetails(type=error, loc=loc, input=what))
        else:
            allowed = set(TASKS)
            for loc, what, tasks in evidence:
                if not allowed & tasks:
                    earlier = [w for _, w, t in evidence if not t & tasks]
                    why = (
                        f"{what} applies to {' or '.join(sorted(tasks))} tasks, but {earlier[0]} does not; "
                        "they cannot serve one task: set `task:` and use that task's metrics"
                    )
                    error = PydanticCustomError("task_mismatch", "{why}", {"why": why})
                    errors.append(InitErrorDetails(type=error, loc=loc, input=what))
                    continue
                allowed &= tasks
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @model_validator(mode="after")
    def _threshold_has_validation_rows(self) -> PipelineSpec:
        """A threshold rule learns from the trainer's validation rows: refuse a split without any."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        rule = self.evaluation.threshold.rule
        if self.task_hint not in (None, "binary") and "threshold" not in self.evaluation.model_fields_set:
            return self
        if self.training.validation_fraction == 0 and rule != "fixed":
            why = (
                f"evaluation.threshold `rule: {rule}` chooses the threshold on the validation rows, "
                "but validation_fraction is 0: keep some (e.g. 0.2) or set `evaluation.threshold: <number>`"
            )
            error = PydanticCustomError("threshold_validation", "{why}", {"why": why})
            details = InitErrorDetails(type=error, loc=("training", "validation_fraction"), input=0.0)
            raise ValidationError.from_exception_data(type(self).__name__, [details])
        return self

    @property
    def train_dag_id(self) -> str:
        return f"{self.pipeline}__train"

    @property
    def monitor_dag_id(self) -> str:
        return f"{self.pipeline}__monitor"


DEFAULTS_FILE_NAME = "mlops-defaults.yaml"


class FolderDefaults(StrictModel):
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
