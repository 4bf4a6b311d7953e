"""The spec's ``monitoring`` section: drift tests, data quality and performance bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.spec.sections.base import StrictModel, TaskSettings, check_time_schedule
from airflow_mlops.spec.sections.evaluation import MetricName
from airflow_mlops.training.calibration import ESTIMABLE_METRICS

MONITOR_REFERENCE_KEYWORDS = ("champion", "data")
NumericDriftTest = Literal["ks", "wasserstein", "psi"]
CategoricalDriftTest = Literal["chi2", "jensen_shannon", "psi"]


class DriftTestsConfig(StrictModel):
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


class QualityConfig(StrictModel):
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


class PerformanceBound(StrictModel):
    max_drop: float = Field(
        gt=0,
        description="How far the champion's metric on the live window may fall below its recorded value.",
    )


_ESTIMABLE = sorted({m for names in ESTIMABLE_METRICS.values() for m in names})


class EstimationConfig(StrictModel):
    """Performance estimated without labels (CBPE for classifiers, direct loss estimation for a
    regression) from the calibration stored with the champion at training time (see
    docs/monitoring.md), and whether a retraining needs the estimated drop."""

    metric: MetricName | None = Field(
        None,
        description="The metric whose drop is judged: one the monitor estimates (binary: roc_auc, accuracy, "
        "precision, recall, f1, balanced_accuracy; multiclass: accuracy, balanced_accuracy, f1_macro, "
        "roc_auc_ovr; regression: mae, rmse). Default: the task's primary metric (roc_auc, f1_macro, rmse).",
    )
    max_drop: float = Field(
        gt=0,
        description="How far the metric may fall below the champion's recorded evaluation (in the metric's "
        "units; the realised value decides when the window has labels) before it counts as a drop.",
    )
    retrain_on: Literal["drift", "drift_and_estimated_drop"] = Field(
        "drift",
        description="`drift`: the drift event is emitted on drift (the estimate rides along in its extra); "
        "`drift_and_estimated_drop`: only on drift AND a drop beyond max_drop. Without an estimate (a champion "
        "trained without a validation split or before calibration was stored) the emit task fails rather than guess.",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the estimate's interval.")
    samples: int = Field(
        200,
        ge=20,
        le=5000,
        description="Label draws from the calibrated probabilities for the interval (CBPE).",
    )

    @field_validator("metric")
    @classmethod
    def _estimable(cls, value: str | None) -> str | None:
        if value is not None and value not in _ESTIMABLE:
            raise ValueError(f"{value} is not estimated without labels; one of {', '.join(_ESTIMABLE)}")
        return value


class MonitoringConfig(StrictModel):
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
    estimation: EstimationConfig | None = Field(
        None,
        description="Estimated performance on unlabelled windows and the retrain rule that can require it, "
        "e.g. `{metric: roc_auc, max_drop: 0.02, retrain_on: drift_and_estimated_drop}`. Without it the "
        "estimates are still reported (when the champion has a stored calibration) and nothing waits on them.",
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

    @model_validator(mode="after")
    def _estimation_needs_retrain(self) -> MonitoringConfig:
        if (
            self.estimation is not None
            and self.estimation.retrain_on == "drift_and_estimated_drop"
            and self.on_drift != "retrain"
        ):
            raise ValueError(
                "estimation.retrain_on: drift_and_estimated_drop decides when the drift event starts a "
                f"retraining, but on_drift is {self.on_drift}; set on_drift: retrain or retrain_on: drift"
            )
        return self

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value in ("@once", "@continuous"):
            raise ValueError(f"{value} makes no sense for a monitor; use a cron, preset or interval")
        return None if value is None else check_time_schedule(value)
