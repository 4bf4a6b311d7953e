"""The pipeline spec language (``apiVersion: mlops/v1``) as strict pydantic models.

These models are the single source of truth: the loader validates against them, the JSON Schema
is generated from them, and ``docs/spec.md`` is checked against them. Unknown keys are rejected
everywhere (``extra="forbid"``). Every field is optional except what identifies the model and
its data; defaults are the safe ones (gates fail closed, validation failures fail the run).
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from airflow_mlops.metrics import METRIC_NAMES, tasks_of
from airflow_mlops.metrics import METRICS as METRIC_TABLE
from airflow_mlops.tasks import TASKS

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
METRICS = METRIC_NAMES  # the vocabulary of airflow_mlops/metrics.py
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


#: The longest duration a spec may give (timeouts, delays, intervals); past it is a typo.
MAX_DURATION = dt.timedelta(days=3650)
_DURATION_RANGE = f"between 0 and {MAX_DURATION.days} days (10 years)"


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"1w"`` or a number of seconds -> timedelta.

    A duration lies between 0 and :data:`MAX_DURATION`; anything else (negative, infinite, or
    too big for Python's ``timedelta``) is a validation error naming that range.
    """
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration such as '5m', '1h' or a number of seconds")
    elif isinstance(value, (int, float)):
        seconds = float(value) if abs(value) < 1e300 else math.copysign(math.inf, value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("a duration such as '30s', '5m', '1h', '2d' or a number of seconds")
    if not 0 <= seconds <= MAX_DURATION.total_seconds():  # also NaN
        raise ValueError(f"a duration must be {_DURATION_RANGE}, e.g. '30m', '2h', '7d'")
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=seconds)


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]

_DATE_HINT = "write a date as YYYY-MM-DD, e.g. 2026-01-31"


#: The dates a spec may give: a schedule's intervals are computed past them, and Python's
#: datetimes end at 9999-12-31, so the range leaves room; before 1900 is a typo.
DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2999, 12, 31))


def parse_date(value: Any) -> Any:
    date = _parse_date(value)
    if not DATE_RANGE[0] <= date <= DATE_RANGE[1]:
        raise ValueError(f"a date must lie between {DATE_RANGE[0]} and {DATE_RANGE[1]}; {_DATE_HINT}")
    return date


def _parse_date(value: Any) -> dt.date:
    """A calendar date: ``2026-01-31`` (YAML reads it as a date), the same quoted, or a midnight datetime.

    pydantic alone reads a number as a Unix timestamp and reports a bad string with a parser's
    words ("input is too short"); this names the format instead.
    """
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0) or (value.utcoffset() or dt.timedelta(0)) != dt.timedelta(0):
            raise ValueError(
                f"a date has no time of day (data intervals start at midnight UTC); {_DATE_HINT}"
            )
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError as exc:  # e.g. month 13, 30 February
                raise ValueError(f"{text!r} is not a valid date ({exc}); {_DATE_HINT}") from None
    raise ValueError(f"not a date; {_DATE_HINT}")


Date = Annotated[dt.date, BeforeValidator(parse_date)]
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


#: Asset events one schedule may list.
MAX_SCHEDULE_EVENTS = 32


class ScheduleConfig(_Strict):
    """A schedule by time, by asset events, or both (either one starts a run)."""

    time: str | None = Field(
        None, description="Cron expression, preset (`@daily`) or interval (`6h`); null for events only."
    )
    events: list[str] = Field(
        default_factory=list,
        # Airflow hashes the whole schedule each time a task is wired into the DAG: a thousand
        # assets take the DAG processor seconds per parse.
        max_length=MAX_SCHEDULE_EVENTS,
        description="Asset events that start a run: `drift` and `new_data` (this pipeline's own "
        f"assets, `x-mlops://<pipeline>/drift`...), or any asset URI (`s3://bucket/key`); at most "
        f"{MAX_SCHEDULE_EVENTS}.",
    )

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        return None if value is None else check_time_schedule(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        """Each entry is a pipeline event (``drift``, ``new_data``) or an asset URI with a scheme.

        A bare word that is neither would silently become an asset nothing ever updates.
        Reported at the entry itself (the error's location names its index).
        """
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        errors: list[InitErrorDetails] = []
        for index, event in enumerate(value):
            why = event_problem(event)
            if why is not None:
                error = PydanticCustomError("schedule_event", "{why}", {"why": why})
                errors.append(InitErrorDetails(type=error, loc=(index,), input=event))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return value

    @model_validator(mode="after")
    def _something_to_run_on(self) -> ScheduleConfig:
        if self.time is None and not self.events:
            raise ValueError("give `time`, `events` or both (or `schedule: null` for manual runs only)")
        if self.events and self.time in ("@once", "@continuous"):
            raise ValueError(
                f"`time: {self.time}` cannot be combined with `events`; use a cron, preset or interval"
            )
        return self


# The events a pipeline updates itself (x-mlops://<pipeline>/<event>); any other entry of
# `schedule.events` is an asset URI.
PIPELINE_EVENTS = ("drift", "new_data")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S")


def event_problem(event: str) -> str | None:
    """Why ``event`` cannot be a ``schedule.events`` entry, or None when it can."""
    if event in PIPELINE_EVENTS:
        return None
    match = _URI_SCHEME.match(event)
    if match is None:
        close = difflib.get_close_matches(event.lower(), PIPELINE_EVENTS, n=1, cutoff=0.6)
        if close:
            return (
                f"unknown event {event!r}; did you mean {close[0]!r}? (an event is "
                f"{' or '.join(PIPELINE_EVENTS)}, or an asset URI with a scheme such as s3://bucket/key)"
            )
        return (
            f"{event!r} is neither a pipeline event ({', '.join(PIPELINE_EVENTS)}) nor an asset URI; "
            "an asset needs a scheme, e.g. s3://bucket/incoming/ or x-team://features/ready"
        )
    if match.group(1).lower() == "airflow":
        return "the asset URI scheme 'airflow' is reserved by Airflow; use another, e.g. x-team://..."
    if not event.isascii():
        return "an asset URI must be ASCII only (Airflow rejects others)"
    return None


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
        "environment variable, else `$AIRFLOW_HOME/mlops-artifacts`.",
    )
    connection: str | None = Field(None, description="Airflow AWS connection id for an s3:// root.")


class NewDataWatch(_Strict):
    """Where new training batches land, and how often to look."""

    location: str = Field(
        description="Local folder (relative to the spec) or `s3://bucket/prefix` that batches land in."
    )
    pattern: str = Field(
        "**/*.parquet",
        min_length=1,
        description="Glob of the batch files below `location`; dot-files and `*.part`/`*.tmp` are ignored.",
    )
    poll_interval: Duration = Field(dt.timedelta(seconds=30), description="How often the watcher lists it.")
    settle: Duration = Field(
        dt.timedelta(seconds=5),
        description="Files younger than this are not taken yet (a copy may still be running).",
    )

    @field_validator("poll_interval")
    @classmethod
    def _positive_poll(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("poll_interval must be positive")
        return value


class DataConfig(_Strict):
    """The training data."""

    source: str = Field(
        description="Path or s3:// URI of the training batch. Templated: `{{ ds }}` (the run's logical "
        "date) and other Airflow macros select the run's partition (see `{{ ds }}` and the data interval)."
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
    event_source: str | None = Field(
        None,
        description="Training data of a run started by an asset event whose extra names no data "
        "(`extra.data`), e.g. drift found on an unlabelled window. Such runs have no data interval, so "
        "no `{{ ds }}` here. Default: such a run fails and says so.",
    )
    new_data: NewDataWatch | None = Field(
        None,
        description="Watch a folder or S3 prefix for new batches (an asset watcher in the "
        "triggerer); each new batch is a `new_data` event that starts a training run on it. Needs "
        "`new_data` in `schedule.events`.",
    )

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

    checks: list[
        Literal[
            "duplicates",
            "label_issues",
            "out_of_distribution",
            "class_balance",
            "feature_shift",
            "label_flips",
            "outliers",
        ]
    ] = Field(
        default_factory=lambda: ["duplicates", "label_issues"],  # type: ignore[arg-type]
        description="Which screens run. duplicates: exact and near duplicate rows with conflicting "
        "labels (the copies that disagree with the model's view). label_issues: rows whose label "
        "gradient-boosting models cross-fitted on the reference find unlikely, judged against the "
        "reference's rows of the same class (conformal p-values, Benjamini-Hochberg at a 10 % false "
        "discovery rate; without a reference: out-of-fold models on the batch, a fixed cut). "
        "out_of_distribution: rows an isolation forest fitted on half the reference finds more "
        "anomalous than the other half (same test), or with a value beyond outlier_threshold. "
        "class_balance: a label rate far from the "
        "reference's. feature_shift: a feature whose distribution moved beyond max_feature_shift. "
        "The dataset checks (class_balance, feature_shift) fail the run without quarantining rows. "
        "label_flips and outliers are the old names of label_issues and out_of_distribution.",
    )
    max_suspect_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Above this share of suspect rows the run stops before training (a small batch's sampling "
        "noise is tolerated: the 95th percentile of Binomial(rows, share), e.g. 3 of 60 rows at 2 %). Suspects "
        "are quarantined either way.",
    )
    neighbours: int = Field(
        10, ge=3, le=100, description="Deprecated and ignored: k of the old label-flip screen."
    )
    outlier_threshold: float = Field(
        8.0,
        gt=0,
        description="out_of_distribution: robust z-score (against the reference) above which a value "
        "makes its row an outlier (with a reference: only a value outside the reference's range).",
    )
    max_class_shift: float = Field(
        0.5,
        gt=0,
        description="class_balance: largest allowed relative change of the positive rate (binary) or of any "
        "class's share (multiclass).",
    )
    max_feature_shift: float = Field(
        0.1,
        gt=0,
        le=1,
        description="feature_shift: largest allowed Kolmogorov-Smirnov (numeric) or total-variation "
        "(categorical) distance between a feature in the batch and in the reference.",
    )
    folds: int = Field(
        5,
        ge=2,
        le=20,
        description="label_issues: folds of the cross-fitted (or, without a reference, out-of-fold) models.",
    )
    max_fit_rows: int = Field(
        50_000,
        ge=100,
        description="label_issues: at most this many rows train each fold's model (every row is scored).",
    )
    seed: int = Field(0, ge=0, description="Seed of the folds, subsamples and models of the screen.")


class TrainingParams(_Strict):
    """Hyper-parameters of the built-in models (``mlp``; ``cnn`` uses them for its dense head)."""

    epochs: int = Field(20, ge=1, le=10_000)
    lr: float = Field(1e-3, gt=0, le=10)
    batch_size: int = Field(512, ge=1, le=1_000_000)
    hidden_units: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [64, 32], min_length=1
    )
    dropout: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="`balanced` weighs the positive class by its rarity."
    )
    image_shape: list[Annotated[int, Field(ge=1)]] | None = Field(
        None,
        min_length=3,
        max_length=3,
        description="`cnn` only: `[channels, height, width]` of the image the feature columns hold "
        "(one column per pixel value, in row-major order).",
    )
    conv_channels: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [16, 32],
        min_length=1,
        max_length=6,
        description="`cnn` only: output channels of each 3x3 convolution block.",
    )


class PrivacyConfig(_Strict):
    """Differentially private training (DP-SGD through Opacus, the `dp` extra).

    The budget is enforced: a run whose accounted epsilon would exceed `epsilon` fails before it
    trains. Covers the network's weights; the input scaling statistics are computed without noise.
    """

    epsilon: float = Field(gt=0, le=100, description="Privacy budget: the largest epsilon the run may spend.")
    delta: float = Field(
        1e-5, gt=0, lt=1, description="delta of (epsilon, delta)-DP; must be below 1 / training rows."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Per-sample gradient clipping norm.")
    noise_multiplier: float | None = Field(
        None,
        gt=0,
        description="Noise scale; default: the smallest that keeps epsilon within the budget after every epoch.",
    )


_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_QUANTITY_CPU = r"^\d+(\.\d+)?m?$"
_QUANTITY_MEMORY = r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"


class TrainingResources(_Strict):
    """What the trainer container gets (requests equal limits: the pod is never throttled mid-run)."""

    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description="NVIDIA GPUs: a `nvidia.com/gpu` limit (Kubernetes) or device request (Docker).",
    )
    cpu: str | None = Field(None, pattern=_QUANTITY_CPU, description="CPU cores, e.g. `4` or `500m`.")
    memory: str | None = Field(None, pattern=_QUANTITY_MEMORY, description="Memory, e.g. `16Gi`.")


class SecretEnv(_Strict):
    """An environment variable of the trainer pod filled from a Kubernetes secret (by reference)."""

    env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name, e.g. `AWS_ACCESS_KEY_ID`."
    )
    secret: str = Field(pattern=_K8S_NAME, description="Name of the Kubernetes secret.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", description="Key inside the secret.")


class Toleration(_Strict):
    """A Kubernetes toleration (e.g. for the taint of a GPU node pool)."""

    key: str | None = Field(None, description="Taint key, e.g. `nvidia.com/gpu`; null matches every key.")
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = Field(None, description="Taint value (with `operator: Equal`).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


class KubernetesTraining(_Strict):
    """The `kubernetes` backend: the trainer in a hardened pod (KubernetesPodOperator)."""

    namespace: str = Field("default", pattern=_K8S_NAME, description="Namespace of the trainer pod.")
    connection: str = Field("kubernetes_default", description="Airflow Kubernetes connection id.")
    service_account: str | None = Field(
        None, pattern=_K8S_NAME, description="Service account of the pod (its token is never mounted)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pod must run on (e.g. a GPU node pool)."
    )
    tolerations: list[Toleration] | None = Field(
        None,
        description="Taints the pod tolerates; default with `resources.gpus`: the NVIDIA GPU taint "
        "(`nvidia.com/gpu`, Exists, NoSchedule).",
    )
    secrets: list[SecretEnv] = Field(
        default_factory=list,
        description="Credentials as references to Kubernetes secrets (e.g. the S3 keys); never values.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Plain environment variables of the pod (e.g. `AWS_ENDPOINT_URL`); a name that "
        "looks like a credential is refused: use `secrets`.",
    )

    @field_validator("env")
    @classmethod
    def _no_credentials_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        # one rule with the pod operator (which checks the rendered values again)
        from airflow_mlops.redaction import plain_env_problem

        problem = plain_env_problem(env)
        if problem:
            raise ValueError(
                f"{problem}; give them under `secrets` (a Kubernetes secret reference: env, secret, key)"
            )
        return env

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[Annotated[str, Field(pattern=_K8S_NAME)]] = Field(
        default_factory=list, description="Secrets holding registry credentials."
    )
    startup_timeout: Duration = Field(
        dt.timedelta(minutes=10),
        description="How long the pod may stay pending (image pull, GPU node scale-up).",
    )
    scratch_size: str = Field(
        "20Gi", pattern=_QUANTITY_MEMORY, description="Size limit of the `/tmp` scratch volume (emptyDir)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    priority_class: str | None = Field(None, pattern=_K8S_NAME, description="Pod priority class.")
    deferrable: bool = Field(True, description="Wait for the pod in the triggerer, not in a worker slot.")


class DockerTraining(_Strict):
    """The `docker` backend: the trainer in a hardened container (DockerOperator)."""

    url: str | None = Field(
        None, description="Docker daemon URL; default: `DOCKER_HOST`, else the local socket."
    )
    connection: str | None = Field(None, description="Airflow Docker connection id (registry login).")
    network_mode: str | None = Field(None, description="Docker network of the container (e.g. the stack's).")
    scratch_size: str = Field(
        "20g", pattern=r"^\d+[kmg]?$", description="Size of the `/tmp` tmpfs scratch, e.g. `20g`."
    )


BUILTIN_MODELS = ("mlp", "cnn")
ESTIMATOR_SHORT_NAMES = ("xgboost", "lightgbm")
_CLASS_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Z][A-Za-z0-9_]*$"


def model_kind(model: str) -> str:
    """What ``training.model`` names: ``builtin`` (mlp, cnn), ``estimator`` (xgboost, lightgbm, or
    a class path such as ``sklearn.ensemble.RandomForestClassifier``) or ``fit`` (your own
    ``package.module:fit`` function)."""
    if model in BUILTIN_MODELS:
        return "builtin"
    if model in ESTIMATOR_SHORT_NAMES or (":" not in model and re.match(_CLASS_PATH, model)):
        return "estimator"
    return "fit"


class TrainingConfig(_Strict):
    """How the model is trained, and where."""

    backend: Literal["local", "kubernetes", "docker"] = Field(
        "local",
        description="`local`: the trainer in a subprocess of the worker; `kubernetes`: in a hardened "
        "(GPU) pod; `docker`: in a hardened container. The same trainer runs in all three.",
    )
    model: str = Field(
        "mlp",
        description="`mlp` (tabular network), `cnn` (images stored as pixel columns; set "
        "`params.image_shape`), `xgboost`, `lightgbm`, the import path of an estimator class (e.g. "
        "`sklearn.ensemble.HistGradientBoostingClassifier`, `xgboost.XGBRegressor`) or your own "
        "`package.module:fit` (see docs/training.md).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="`mlp`/`cnn`: the network's hyper-parameters (epochs, lr, batch_size, hidden_units, "
        "dropout, weight_decay, class_weight, image_shape, conv_channels); an estimator: its constructor "
        "arguments (e.g. `{n_estimators: 300, max_depth: 6}`); your own fit: whatever it reads.",
        json_schema_extra={"examples": [{"epochs": 20, "hidden_units": [64, 32]}, {"n_estimators": 300}]},
    )
    python_path: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Folders (relative to the spec's folder, or absolute) put on the `local` trainer's "
        "Python path so it imports your own package (fit functions, torch modules, estimator classes). "
        "The dags folder is always on it. For `docker` and `kubernetes`, install your package in the "
        "trainer image (see docs/training.md).",
    )
    _network: TrainingParams | None = PrivateAttr(default=None)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Free-form settings passed to your own `fit` entrypoint."
    )
    privacy: PrivacyConfig | None = Field(None, description="DP-SGD with an enforced epsilon budget.")
    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Share of accepted rows kept out of training for evaluation."
    )
    validation_fraction: float = Field(
        0.1,
        ge=0,
        lt=0.9,
        description="Share of the training rows the built-in trainer keeps for validation (the best "
        "epoch, and the operating threshold of `evaluation.threshold`); 0 trains on every row (then "
        "the threshold must be a number).",
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many epochs (`mlp`, `cnn`) or boosting rounds (`xgboost`, `lightgbm`) "
        "without progress on the validation rows; null: train them all.",
    )
    seed: int = Field(42, description="Seed for the split, initialisation and shuffling.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="`auto`: bf16 autocast on a GPU that supports it, float32 otherwise."
    )
    image: str | None = Field(
        None, min_length=1, description="Trainer image (`kubernetes`, `docker`), see images/trainer."
    )
    resources: TrainingResources = Field(default_factory=TrainingResources)
    kubernetes: KubernetesTraining | None = Field(None, description="Settings of the `kubernetes` backend.")
    docker: DockerTraining | None = Field(None, description="Settings of the `docker` backend.")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value in BUILTIN_MODELS or value in ESTIMATOR_SHORT_NAMES or re.match(ENTRYPOINT_PATTERN, value):
            return value
        raise ValueError(
            "a built-in model (`mlp`, `cnn`, `xgboost`, `lightgbm`), the import path of an estimator class "
            "(`sklearn.ensemble.RandomForestClassifier`) or of your fit function (`pkg.module:fit`)"
        )

    @property
    def kind(self) -> str:
        """``builtin``, ``estimator`` or ``fit`` (see :func:`model_kind`)."""
        return model_kind(self.model)

    @property
    def network(self) -> TrainingParams:
        """The built-in networks' hyper-parameters (defaults for any other model)."""
        return self._network if self._network is not None else TrainingParams()

    def hyperparameters(self) -> dict[str, Any]:
        """What the trainer gets as ``params``: the network's (set keys only) or the estimator's."""
        if self.kind == "builtin":
            return self.network.model_dump(exclude_unset=True)
        return dict(self.params)

    @model_validator(mode="after")
    def _params_fit_the_model(self) -> TrainingConfig:
        """``params`` of a built-in network are checked key by key (located at their keys); an
        estimator's against the estimator's constructor when its library is known."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        kind = self.kind
        if kind == "builtin":
            try:
                self._network = TrainingParams.model_validate(self.params)
            except ValidationError as exc:
                details = [
                    InitErrorDetails(
                        type=PydanticCustomError("params", "{why}", {"why": e["msg"]}),
                        loc=("params", *e["loc"]),
                        input=e.get("input"),
                    )
                    for e in exc.errors()
                ]
                raise ValidationError.from_exception_data(type(self).__name__, details) from None
            return self
        if kind == "estimator" and self.model not in ESTIMATOR_SHORT_NAMES:
            from airflow_mlops.spec import estimators

            if estimators.in_known_library(self.model):
                entry = estimators.lookup(self.model)
                why = None
                if entry is None:
                    hint = estimators.suggest(self.model)
                    why = f"unknown estimator {self.model!r}" + (
                        f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
                    )
                elif entry["kind"] == "other":
                    why = (
                        f"{self.model} is neither a classifier nor a regressor; name a model "
                        "(e.g. sklearn.ensemble.RandomForestClassifier)"
                    )
                if why is not None:
                    error = PydanticCustomError("estimator", "{why}", {"why": why})
                    details = [InitErrorDetails(type=error, loc=("model",), input=self.model)]
                    raise ValidationError.from_exception_data(type(self).__name__, details)
                assert entry is not None
                unknown = sorted(set(self.params) - set(entry["params"])) if not entry["kwargs"] else []
                if unknown:
                    details = []
                    for name in unknown:
                        close = difflib.get_close_matches(name, entry["params"], n=1)
                        why = f"{self.model} takes no parameter {name!r}" + (
                            f"; did you mean {close[0]!r}?"
                            if close
                            else f" (it takes: {', '.join(entry['params'])})"
                        )
                        details.append(
                            InitErrorDetails(
                                type=PydanticCustomError("params", "{why}", {"why": why}),
                                loc=("params", name),
                                input=self.params[name],
                            )
                        )
                    raise ValidationError.from_exception_data(type(self).__name__, details)
        return self

    def estimator_kind(self) -> str | None:
        """``classifier`` / ``regressor`` for a known library estimator path, else None."""
        if self.kind != "estimator" or self.model in ESTIMATOR_SHORT_NAMES:
            return None
        from airflow_mlops.spec import estimators

        entry = estimators.lookup(self.model)
        return entry["kind"] if entry else None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        container = self.backend in ("kubernetes", "docker")
        if container and not self.image:
            raise ValueError(
                f"`backend: {self.backend}` needs `image`: the trainer image (see images/trainer)"
            )
        if not container and (self.image or self.resources.model_fields_set):
            raise ValueError(
                "`image` and `resources` apply to the kubernetes and docker backends; with `backend: local` "
                "the trainer runs on the worker (pick a GPU worker with `stages.train.queue`)"
            )
        for name in ("kubernetes", "docker"):
            if getattr(self, name) is not None and self.backend != name:
                raise ValueError(f"`{name}` settings are given but `backend` is {self.backend!r}")
        if self.resources.gpus and self.device == "cpu":
            raise ValueError("`resources.gpus` is set but `device: cpu`; use `auto` or `cuda`")
        if self.model == "cnn" and self.params.get("image_shape") is None:
            raise ValueError("`model: cnn` needs `params.image_shape: [channels, height, width]`")
        if self.model == "mlp" and "image_shape" in self.params:
            raise ValueError("`params.image_shape` applies to `model: cnn` only")
        custom = self.kind == "fit"
        if self.options and not custom:
            raise ValueError("`options` are for your own fit entrypoint; the built-in models take `params`")
        if self.privacy is not None and self.kind != "builtin":
            raise ValueError(
                "`privacy` (DP-SGD) applies to the built-in `mlp` and `cnn`; your own fit handles its own privacy"
            )
        if self.early_stopping_patience is not None and self.kind == "fit":
            raise ValueError(
                "`early_stopping_patience` applies to the built-in networks and to XGBoost and LightGBM; your "
                "own fit stops where it decides"
            )
        if (
            self.early_stopping_patience is not None
            and self.kind == "estimator"
            and self.model not in ESTIMATOR_SHORT_NAMES
            and not self.model.startswith(("xgboost.", "lightgbm."))
        ):
            raise ValueError(
                f"`early_stopping_patience` applies to the built-in networks, XGBoost and LightGBM, not "
                f"{self.model}; use the estimator's own early-stopping parameters in `params`"
            )
        if self.python_path and self.backend != "local":
            raise ValueError(
                f"`python_path` applies to `backend: local`; with `{self.backend}`, install your package in "
                "the trainer image (FROM the airflow-mlops trainer image, pip install it: see docs/training.md)"
            )
        if "validation_fraction" in self.model_fields_set and custom:
            raise ValueError(
                "`validation_fraction` applies to the built-in models and estimators; your own fit splits "
                "its own validation rows (see docs/training.md)"
            )
        return self


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


MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
# The values each metric can take (from the one vocabulary in airflow_mlops/metrics.py).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    m.name: (float(m.low), float(m.high)) for m in METRIC_TABLE.values()
}
TaskName = Literal["binary", "multiclass", "regression"]
ColumnName = Annotated[str, Field(min_length=1)]


class BinnedSlice(_Strict):
    """A numeric column cut into slices at fixed edges."""

    column: ColumnName = Field(description="The numeric column to slice.")
    bins: list[float] = Field(
        min_length=1,
        description="Edges, strictly increasing, e.g. `[0, 50, 500]` gives the slices `< 0`, `[0, 50)`, "
        "`[50, 500)` and `>= 500`; missing values are a slice of their own.",
    )

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("bin edges must be finite numbers")
        for low, high in itertools.pairwise(value):
            if not low < high:
                raise ValueError(f"bin edges must be strictly increasing: {low:g} is followed by {high:g}")
        return value


class GapBound(_Strict):
    max_gap: float = Field(
        gt=0, description="Largest allowed difference between the best and the worst usable slice."
    )


class FairnessConfig(_Strict):
    """The candidate's metrics on each slice of the holdout; the gap between slices is a gate."""

    slices: list[ColumnName | BinnedSlice] = Field(
        min_length=1,
        description="What to slice by: a column name (one slice per value) or `{column: ..., bins: [...]}` "
        "(numeric ranges). Each entry is gated on its own.",
    )
    metrics: dict[MetricName, GapBound] = Field(
        min_length=1,
        description="Largest allowed gap (best minus worst usable slice) per metric, e.g. "
        "`{roc_auc: {max_gap: 0.1}}`.",
    )
    min_slice_rows: int = Field(
        100, ge=1, description="Smaller slices are reported but not gated (their metrics are noise)."
    )
    min_slice_positives: int = Field(
        10,
        ge=1,
        description="For the metrics that need positives (`recall`, `precision`, `f1`, `roc_auc`, "
        "`pr_auc`): slices with fewer positive rows are reported but not gated for them.",
    )

    @field_validator("slices")
    @classmethod
    def _distinct_columns(cls, value: list[str | BinnedSlice]) -> list[str | BinnedSlice]:
        names = [s if isinstance(s, str) else s.column for s in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"column(s) {', '.join(map(repr, repeated))} are sliced more than once")
        return value


class NoiseSettings(_Strict):
    std: float = Field(
        gt=0, description="Standard deviation of the Gaussian noise, in units of each feature's holdout std."
    )
    features: list[ColumnName] | None = Field(
        None, min_length=1, description="Numeric features to perturb; default: every numeric feature."
    )


class Perturbation(_Strict):
    """One perturbed copy of the holdout: give `missing` or `noise`."""

    missing: list[ColumnName] | None = Field(
        None,
        min_length=1,
        description="Features blanked out on every row: the model imputes them (numbers: the training mean; "
        "categories: no category).",
    )
    noise: NoiseSettings | None = Field(
        None, description="Gaussian noise added to numeric features, e.g. `{std: 0.1, features: [amount]}`."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Perturbation:
        if (self.missing is None) == (self.noise is None):
            raise ValueError("a perturbation is `{missing: [feature, ...]}` or `{noise: {std: ...}}`")
        return self


class DropBound(_Strict):
    max_drop: float = Field(
        ge=0,
        description="How far the metric may fall below its clean holdout value (for `log_loss`: rise above).",
    )


class RobustnessConfig(_Strict):
    """The candidate scored on perturbed copies of the holdout; the drop from the clean score is a gate."""

    perturbations: list[Perturbation] = Field(
        min_length=1,
        description="Each entry is one perturbed copy: `{missing: [feature, ...]}` or "
        "`{noise: {std: 0.1, features: [...]}}`.",
    )
    metrics: dict[MetricName, DropBound] = Field(
        min_length=1, description="Allowed drop per metric, e.g. `{roc_auc: {max_drop: 0.05}}`."
    )
    seed: int = Field(0, description="Seed of the noise: the same seed gives the same perturbed rows.")


ThresholdRuleName = Literal["fixed", "best_f1", "min_precision", "min_recall"]


class ThresholdRule(_Strict):
    """How the operating threshold is chosen (on the trainer's validation rows, never the holdout)."""

    rule: ThresholdRuleName = Field(
        description="`best_f1`: the highest F1; `min_precision`: the highest recall with precision >= "
        "`value`; `min_recall`: the highest precision with recall >= `value`; `fixed`: `value` itself."
    )
    value: float | None = Field(
        None,
        description="The rule's target: in (0, 1] for `min_precision` and `min_recall`, in (0, 1) for "
        "`fixed`; not given for `best_f1`.",
    )

    @model_validator(mode="after")
    def _value_fits_rule(self) -> ThresholdRule:
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        why = ""
        if self.rule == "best_f1":
            if self.value is not None:
                why = "`rule: best_f1` takes no `value` (it picks the threshold with the highest F1)"
        elif self.value is None:
            example = {"fixed": "0.5", "min_precision": "0.8", "min_recall": "0.9"}[self.rule]
            why = f"`rule: {self.rule}` needs `value`, e.g. `{{rule: {self.rule}, value: {example}}}`"
        elif self.rule == "fixed" and not 0 < self.value < 1:
            why = f"a fixed threshold lies in (0, 1): at {self.value:g} " + (
                "no row is positive" if self.value >= 1 else "every row is positive"
            )
        elif not 0 < self.value <= 1:
            measure = self.rule.removeprefix("min_")
            why = f"{measure} lies in [0, 1]: `value` must be in (0, 1]" + (
                f" (a percentage? write {self.value / 100:g})" if 1 < self.value <= 100 else ""
            )
        if why:
            error = PydanticCustomError("threshold_rule", "{why}", {"why": why})
            details = InitErrorDetails(type=error, loc=("value",), input=self.value)
            raise ValidationError.from_exception_data(type(self).__name__, [details])
        return self

    def as_config(self) -> dict[str, Any]:
        """The rule as the trainer takes it (``{"rule": ..., "value": ...}``, no value for best_f1)."""
        return self.model_dump(exclude_none=True)

    @property
    def fallback(self) -> float:
        """The threshold for a model that records none (trained before thresholds were stored):
        the fixed value, else 0.5."""
        return self.value if self.rule == "fixed" and self.value is not None else 0.5


def _threshold_rule(value: Any) -> Any:
    """A bare number is the fixed rule: ``threshold: 0.7`` is ``{rule: fixed, value: 0.7}``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"rule": "fixed", "value": value}
    if not isinstance(value, (dict, ThresholdRule)):
        raise ValueError(
            "a number (a fixed threshold) or a rule: `{rule: best_f1}`, `{rule: min_precision, value: "
            "0.8}`, `{rule: min_recall, value: 0.9}`"
        )
    return value


Threshold = Annotated[
    ThresholdRule, BeforeValidator(_threshold_rule, json_schema_input_type=float | ThresholdRule)
]


class EvaluationConfig(_Strict):
    """Gates the candidate must pass on the holdout set. A gate that cannot decide blocks."""

    metrics: dict[MetricName, MetricBound] = Field(
        default_factory=dict,
        description="Absolute thresholds, e.g. `{roc_auc: {min: 0.85}}`, `{rmse: {max: 40}}`: any metric of "
        "the task (see the metric table). A bound outside the metric's range (shares lie in [0, 1]; "
        "log_loss, rmse, mae, mape are >= 0; r2 is <= 1) is refused.",
    )
    compare_to_champion: dict[MetricName, ChampionComparison] = Field(
        default_factory=dict,
        description="Allowed regression versus the champion on the same holdout rows, e.g. "
        "`{roc_auc: {max_regression: 0.03}}`. No champion yet: absolute thresholds only.",
    )
    threshold: Threshold = Field(
        default_factory=lambda: ThresholdRule(rule="best_f1"),
        description="The operating threshold (a row is positive where score >= threshold): a number "
        "(fixed) or a rule, `{rule: best_f1}`, `{rule: min_precision, value: 0.8}`, `{rule: "
        "min_recall, value: 0.9}`. The trainer chooses it on its validation rows and stores it with "
        "the model; every model (candidate, champion, the monitor's) is scored at its own.",
    )
    fairness: FairnessConfig | None = Field(
        None,
        description="Fairness across slices of the holdout: the largest metric gap between slices is a gate.",
    )
    robustness: RobustnessConfig | None = Field(
        None,
        description="Robustness under perturbations (missing features, Gaussian noise): the metric's drop "
        "from the clean holdout is a gate.",
    )

    @model_validator(mode="after")
    def _bounds_within_range(self) -> EvaluationConfig:
        """A bound outside the metric's range can never pass (or never fail): refuse it here,
        at its key, rather than block (or wave through) every run."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        errors: list[InitErrorDetails] = []

        def refuse(loc: tuple[str, ...], value: float, why: str) -> None:
            error = PydanticCustomError("metric_range", "{why}", {"why": why})
            errors.append(InitErrorDetails(type=error, loc=loc, input=value))

        for metric, bound in self.metrics.items():
            low, high = METRIC_RANGES[metric]
            span = f"[{low:g}, {high:g}]" if high != float("inf") else f">= {low:g}"
            for side, value in (("min", bound.min), ("max", bound.max)):
                if value is None:
                    continue
                if (side == "min" and value > high) or (side == "max" and value < low):
                    refuse(
                        ("metrics", metric, side),
                        value,
                        f"{metric} lies in {span}: {side} {value:g} can never pass, so every run "
                        f"would be blocked (a percentage? write {value / 100:g})"
                        if value > 1 and high == 1.0
                        else f"{metric} lies in {span}: {side} {value:g} can never pass",
                    )
                elif (side == "min" and value < low) or (side == "max" and value > high):
                    refuse(
                        ("metrics", metric, side),
                        value,
                        f"{metric} lies in {span}: {side} {value:g} can never fail, so the gate "
                        "checks nothing",
                    )
        for metric, comparison in self.compare_to_champion.items():
            low, high = METRIC_RANGES[metric]
            if comparison.max_regression >= high - low:
                refuse(
                    ("compare_to_champion", metric, "max_regression"),
                    comparison.max_regression,
                    f"{metric} lies in [{low:g}, {high:g}]: max_regression "
                    f"{comparison.max_regression:g} lets any candidate pass the champion comparison",
                )
        # A gap or a drop as wide as the metric's whole range can never fail.
        allowances: list[tuple[tuple[str, ...], str, str, float, str]] = []
        if self.fairness is not None:
            allowances += [
                (("fairness", "metrics", m), m, "max_gap", g.max_gap, "any gap between slices")
                for m, g in self.fairness.metrics.items()
            ]
        if self.robustness is not None:
            allowances += [
                (("robustness", "metrics", m), m, "max_drop", d.max_drop, "any drop under perturbation")
                for m, d in self.robustness.metrics.items()
            ]
        for loc, measured, key, value, what in allowances:
            low, high = METRIC_RANGES[measured]
            if value >= high - low:
                refuse(
                    (*loc, key),
                    value,
                    f"{measured} lies in [{low:g}, {high:g}]: {key} {value:g} allows {what}, so the gate "
                    "checks nothing",
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class SigningConfig(_Strict):
    method: Literal["key", "certificate", "sigstore"] = Field(
        "key",
        description="`key`: an elliptic-curve key pair. `certificate`: a key with its X.509 signing "
        "certificate and chain; verifiers trust the root CA bundle (and optionally an identity). "
        "`sigstore`: keyless signing with an OIDC identity (Fulcio certificate, Rekor log); "
        "verifiers trust the identity and its issuer. The connection must hold this method "
        "(extra `method`); another is refused.",
    )
    connection: str = Field(
        "mlops_signing",
        description="Airflow connection holding the signing identity: the PEM private key "
        "(password) and the public key (extra `public_key`); for `certificate` also extra "
        "`certificate`, `certificate_chain`, `ca_bundle`, `identity`; for `sigstore` extra "
        "`identity`, `oidc_issuer` and an optional token (password). See docs/security.md.",
    )


class SecurityConfig(_Strict):
    """Model scanning and signing. Scanning always runs; it cannot be switched off."""

    signing: SigningConfig = Field(default_factory=SigningConfig)
    allowed_pickle_globals: list[str] = Field(
        default_factory=list,
        description="Extra `module.name` globals the pickle scanner accepts (default: none).",
    )


class RolloutGate(_Strict):
    """The later gate of a shadow or canary rollout, run on each live window of the monitor DAG."""

    min_rows: int = Field(
        500, ge=1, description="Rows of one live window both models must score before it decides."
    )
    min_agreement: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of rows on which candidate and champion decide alike: the same class (binary: "
        "each at its own threshold), or for a regression a prediction within `max_relative_error` of the "
        "champion's; null: not checked.",
    )
    max_relative_error: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Regression: a row agrees when |candidate - champion| <= max_relative_error x "
        "max(|champion|, the window's mean |champion|).",
    )
    compare_to_champion: dict[MetricName, ChampionComparison] = Field(
        default_factory=dict,
        description="On labelled windows: how far the candidate may fall behind the champion on the "
        "same live rows, e.g. `{roc_auc: {max_regression: 0.02}}`. An unlabelled window cannot "
        "decide these and waits for the next.",
    )
    max_windows: int = Field(
        7,
        ge=1,
        le=365,
        description="Windows without a decision (too few rows, no labels) before the rollout is "
        "aborted: a rollout that cannot decide ends, it never becomes champion by default.",
    )

    @model_validator(mode="after")
    def _decides_something(self) -> RolloutGate:
        if self.min_agreement is None and not self.compare_to_champion:
            raise ValueError("the rollout gate checks nothing: set min_agreement or compare_to_champion")
        for metric, comparison in self.compare_to_champion.items():
            low, high = METRIC_RANGES[metric]
            if comparison.max_regression >= high - low:
                raise ValueError(
                    f"compare_to_champion.{metric}.max_regression {comparison.max_regression:g} lets any "
                    "candidate pass"
                )
        return self


class RolloutConfig(_Strict):
    """`direct`, `shadow` (the candidate sees traffic mirrored, its answers unused) or `canary`
    (the serving layer sends it a share of traffic); see docs/spec.md."""

    strategy: Literal["direct", "shadow", "canary"] = Field("direct")
    alias: str | None = Field(
        None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="The rollout alias the candidate gets first; default: `shadow` or `canary`.",
    )
    traffic: float | None = Field(
        None,
        gt=0,
        le=0.5,
        description="`canary`: the share of requests the serving layer sends to the canary "
        "(registered-model tag `mlops.<alias>.traffic_share`); default 0.1.",
    )
    gate: RolloutGate = Field(default_factory=RolloutGate)

    @property
    def rollout_alias(self) -> str | None:
        return None if self.strategy == "direct" else (self.alias or self.strategy)

    @property
    def traffic_share(self) -> float | None:
        if self.strategy != "canary":
            return None
        return 0.1 if self.traffic is None else self.traffic

    @model_validator(mode="after")
    def _settings_fit_strategy(self) -> RolloutConfig:
        if self.traffic is not None and self.strategy != "canary":
            raise ValueError(f"`traffic` applies to `strategy: canary`, not {self.strategy!r}")
        if self.strategy == "direct" and ("gate" in self.model_fields_set or self.alias):
            raise ValueError(
                "`alias` and `gate` apply to `shadow` and `canary`; `direct` moves the alias at once"
            )
        return self


class ApprovalConfig(_Strict):
    """A human-in-the-loop approval (Airflow 3's ApprovalOperator) before the alias moves."""

    timeout: Duration | None = Field(
        dt.timedelta(days=1),
        description="How long to wait for an answer; no answer in time rejects (the alias stays). "
        "null: wait without limit.",
    )
    assigned_users: list[str] = Field(
        default_factory=list,
        description="Airflow user ids (or names) who may answer; empty: anyone allowed to respond.",
    )
    subject: str | None = Field(
        None, description="Headline of the request; default names the model and version."
    )

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be positive")
        return value


class RegistryConfig(_Strict):
    """MLflow model registry."""

    model_name: str = Field(min_length=1, max_length=256)
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    connection: str = Field(
        "mlflow_default", description="Airflow connection with the MLflow tracking server URL (host)."
    )
    experiment: str | None = Field(None, description="MLflow experiment; default: the pipeline name.")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig,
        description="How a blessed version reaches users: `direct` (the alias moves at once), "
        "`shadow` or `canary` (a rollout alias first; the monitor's live windows decide).",
    )
    approval: ApprovalConfig | None = Field(
        None,
        description="A person approves in the Airflow UI (human-in-the-loop) before the alias moves; "
        "the approver is recorded.",
    )

    @model_validator(mode="after")
    def _rollout_alias_differs(self) -> RegistryConfig:
        if self.rollout.strategy != "direct" and self.rollout.rollout_alias == self.alias:
            raise ValueError(
                f"rollout.alias {self.rollout.rollout_alias!r} is the champion alias; name the "
                "rollout alias differently (default: the strategy's name)"
            )
        return self


# `monitoring.reference` values that are not locations.
MONITOR_REFERENCE_KEYWORDS = ("champion", "data")
NumericDriftTest = Literal["ks", "wasserstein", "psi"]
CategoricalDriftTest = Literal["chi2", "jensen_shannon", "psi"]


class DriftTestsConfig(_Strict):
    """Distribution tests of the live window against the reference (see docs/drift.md)."""

    numeric_tests: list[NumericDriftTest] = Field(
        default_factory=lambda: ["ks", "wasserstein", "psi"],  # type: ignore[arg-type]
        min_length=1,
        description="Tests on numeric features.",
    )
    categorical_tests: list[CategoricalDriftTest] = Field(
        default_factory=lambda: ["chi2", "jensen_shannon", "psi"],  # type: ignore[arg-type]
        min_length=1,
        description="Tests on categorical features.",
    )
    p_value: float = Field(0.05, gt=0, lt=1, description="Significance level of the p-value tests.")
    correction: Literal["bonferroni", "bh", "none"] = Field(
        "bonferroni",
        description="Multiple-testing correction across features: Bonferroni, Benjamini-Hochberg or none.",
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="The data set has drifted when at least this share of features drifted."
    )
    psi_threshold: float = Field(
        0.2, gt=0, description="Population stability index above which a feature drifted."
    )
    wasserstein_threshold: float = Field(
        0.1,
        gt=0,
        description="Wasserstein distance (in reference standard deviations) above which it drifted.",
    )
    jensen_shannon_threshold: float = Field(
        0.1, gt=0, le=1, description="Jensen-Shannon distance above which a categorical feature drifted."
    )
    multivariate: bool = Field(
        True,
        description="Also run the MMD test on all numeric features together (catches correlation shifts).",
    )
    mmd_permutations: int = Field(100, ge=10, le=10_000, description="Permutations of the MMD p-value.")
    mmd_max_rows: int = Field(5000, ge=100, description="Rows sampled per side for MMD.")
    mmd_p_value: float = Field(0.05, gt=0, lt=1, description="Significance level of the MMD test.")


class QualityConfig(_Strict):
    """Data-quality checks of the live window against the reference. A failure is an alarm, not drift:
    the monitor fails (notifiers fire) and does not start a retraining on a broken feed."""

    max_null_rate_increase: float = Field(
        0.05, ge=0, le=1, description="Largest allowed rise of a column's share of nulls."
    )
    max_out_of_range_share: float = Field(
        0.05, ge=0, le=1, description="Largest share of values outside the reference's range."
    )
    max_new_category_share: float = Field(
        0.05, ge=0, le=1, description="Largest share of values in categories the reference never had."
    )
    min_rows: int = Field(
        30,
        ge=1,
        description="Fewer rows in the window is an alarm (below about 30 rows the drift tests can tell little).",
    )


class PerformanceBound(_Strict):
    max_drop: float = Field(
        gt=0,
        description="How far the champion's metric on the live window may fall below its recorded value.",
    )


class MonitoringConfig(_Strict):
    """The `<pipeline>__monitor` DAG: score each live window with the champion (batch inference), test it
    for drift and data quality, report, and on drift start a retraining (the `drift` asset event)."""

    source: str = Field(
        description="Path or s3:// URI of the live window; templated per interval, e.g. "
        "`../data/live/{{ ds }}/batch.parquet`."
    )
    format: Literal["parquet", "csv"] | None = Field(
        None, description="File format; default: from the extension."
    )
    schedule: str | None = Field(
        "@daily",
        description="Cron, preset or interval of the monitor (data-interval timetable); null: manual.",
    )
    reference: str = Field(
        "champion",
        description="What the window is compared with: `champion` (the data the champion was trained on, "
        "pinned by sha256 on its model version), `data` (`data.reference`), or a path / s3:// URI.",
    )
    max_reference_rows: int = Field(50_000, ge=100, description="Rows sampled from the reference.")
    drift: DriftTestsConfig = Field(default_factory=DriftTestsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    prediction_drift: bool = Field(
        True, description="Test the champion's score distribution, live against reference."
    )
    performance: dict[MetricName, PerformanceBound] = Field(
        default_factory=dict,
        description="Concept drift: when the window has labels, the champion's metric on it against "
        "its recorded evaluation, e.g. `{roc_auc: {max_drop: 0.05}}`.",
    )
    out_of_range: Literal["drift", "alarm", "both"] = Field(
        "drift",
        description="What values beyond the reference's range mean: `drift` (a covariate shift: the window "
        "drifted, the report names the features, and `on_drift` decides: retrain or alert), `alarm` (a "
        "data-quality failure: the monitor fails, no retraining), `both`.",
    )
    on_drift: Literal["retrain", "alert"] = Field(
        "retrain",
        description="`retrain`: emit the `drift` asset event (it starts `<pipeline>__train` when the "
        "schedule lists `drift`); `alert`: fail the monitor's emit task (notifiers fire), no event.",
    )
    history: int = Field(14, ge=1, le=365, description="Recent windows shown in the HTML report.")
    settings: TaskSettings | None = Field(None, description="Task settings of the monitor DAG's tasks.")

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value in ("@once", "@continuous"):
            raise ValueError(f"{value} makes no sense for a monitor; use a cron, preset or interval")
        return None if value is None else check_time_schedule(value)


class PipelineSpec(_Strict):
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
