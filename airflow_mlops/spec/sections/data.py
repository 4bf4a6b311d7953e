"""The spec's ``data``, ``artifacts``, ``validation`` and ``poisoning`` sections."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.data import screen_defaults as screen
from airflow_mlops.data.expectation_names import SUPPORTED_EXPECTATIONS
from airflow_mlops.spec.sections.base import Duration, StrictModel


class ArtifactsConfig(StrictModel):
    """Where the pipeline's artifacts (data snapshots, reports, models) are stored."""

    root: str | None = Field(
        None,
        description="Local directory or s3://bucket/prefix. Default: the AIRFLOW_MLOPS_ARTIFACT_ROOT "
        "environment variable, else `$AIRFLOW_HOME/mlops-artifacts`.",
    )
    connection: str | None = Field(None, description="Airflow AWS connection id for an s3:// root.")


class NewDataWatch(StrictModel):
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


class DataConfig(StrictModel):
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


class ValidationConfig(StrictModel):
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


class PoisoningConfig(StrictModel):
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
        default_factory=lambda: list(screen.CHECKS),  # type: ignore[arg-type]
        description="Which screens run. duplicates: exact and near duplicate rows with conflicting "
        "labels (the copies that disagree with the model's view). label_issues: rows whose label "
        "out-of-fold models (gradient-boosted trees and a logistic regression) fitted on the batch and "
        "the reference find less likely than another class; per class, as many as confident learning "
        "estimates are mislabelled, counting only moves of a practical size (rows that look like "
        "another class: at least 2 % of that class or 25 % of the label's rows, each move at most "
        "what the anchor rows of its class show (the 5 % likeliest to be it); with a reference, "
        "beyond what the same models make of its clean rows, 1 % or 10 %, and none in a class whose "
        "count the reference's clean rows explain, as where classes overlap; rows the other two row "
        "checks quarantine are not counted). "
        "out_of_distribution: rows an isolation forest fitted on half the reference finds more "
        "anomalous than the other half (same test), or with a value beyond outlier_threshold or "
        "outside the reference's range by more than its width. "
        "class_balance: a label rate far from the "
        "reference's. feature_shift: a feature whose distribution moved beyond max_feature_shift. "
        "The dataset checks (class_balance, feature_shift) fail the run without quarantining rows. "
        "label_flips and outliers are the old names of label_issues and out_of_distribution.",
    )
    max_suspect_fraction: float = Field(
        screen.MAX_SUSPECT_FRACTION,
        ge=0,
        le=1,
        description="Above this share of suspect rows the run stops before training (a small batch's sampling "
        "noise is tolerated: the 95th percentile of Binomial(rows, share), e.g. 3 of 60 rows at 2 %). Suspects "
        "are quarantined either way.",
    )
    neighbours: int = Field(
        screen.NEIGHBOURS, ge=3, le=100, description="Deprecated and ignored: k of the old label-flip screen."
    )
    outlier_threshold: float = Field(
        screen.OUTLIER_THRESHOLD,
        gt=0,
        description="out_of_distribution: robust z-score (against the reference) above which a value "
        "makes its row an outlier (with a reference: only a value outside the reference's range).",
    )
    max_class_shift: float = Field(
        screen.MAX_CLASS_SHIFT,
        gt=0,
        description="class_balance: largest allowed relative change of the positive rate (binary) or of any "
        "class's share (multiclass).",
    )
    max_feature_shift: float = Field(
        screen.MAX_FEATURE_SHIFT,
        gt=0,
        le=1,
        description="feature_shift: largest allowed Kolmogorov-Smirnov (numeric) or total-variation "
        "(categorical) distance between a feature in the batch and in the reference.",
    )
    folds: int = Field(
        screen.FOLDS,
        ge=2,
        le=20,
        description="label_issues: folds of the out-of-fold models (the batch's and the reference's rows).",
    )
    max_fit_rows: int = Field(
        screen.MAX_FIT_ROWS,
        ge=100,
        description="label_issues: at most this many rows train each fold's models (every row is scored).",
    )
    seed: int = Field(
        screen.SEED, ge=0, description="Seed of the folds, subsamples and models of the screen."
    )
