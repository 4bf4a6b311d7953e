"""The drift report: what :func:`airflow_mlops.drift.detect_drift` found, as frozen dataclasses.

Standard library only, so the monitor operator, the HTML renderer and anything that reads a stored
report can import it without numpy. Every class has ``to_dict()``; :meth:`DriftReport.from_dict`
rebuilds a report from its ``to_dict()`` (also after a JSON round trip), so a report written as
JSON by one task can be read back by another without losing a field.

Two verdicts, kept apart on purpose:

* ``drifted``: the data (or the champion's scores, or its live metrics) moved away from the
  reference. The monitor answers with "retrain".
* ``quality_failed``: the live window is broken (a surge of nulls, wrong types, unseen
  categories, too few rows, and -- with ``out_of_range="alarm"`` or ``"both"`` -- values beyond
  the reference's range). Retraining on broken data would make things worse, so the monitor fails
  loudly instead.

Values beyond the reference's range are a decision (``out_of_range``): by default (``"drift"``)
a share above the limit is drift of that feature (a covariate shift: :attr:`FeatureDrift.rules`
names ``"out_of_range"``), not an alarm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "MultivariateDrift",
    "OutOfRange",
    "PerformanceCheck",
    "PredictionDrift",
    "QualityCheck",
    "TestResult",
]

#: Tests that return a p-value (the others are distances compared with a threshold).
P_VALUE_TESTS = frozenset({"ks", "chi2", "mmd"})
#: The rules by which a feature drifts: its statistical tests (significant and large; categorical
#: features, significant), or its share of values beyond the reference's range (``out_of_range``
#: set to ``drift`` or ``both``).
FEATURE_RULES = ("tests", "out_of_range")
#: What a failed data-quality check means: an ``alarm`` (the monitor fails, no retraining),
#: ``drift`` of its column (``out_of_range: drift``), or ``both``.
QUALITY_ACTIONS = ("alarm", "drift", "both")
#: What prediction drift compares, per task.
PREDICTION_SUBJECT = {
    "binary": "the positive class's probability",
    "multiclass": "the shares of the predicted classes",
    "regression": "the predicted values",
}


def _float(value: Any) -> float:
    return float(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3g}"
    return f"{value:.4f}"


def percent(share: float) -> str:
    """``0.25`` -> ``"25 %"``, ``0.075`` -> ``"7.5 %"``."""
    return f"{share * 100:.3g} %"


@dataclass(frozen=True)
class TestResult:
    """One statistical test on one feature (or on the champion's scores).

    :ivar test: ``"ks"``, ``"wasserstein"``, ``"psi"``, ``"chi2"`` or ``"jensen_shannon"``.
    :ivar statistic: the test statistic (KS D, chi-squared, or the distance itself).
    :ivar p_value: the raw p-value; None for distance-only tests.
    :ivar adjusted_p_value: the p-value after the multiple-testing correction (None for distances).
    :ivar threshold: alpha for p-value tests, the distance threshold otherwise.
    :ivar drifted: this test's verdict (adjusted p-value < alpha, or distance >= threshold).
    :ivar detail: how the p-value was computed, where that varies (chi2: the levels, how many
        rare levels were pooled, the degrees of freedom or Fisher's exact test); "" otherwise.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float
    drifted: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TestResult:
        return cls(
            test=str(d["test"]),
            statistic=_float(d["statistic"]),
            p_value=_opt_float(d.get("p_value")),
            adjusted_p_value=_opt_float(d.get("adjusted_p_value")),
            threshold=_float(d["threshold"]),
            drifted=bool(d["drifted"]),
            detail=str(d.get("detail") or ""),
        )

    def format(self) -> str:
        """``ks D=0.0312 p=0.0004 (adj 0.0021) < 0.05 DRIFT``-style one-liner."""
        if self.p_value is not None:
            adj = "" if self.adjusted_p_value is None else f" (adj {_fmt(self.adjusted_p_value)})"
            rel = "<" if self.drifted else ">="
            body = f"stat={_fmt(self.statistic)} p={_fmt(self.p_value)}{adj} {rel} {_fmt(self.threshold)}"
        else:
            rel = ">=" if self.drifted else "<"
            body = f"{_fmt(self.statistic)} {rel} {_fmt(self.threshold)}"
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.test} {body}{detail}{' DRIFT' if self.drifted else ''}"


@dataclass(frozen=True)
class OutOfRange:
    """The share of a numeric feature's live values beyond the reference's ``[low, high]``.

    A fresh sample of the reference's own distribution puts about ``2 / (n + 1)`` of its values
    beyond the extremes of ``n`` reference values, so with a small reference a few values beyond
    them are expected. The share counts only when it is above ``threshold`` *and* unlikely for the
    reference's distribution: ``p_value`` bounds the chance of that many beyond it for a window
    drawn like the reference (:func:`airflow_mlops.drift.detect.beyond_range_p_value`), compared
    with ``alpha`` (the drift tests' level, Bonferroni over the numeric features).
    """

    share: float
    low: float
    high: float
    threshold: float  # max_out_of_range_share
    p_value: float = 0.0  # reports written before the binomial rule: the share alone decided
    alpha: float = 1.0

    @property
    def exceeded(self) -> bool:
        return self.share > self.threshold + 1e-12 and self.p_value < self.alpha

    def describe(self) -> str:
        """``25 % of values beyond the reference's range [6.98, 28.1]``."""
        return f"{percent(self.share)} of values beyond the reference's range [{self.low:g}, {self.high:g}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutOfRange:
        return cls(
            share=_float(d["share"]),
            low=_float(d["low"]),
            high=_float(d["high"]),
            threshold=_float(d["threshold"]),
            p_value=_float(d.get("p_value", 0.0)),
            alpha=_float(d.get("alpha", 1.0)),
        )


@dataclass(frozen=True)
class FeatureDrift:
    """The univariate verdict of one feature.

    ``drifted`` when a rule of ``rules`` fired: ``"tests"`` (its tests found a change both
    significant and large; for a categorical feature, significant: its chi-squared test) and/or ``"out_of_range"`` (more of its live values lie beyond the
    reference's range than ``max_out_of_range_share``, with ``out_of_range`` set to ``drift`` or
    ``both``). ``out_of_range`` holds the share for numeric features whatever the setting.

    ``histogram`` is for plots: numeric features get ``{"edges": [n+1 floats], "reference": [n
    proportions], "current": [n proportions]}`` (bins from the reference's quantiles), categorical
    ones ``{"categories": [...], "reference": [...], "current": [...]}`` (proportions of non-null
    values; categories unseen in the reference come last).
    """

    name: str
    kind: str  # "numeric" | "categorical"
    tests: tuple[TestResult, ...]
    drifted: bool
    histogram: dict[str, Any] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    out_of_range: OutOfRange | None = None

    def explain(self) -> str:
        """Why the feature drifted, one line per fired rule joined by ``; `` ("" when it did not)."""
        parts = []
        if "tests" in self.rules:
            parts.append("tests: " + ", ".join(t.format() for t in self.tests if t.drifted))
        if "out_of_range" in self.rules and self.out_of_range is not None:
            parts.append(self.out_of_range.describe())
        return "; ".join(parts)

    def test(self, name: str) -> TestResult | None:
        """The result of test ``name`` on this feature, or None if it did not run."""
        return next((t for t in self.tests if t.test == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "tests": [t.to_dict() for t in self.tests],
            "drifted": self.drifted,
            "rules": list(self.rules),
            "explanation": self.explain(),
            "out_of_range": None if self.out_of_range is None else self.out_of_range.to_dict(),
            "histogram": _plain(self.histogram),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureDrift:
        tests = tuple(TestResult.from_dict(t) for t in d["tests"])
        drifted = bool(d["drifted"])
        rules = d.get("rules")
        oor = d.get("out_of_range")
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            tests=tests,
            drifted=drifted,
            histogram=dict(d.get("histogram") or {}),
            # reports written before the rules existed: the tests were the only rule
            rules=tuple(str(r) for r in rules) if rules is not None else (("tests",) if drifted else ()),
            out_of_range=None if oor is None else OutOfRange.from_dict(oor),
        )


@dataclass(frozen=True)
class MultivariateDrift:
    """The MMD two-sample test on all numeric features together (catches correlation shifts)."""

    test: str  # "mmd"
    statistic: float  # MMD^2 (see docs/drift.md for the estimator)
    p_value: float  # permutation p-value, (1 + #{perm >= observed}) / (1 + permutations)
    threshold: float  # alpha
    permutations: int
    reference_rows: int  # rows used (after subsampling to mmd_max_rows)
    current_rows: int
    features: tuple[str, ...]
    device: str  # "cpu" | "cuda" | "cuda:0" ...
    drifted: bool
    bandwidth: float = math.nan  # the RBF kernel's sigma (median heuristic, on standardised data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultivariateDrift:
        return cls(
            test=str(d["test"]),
            statistic=_float(d["statistic"]),
            p_value=_float(d["p_value"]),
            threshold=_float(d["threshold"]),
            permutations=int(d["permutations"]),
            reference_rows=int(d["reference_rows"]),
            current_rows=int(d["current_rows"]),
            features=tuple(str(f) for f in d["features"]),
            device=str(d["device"]),
            drifted=bool(d["drifted"]),
            bandwidth=_float(d.get("bandwidth", math.nan)),
        )


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality check of the live window against the reference.

    ``check`` is ``"null_rate"``, ``"type"``, ``"out_of_range"``, ``"new_categories"``,
    ``"row_count"`` or ``"labels"``; ``column`` is None for table-level checks.

    ``action`` says what a failure means: ``"alarm"`` (the monitor fails, no retraining),
    ``"drift"`` (the column drifted: only ``out_of_range`` with ``out_of_range: drift``) or
    ``"both"``. :attr:`alarm` is whether this check raises the data-quality alarm.
    """

    check: str
    column: str | None
    reference: float | str | None
    current: float | str | None
    threshold: float | None
    passed: bool
    message: str
    action: str = "alarm"

    @property
    def alarm(self) -> bool:
        """A failed check whose failure is an alarm (not only drift)."""
        return not self.passed and self.action != "drift"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QualityCheck:
        return cls(
            check=str(d["check"]),
            column=None if d.get("column") is None else str(d["column"]),
            reference=d.get("reference"),
            current=d.get("current"),
            threshold=_opt_float(d.get("threshold")),
            passed=bool(d["passed"]),
            message=str(d["message"]),
            action=str(d.get("action", "alarm")),
        )


@dataclass(frozen=True)
class PredictionDrift:
    """The champion's output on the live window against the reference window.

    What is compared depends on the ``task`` (:data:`PREDICTION_SUBJECT`): binary, the positive
    class's probability (numeric tests); multiclass, the shares of the predicted classes
    (categorical tests; ``histogram["categories"]`` are the model's classes); regression, the
    predicted values (numeric tests).

    A binary model's predicted classes (score at or above its operating ``threshold``: positive)
    are compared too, beside its scores: ``class_tests`` are the categorical tests on their
    shares and ``class_histogram`` the shares (``{"categories": ["negative", "positive"], ...}``).
    A share of positive predictions that doubles from 2 % to 4 % barely moves the score
    distribution's tests; the chi-squared test on the shares flags it. The p-value tests of the
    scores and of the shares split the prediction family's level (Bonferroni: their adjusted
    p-values are doubled). ``drifted``: the scores' tests (significant and large) or the shares'
    (significant) found a change.
    """

    tests: tuple[TestResult, ...]
    histogram: dict[str, Any]
    drifted: bool
    reference_rows: int = 0
    current_rows: int = 0
    task: str = "binary"
    class_tests: tuple[TestResult, ...] = ()
    class_histogram: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None  # binary: the operating threshold of the predicted classes
    class_drifted: bool = False  # the verdict of ``class_tests`` alone (significant)

    @property
    def subject(self) -> str:
        """What was compared, in words."""
        return PREDICTION_SUBJECT.get(self.task, "the champion's scores")

    @property
    def class_subject(self) -> str:
        """What ``class_tests`` compared, in words ("" when they did not run)."""
        if not self.class_tests:
            return ""
        at = "" if self.threshold is None else f" (positive: score >= {self.threshold:g})"
        return f"the shares of the predicted classes{at}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tests": [t.to_dict() for t in self.tests],
            "histogram": _plain(self.histogram),
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "task": self.task,
            "class_tests": [t.to_dict() for t in self.class_tests],
            "class_histogram": _plain(self.class_histogram),
            "threshold": self.threshold,
            "class_drifted": self.class_drifted,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionDrift:
        return cls(
            tests=tuple(TestResult.from_dict(t) for t in d["tests"]),
            histogram=dict(d.get("histogram") or {}),
            drifted=bool(d["drifted"]),
            reference_rows=int(d.get("reference_rows", 0)),
            current_rows=int(d.get("current_rows", 0)),
            task=str(d.get("task", "binary")),
            # reports written before the predicted classes' shares were compared have none
            class_tests=tuple(TestResult.from_dict(t) for t in d.get("class_tests") or ()),
            class_histogram=dict(d.get("class_histogram") or {}),
            threshold=_opt_float(d.get("threshold")),
            class_drifted=bool(d.get("class_drifted", False)),
        )


@dataclass(frozen=True)
class PerformanceCheck:
    """Concept drift: one champion metric on the labelled live window against its recorded value.

    ``drifted`` when the metric got worse by more than ``max_drop`` in the metric's direction
    (:meth:`airflow_mlops.metrics.Metric.drop`: for ``log_loss``, ``rmse``, ``mae``, ``mape``,
    where lower is better, "worse" means higher). A metric that cannot be measured on the live
    window (NaN: e.g. a single class) is not drift; the window's ``labels`` quality check fails
    instead (fail closed).
    """

    metric: str
    expected: float
    current: float
    max_drop: float
    drifted: bool

    @property
    def drop(self) -> float:
        """How much worse the live value is (positive = worse), in the metric's own units."""
        from airflow_mlops.metrics import METRICS

        known = METRICS.get(self.metric)
        if known is None:  # a metric of a report written by another version: higher is better
            return self.expected - self.current
        return known.drop(self.expected, self.current)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerformanceCheck:
        return cls(
            metric=str(d["metric"]),
            expected=_float(d["expected"]),
            current=_float(d["current"]),
            max_drop=_float(d["max_drop"]),
            drifted=bool(d["drifted"]),
        )


@dataclass(frozen=True)
class DriftReport:
    """Everything one drift run decided, with the evidence.

    :ivar drifted: distribution, multivariate, prediction or performance drift: retrain.
    :ivar quality_failed: a data-quality alarm: fail loudly, do NOT retrain.
    :ivar reasons: human sentences explaining both verdicts (empty when nothing fired).
    """

    drifted: bool
    quality_failed: bool
    reasons: tuple[str, ...]
    features: tuple[FeatureDrift, ...]
    multivariate: MultivariateDrift | None
    quality: tuple[QualityCheck, ...]
    prediction: PredictionDrift | None
    performance: tuple[PerformanceCheck, ...]
    reference_rows: int
    current_rows: int
    settings: dict[str, Any]
    created_at: str
    #: dataset drift by the share-of-drifted-features rule (one of the inputs of ``drifted``)
    dataset_drift: bool = False
    drift_share: float = 0.0  # share of features that drifted
    #: the champion's metrics estimated on the window without labels (with labels, beside the
    #: realised ones): :meth:`airflow_mlops.drift.estimation.PerformanceEstimate.to_dict`, or None
    estimated_performance: dict[str, Any] | None = None

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features whose univariate verdict is drift."""
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def failed_quality_checks(self) -> tuple[QualityCheck, ...]:
        """The checks that raise the data-quality alarm (failed, and not counted as drift only)."""
        return tuple(q for q in self.quality if q.alarm)

    @property
    def out_of_range_features(self) -> tuple[str, ...]:
        """Features that drifted by the out-of-range rule."""
        return tuple(f.name for f in self.features if "out_of_range" in f.rules)

    def feature(self, name: str) -> FeatureDrift:
        """The univariate result of feature ``name`` (KeyError if it was not tested)."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(
            f"feature {name!r} is not in this drift report; features: {[f.name for f in self.features]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN stays a float: ``json.dumps`` writes it as ``NaN``)."""
        return {
            "drifted": self.drifted,
            "quality_failed": self.quality_failed,
            "reasons": list(self.reasons),
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drifted_features": list(self.drifted_features),
            "features": [f.to_dict() for f in self.features],
            "multivariate": None if self.multivariate is None else self.multivariate.to_dict(),
            "quality": [q.to_dict() for q in self.quality],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "performance": [p.to_dict() for p in self.performance],
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "settings": _plain(self.settings),
            "created_at": self.created_at,
            "estimated_performance": _plain(self.estimated_performance),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report from :meth:`to_dict` output (``drifted_features`` is derived, ignored)."""
        mv = d.get("multivariate")
        pred = d.get("prediction")
        return cls(
            drifted=bool(d["drifted"]),
            quality_failed=bool(d["quality_failed"]),
            reasons=tuple(str(r) for r in d.get("reasons", ())),
            features=tuple(FeatureDrift.from_dict(f) for f in d.get("features", ())),
            multivariate=None if mv is None else MultivariateDrift.from_dict(mv),
            quality=tuple(QualityCheck.from_dict(q) for q in d.get("quality", ())),
            prediction=None if pred is None else PredictionDrift.from_dict(pred),
            performance=tuple(PerformanceCheck.from_dict(p) for p in d.get("performance", ())),
            reference_rows=int(d["reference_rows"]),
            current_rows=int(d["current_rows"]),
            settings=dict(d.get("settings") or {}),
            created_at=str(d["created_at"]),
            dataset_drift=bool(d.get("dataset_drift", False)),
            drift_share=_float(d.get("drift_share", 0.0)),
            estimated_performance=_plain(d["estimated_performance"])
            if d.get("estimated_performance")
            else None,
        )

    def summary(self) -> str:
        """Multi-line text for task logs: the verdicts, the reasons, then one line per feature."""
        verdict = "DRIFT" if self.drifted else "no drift"
        quality = "data-quality alarm" if self.quality_failed else "data quality ok"
        lines = [
            f"Drift report: {verdict}; {quality} "
            f"({self.reference_rows} reference rows, {self.current_rows} current rows, {self.created_at})"
        ]
        lines += [f"  reason: {r}" for r in self.reasons]
        if self.features:
            n = len(self.features)
            lines.append(
                f"  features: {len(self.drifted_features)} of {n} drifted (share {self.drift_share:.2f})"
            )
            width = max(len(f.name) for f in self.features)
            for f in self.features:
                tests = "; ".join(t.format() for t in f.tests)
                flag = "DRIFT" if f.drifted else "ok   "
                rule = f" (rules: {', '.join(f.rules)})" if f.drifted else ""
                beyond = (
                    f"; {f.out_of_range.describe()}"
                    if f.out_of_range is not None and f.out_of_range.share > 0
                    else ""
                )
                lines.append(f"    {flag} {f.name:<{width}} [{f.kind}] {tests}{beyond}{rule}")
        if self.multivariate is not None:
            m = self.multivariate
            lines.append(
                f"  multivariate: {'DRIFT' if m.drifted else 'ok'} {m.test} stat={_fmt(m.statistic)} "
                f"p={_fmt(m.p_value)} alpha={_fmt(m.threshold)} ({m.permutations} permutations, "
                f"{m.reference_rows}+{m.current_rows} rows, {len(m.features)} features, {m.device})"
            )
        if self.prediction is not None:
            pred = self.prediction
            tests = "; ".join(t.format() for t in pred.tests)
            if pred.class_tests:  # two parts: the verdict, then each part's tests
                shares = "; ".join(t.format() for t in pred.class_tests)
                lines.append(f"  prediction: {'DRIFT' if pred.drifted else 'ok'}")
                lines.append(f"    {pred.subject}: {tests}")
                lines.append(f"    {pred.class_subject}: {'DRIFT' if pred.class_drifted else 'ok'} {shares}")
            else:
                lines.append(f"  prediction ({pred.subject}): {'DRIFT' if pred.drifted else 'ok'} {tests}")
        for p in self.performance:
            lines.append(
                f"  performance: {'DRIFT' if p.drifted else 'ok'} {p.metric} expected {_fmt(p.expected)} "
                f"current {_fmt(p.current)} (max drop {_fmt(p.max_drop)})"
            )
        if self.estimated_performance:
            est = self.estimated_performance
            lines.append(f"  estimated performance ({est.get('method')}, {est.get('rows')} rows):")
            for m in est.get("metrics", ()):
                realised = "" if m.get("realised") is None else f" realised {_fmt(m['realised'])}"
                lines.append(
                    f"    {m['metric']} {_fmt(m.get('estimate'))} "
                    f"[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]{realised}"
                )
        failed = self.failed_quality_checks
        as_drift = [q for q in self.quality if not q.passed and not q.alarm]
        passed = sum(q.passed for q in self.quality)
        lines.append(f"  quality: {passed} of {len(self.quality)} checks passed")
        lines += [f"    FAIL {q.check} {q.column or '<table>'}: {q.message}" for q in failed]
        lines += [f"    DRIFT {q.check} {q.column or '<table>'}: {q.message}" for q in as_drift]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """A copy of nested dicts/lists/tuples as dicts/lists (what JSON gives back)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
