"""Data validation with Great Expectations 1.x.

Expectations are plain dicts, as the spec writes them: ``{expect_snake_name: {kwarg: value}}``
(names from :data:`~airflow_mlops.data.expectation_names.SUPPORTED_EXPECTATIONS`). :func:`validate_dataframe`
runs them on a pandas frame through an ephemeral GX context (no files, no usage statistics, no
progress bars) and returns a :class:`ValidationReport` that is plain data: JSON-serialisable, with
a readable summary of what failed.

Errors are reported in our words, not as GX stack traces:

* an unknown expectation, or arguments GX rejects: :class:`~airflow_mlops.exceptions.DataError`
  naming the expectation and the arguments (the spec is wrong, nothing can be validated);
* a column that is not in the data: a *failed* result naming the column and the columns there
  are (the data does not have what the spec expects);
* an expectation GX cannot evaluate on this data (e.g. a mean of a text column): a failed result
  carrying GX's error message.

:func:`infer_expectations` derives a starting set of expectations from a reference data set.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.expectation_names import SUPPORTED_EXPECTATIONS, gx_class_name
from airflow_mlops.exceptions import DataError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


MAX_PARTIAL_UNEXPECTED = 20
# infer_expectations: the chance that a batch drawn from the reference's own distribution fails
# an inferred expectation, split evenly over the columns' tolerances (Bonferroni).
FALSE_ALARM_RATE = 0.01
# ... tolerances are sized for a batch as large as the reference, but at most this many rows.
NOMINAL_BATCH_ROWS = 1000
# ... a column with fewer non-null reference values gets no range and no value set.
MIN_REFERENCE_ROWS = 30
# ... numeric ranges run between the reference's extremes less this share of outliers per tail,
RANGE_TRIM = 0.0001
# ... widened by min(MAX_RANGE_MARGIN, RANGE_MARGIN / sqrt(n)) of their width (n reference values),
RANGE_MARGIN = 2.0
MAX_RANGE_MARGIN = 0.25
# ... on a log1p scale for non-negative columns with a skewness above this.
LOG_SKEW_THRESHOLD = 1.0
# infer_expectations: categorical columns with more distinct values than this get no value set.
MAX_INFERRED_CATEGORIES = 1000

_META_KEY = "airflow_mlops_key"
_MAX_ERROR = 300


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation.

    :ivar expectation: the snake_case name, e.g. ``expect_column_values_to_be_between``.
    :ivar kwargs: the arguments as given (JSON-safe).
    :ivar success: whether the data met the expectation.
    :ivar observed_value: what GX measured (aggregate expectations), else ``None``.
    :ivar unexpected_count: rows that broke a per-row expectation, else ``None``.
    :ivar unexpected_percent: their share of the non-null rows in percent, else ``None``.
    :ivar partial_unexpected_list: up to 20 of the offending values.
    :ivar error: why the expectation could not be evaluated (it then counts as failed).
    """

    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    partial_unexpected_list: tuple[Any, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the result."""
        return {
            "expectation": self.expectation,
            "kwargs": _jsonable(self.kwargs),
            "success": bool(self.success),
            "observed_value": _jsonable(self.observed_value),
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
            "partial_unexpected_list": _jsonable(list(self.partial_unexpected_list)),
            "error": self.error,
        }

    def describe(self) -> str:
        """One line: the expectation, its arguments and what was observed."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        text = f"{self.expectation}({args})"
        if self.error:
            return f"{text}: {self.error}"
        parts = []
        if self.observed_value is not None:
            parts.append(f"observed {_short(self.observed_value)}")
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            parts.append(f"{self.unexpected_count} unexpected value(s){pct}")
        if self.partial_unexpected_list:
            parts.append(f"e.g. {_short(list(self.partial_unexpected_list[:5]))}")
        return f"{text}: {'; '.join(parts) or 'failed'}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate_dataframe`: one result per expectation, in input order."""

    success: bool
    results: tuple[ExpectationResult, ...]
    row_count: int
    failed: tuple[ExpectationResult, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed", tuple(r for r in self.results if not r.success))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the report (numpy types converted)."""
        return {
            "success": bool(self.success),
            "row_count": int(self.row_count),
            "evaluated_expectations": len(self.results),
            "failed_expectations": len(self.failed),
            "results": [r.to_dict() for r in self.results],
        }

    def summary(self) -> str:
        """A readable summary: the counts, then each failed expectation with what was observed."""
        head = (
            f"{len(self.results) - len(self.failed)} of {len(self.results)} expectation(s) met "
            f"on {self.row_count} row(s)"
        )
        if not self.failed:
            return head
        return head + "; failed:\n" + "\n".join(f"  - {r.describe()}" for r in self.failed)

    def raise_if_failed(self) -> None:
        """Raise :class:`DataValidationError` with :meth:`summary` when an expectation failed."""
        if not self.success:
            raise DataValidationError(
                "data validation failed: " + self.summary() + "\nFix the data, or the expectations in "
                "the spec's validation section (validation.on_failure: warn records and goes on)."
            )


def infer_expectations(reference: pd.DataFrame, *, columns: list[str]) -> list[dict[str, dict[str, Any]]]:
    """Derive expectations for ``columns`` from a reference data set (the training distribution).

    The aim is to catch broken batches (a unit change, a column gone null or missing, text in a
    numeric column, garbage values, sign flips, unknown codes), not to detect drift: the drift
    checks do that. A batch drawn from the reference's own distribution should pass, so each
    check that such a batch can fail by chance gets a tolerance (``mostly``): the share of rows a
    fresh sample puts outside by chance, sized (:func:`_chance_share`) so that all checks
    together fail such a batch with a probability of at most :data:`FALSE_ALARM_RATE` (1 %,
    split evenly over two checks per column: Bonferroni). Per column, in this order:

    * ``expect_column_to_exist``;
    * ``expect_column_values_to_not_be_null`` with ``mostly``: the null rate given the reference
      is Beta(nulls + 1, rows - nulls + 1), so a null share like the reference's passes and a
      larger one fails (no nulls in 5,000 rows: a batch may hold 0.4 %; 5 % nulls: about 8 %);
      left out where it could never fail (a reference of a handful of rows, or all nulls);
    * numeric columns (not booleans, not integer columns with at most two values):
      ``expect_column_values_to_be_between`` with ``mostly``, and for non-negative quantities a
      floor at 0 without one, see :func:`_inferred_range`;
    * boolean, text and categorical columns with at most :data:`MAX_INFERRED_CATEGORIES`
      distinct values, and integer columns with at most two (flags, binary labels):
      ``expect_column_values_to_be_in_set`` of the reference's values, see :func:`_value_set`.

    Ranges and value sets need :data:`MIN_REFERENCE_ROWS` (30) non-null reference values: with
    fewer, a column gets existence and null checks only, because so few rows cannot say what a
    value outside looks like (the tolerance would be most of the batch). Dates and
    huge-cardinality text such as ids get existence and null checks only too.

    The tolerances are sized for a batch as large as the reference, at most
    :data:`NOMINAL_BATCH_ROWS` (1,000) rows: a larger batch averages chance out and passes more
    surely; a much smaller one sees more chance variation, which the margin of the ranges absorbs.
    ``benchmarks/data_validation.py`` measures both sides on scikit-learn's datasets.

    :raises DataError: a column is not in the reference.
    """
    import pandas as pd

    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise DataError(
            f"cannot infer expectations: column(s) {missing} not in the reference data; it has "
            f"{list(map(str, reference.columns))}"
        )
    # Two checks per column may fail by chance (nulls, and the range or the value set).
    alpha = FALSE_ALARM_RATE / max(1, 2 * len(columns))
    out: list[dict[str, dict[str, Any]]] = []
    for name in columns:
        col = reference[name]
        out.append({"expect_column_to_exist": {"column": name}})
        nulls = int(col.isna().sum())
        # The null rate given the reference: Beta(nulls + 1, rows - nulls + 1) (a uniform prior).
        mostly = _mostly(_chance_share(nulls + 1, len(col) - nulls + 1, len(col), alpha))
        if mostly is not None:
            out.append({"expect_column_values_to_not_be_null": {"column": name, **mostly}})
        values = col.dropna()
        if values.empty:
            continue
        is_bool = pd.api.types.is_bool_dtype(col.dtype)
        binary_int = pd.api.types.is_integer_dtype(col.dtype) and values.nunique() <= 2
        numeric = pd.api.types.is_numeric_dtype(col.dtype) and not is_bool and not binary_int
        categorical = not numeric and (
            is_bool
            or binary_int
            or pd.api.types.is_object_dtype(col.dtype)
            or pd.api.types.is_string_dtype(col.dtype)
            or isinstance(col.dtype, pd.CategoricalDtype)
        )
        if (numeric or categorical) and len(values) < MIN_REFERENCE_ROWS:
            log.info(
                "Not inferring a %s for %s: %s reference value(s), fewer than %s",
                "range" if numeric else "value set",
                name,
                len(values),
                MIN_REFERENCE_ROWS,
            )
            continue
        if numeric:
            out.extend(_inferred_range(name, values.to_numpy(dtype="float64"), alpha))
        elif categorical:
            value_set = _value_set(name, values, alpha)
            if value_set is not None:
                out.append(value_set)
    log.info("Inferred %s expectation(s) for %s column(s) from the reference", len(out), len(columns))
    return out


def _chance_share(a: float, b: float, rows: int, alpha: float) -> float:
    """The share of a batch that falls outside by chance, exceeded with probability ``alpha``.

    Each row of the batch falls outside with a probability that is itself uncertain, distributed
    as Beta(``a``, ``b``) given the reference; the count outside in a batch of ``rows`` rows (as
    many as the reference has, at most :data:`NOMINAL_BATCH_ROWS`) is then beta-binomial. The
    answer is its upper ``alpha`` quantile (the count exceeded with probability <= ``alpha``)
    over ``rows``.
    """
    from scipy import stats

    rows = max(1, min(rows, NOMINAL_BATCH_ROWS))
    count = float(stats.betabinom.isf(alpha, rows, a, b))
    return min(1.0, count / rows)


def _mostly(share: float) -> dict[str, float] | None:
    """``{"mostly": 1 - share}`` rounded down, ``{}`` for no tolerance, ``None`` when a check
    with that tolerance could never fail (``share`` >= 1)."""
    if share <= 0:
        return {}
    mostly = math.floor((1.0 - share) * 1e6) / 1e6
    return {"mostly": mostly} if mostly > 0 else None


def _inferred_range(name: str, values: Any, alpha: float) -> list[dict[str, dict[str, Any]]]:
    """The range expectation(s) of a numeric column (see :func:`infer_expectations`).

    **The range.** With ``n`` finite reference values and ``r = floor(RANGE_TRIM * n)`` (0 below
    10,000 values), the range runs from the ``r + 1``-th smallest to the ``r + 1``-th largest
    value (the extremes, less a stray outlier or two of a large reference), widened on each side
    by ``min(MAX_RANGE_MARGIN, RANGE_MARGIN / sqrt(n))`` of its width: 25 % up to 64 values,
    9 % at 500, 2 % at 10,000. Heavy right-tailed columns (all values >= 0, skewness >
    :data:`LOG_SKEW_THRESHOLD`: amounts, counts) are widened on a ``log1p`` scale. The lower
    bound stays at 0 or above when the reference is non-negative; whole-number columns (of any
    dtype) get whole-number bounds, rounded outwards.

    **Its tolerance.** Whatever the distribution, a fresh row falls outside the reference's
    ``r + 1``-th extremes with a probability distributed as Beta(2r + 2, n - 2r - 1) (the sum of
    2r + 2 of the n + 1 spacings between the sorted values; ties only lower it); ``mostly``
    tolerates the share of a batch that :func:`_chance_share` derives from that, before any help
    from the margin: about 13 % at n = 100, 2.6 % at 500, 0.5 % at 5,000 (10 columns).

    **Constant columns** (an always-0 pixel) get the range [c, c] with the same tolerance: a
    fresh value other than c is no more likely than one beyond the extremes of any column, so a
    rare other value passes while a column of other values fails.

    **The sign.** A non-constant, non-negative column that holds a 0, is right-skewed, or whose
    minimum is at least its range above 0 also gets ``min_value`` 0 with no tolerance: one
    negative value fails, because sign flips are a classic corruption and such a column is a
    non-negative quantity (a count, an amount, an intensity, a size) or lies so far above 0 that
    a same-distribution value below 0 is out of reach. A column that merely happens to be
    positive near 0 (a signed quantity whose reference held no negative value) gets no floor:
    its negative values count against the range's tolerance like any other.

    No range when the reference holds an infinity.
    """
    import numpy as np

    if not np.isfinite(values).all():
        log.info("Not inferring a range for %s: the reference holds infinite values", name)
        return []
    values = np.sort(values)
    n = len(values)
    r = int(RANGE_TRIM * n)
    lo, hi = float(values[r]), float(values[n - 1 - r])
    non_negative = values[0] >= 0
    constant = values[0] == values[-1]
    std = float(values.std())
    skew = float(((values - values.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    skewed = bool(non_negative and skew > LOG_SKEW_THRESHOLD)
    share = _chance_share(2 * r + 2, n - 2 * r - 1, n, alpha)
    width = min(MAX_RANGE_MARGIN, RANGE_MARGIN / math.sqrt(n))
    if skewed:
        llo, lhi = math.log1p(lo), math.log1p(hi)
        margin = width * (lhi - llo)
        low, high = float(np.expm1(llo - margin)), float(np.expm1(lhi + margin))
    else:
        margin = width * (hi - lo)
        low, high = lo - margin, hi + margin
    if non_negative:
        low = max(low, 0.0)
    bounds: tuple[float, float] = (low, high)
    if bool(np.all(values == np.round(values))):  # whole numbers, whatever the dtype
        bounds = (math.floor(low), math.ceil(high))
    out: list[dict[str, dict[str, Any]]] = []
    mostly = _mostly(share)
    if mostly is not None:
        kwargs = {"column": name, "min_value": bounds[0], "max_value": bounds[1], **mostly}
        out.append({"expect_column_values_to_be_between": kwargs})
    if non_negative and not constant and (skewed or values[0] == 0 or values[0] >= values[-1] - values[0]):
        out.append({"expect_column_values_to_be_between": {"column": name, "min_value": 0}})
    return out


def _value_set(name: str, values: pd.Series, alpha: float) -> dict[str, dict[str, Any]] | None:
    """The value-set expectation of a categorical column (see :func:`infer_expectations`).

    Whether a value the reference never had is sampling or corruption depends on the reference:

    * one value only (a constant flag, a label that never fired): another value is as likely as
      a null in a column without nulls (Beta(1, n + 1)), so a rare one passes;
    * some values seen exactly once (a long tail: merchants, products): values the reference did
      not see make up about as many rows as those singletons (the Good-Turing estimate of the
      unseen share, f1 / n, with variance (f1 + 2 f2) / n^2 for f2 values seen twice), so new
      values up to the :func:`_chance_share` of a Beta of that mean and variance pass;
    * every value seen at least twice (a closed set: countries, currencies, classes): nothing
      suggests unseen values, so one new value fails (a typo, a new encoding).

    A value rare in the reference may be absent from a batch: only values outside the set count.
    ``None`` (and a log line) above :data:`MAX_INFERRED_CATEGORIES` distinct values.
    """
    import pandas as pd

    counts = pd.Series(values.to_numpy(dtype=object)).value_counts()
    if len(counts) > MAX_INFERRED_CATEGORIES:
        log.info(
            "Not inferring a value set for %s: %s distinct values (more than %s)",
            name,
            len(counts),
            MAX_INFERRED_CATEGORIES,
        )
        return None
    n = int(counts.sum())
    once, twice = int((counts == 1).sum()), int((counts == 2).sum())
    share = 0.0
    if len(counts) == 1:
        share = _chance_share(1, n + 1, n, alpha)
    elif once:
        # The unseen share: mean ~ f1 / n, variance ~ (f1 + 2 f2) / n^2 (Good-Turing), as a Beta.
        mean, var = (once + 1) / (n + 2), (once + 2 * twice + 1) / (n + 2) ** 2
        spread = mean * (1 - mean) / var - 1
        share = _chance_share(mean * spread, (1 - mean) * spread, n, alpha) if spread > 0 else 1.0
    mostly = _mostly(share)
    if mostly is None:
        log.info("Not inferring a value set for %s: nearly every reference value is new", name)
        return None
    value_set = sorted((_jsonable(v) for v in counts.index), key=lambda v: (type(v).__name__, str(v)))
    return {"expect_column_values_to_be_in_set": {"column": name, "value_set": value_set, **mostly}}


def validate_dataframe(
    df: pd.DataFrame, expectations: Sequence[Mapping[str, Mapping[str, Any]]]
) -> ValidationReport:
    """Run ``expectations`` on ``df`` with Great Expectations and report every result.

    :param df: the data.
    :param expectations: items ``{expect_snake_name: kwargs}``; names from
        :data:`SUPPORTED_EXPECTATIONS`.
    :returns: a report with one result per item, in the same order.
    :raises DataError: an item is malformed, names an unknown expectation, or has arguments
        GX rejects.
    """
    parsed = _parse(expectations)
    results: list[ExpectationResult | None] = [None] * len(parsed)

    # Columns that are not there fail with our message, without asking GX.
    columns = set(map(str, df.columns))
    to_run: list[int] = []
    for i, (name, kwargs) in enumerate(parsed):
        absent = [c for c in _referenced_columns(kwargs) if c not in columns]
        if absent and name == "expect_column_to_exist":
            results[i] = ExpectationResult(
                expectation=name, kwargs=_jsonable(kwargs), success=False, observed_value=sorted(columns)
            )
        elif absent:
            results[i] = ExpectationResult(
                expectation=name,
                kwargs=_jsonable(kwargs),
                success=False,
                error=f"column(s) {absent} not in the data; its columns are {sorted(columns)}",
            )
        else:
            to_run.append(i)

    if to_run:
        gx_results = _run_gx(df, [(i, *parsed[i]) for i in to_run])
        for i in to_run:
            results[i] = gx_results[i]

    final = tuple(r for r in results if r is not None)
    report = ValidationReport(success=all(r.success for r in final), results=final, row_count=len(df))
    if report.success:
        log.info("Data validation passed: %s", report.summary())
    else:
        log.warning("Data validation failed: %s", report.summary())
    return report


# --- Great Expectations ---------------------------------------------------------------------


def _parse(expectations: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    parsed: list[tuple[str, dict[str, Any]]] = []
    for n, item in enumerate(expectations, start=1):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise DataError(
                f"expectation #{n} must be a mapping with exactly one key, "
                f"{{expect_...: {{column: ..., ...}}}}; got {item!r}"
            )
        ((name, kwargs),) = item.items()
        if name not in SUPPORTED_EXPECTATIONS:
            raise DataError(
                f"expectation #{n}: unknown expectation {name!r}; supported: {', '.join(SUPPORTED_EXPECTATIONS)}"
            )
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise DataError(f"expectation #{n} {name}: its arguments must be a mapping, got {kwargs!r}")
        parsed.append((name, dict(kwargs)))
    return parsed


def _referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    cols: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            cols.append(kwargs[key])
    if isinstance(kwargs.get("column_list"), (list, tuple)):
        cols.extend(c for c in kwargs["column_list"] if isinstance(c, str))
    return cols


def _build(name: str, kwargs: dict[str, Any], key: str, n: int) -> Any:
    """The GX expectation object for ``name(**kwargs)``; DataError naming it when GX rejects it."""
    import great_expectations as gx

    cls = getattr(gx.expectations, gx_class_name(name), None)
    if cls is None:  # pragma: no cover - guarded by a test over SUPPORTED_EXPECTATIONS
        raise DataError(f"expectation #{n} {name}: not available in this Great Expectations version")
    if "meta" in kwargs or "id" in kwargs:
        raise DataError(f"expectation #{n} {name}: 'meta' and 'id' are reserved, remove them")
    try:
        return cls(**kwargs, meta={_META_KEY: key})
    except Exception as exc:  # pydantic ValidationError, TypeError, ValueError
        raise DataError(
            f"expectation #{n} {name}: invalid arguments {_short(kwargs)}: {_pydantic_errors(exc)}"
        ) from None


def _run_gx(df: pd.DataFrame, items: list[tuple[int, str, dict[str, Any]]]) -> dict[int, ExpectationResult]:
    """Validate the given (index, name, kwargs) items in one suite; results by index."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)  # GX is chatty at INFO; an explicit setting wins
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    batch = (
        context.data_sources.add_pandas("airflow_mlops")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_PARTIAL_UNEXPECTED}

    # Identical expectations are run once (a GX suite keeps only one of equal expectations).
    by_key: dict[str, list[int]] = {}
    built: dict[str, Any] = {}
    for i, name, kwargs in items:
        key = json.dumps([name, _jsonable(kwargs)], sort_keys=True)
        if key not in built:
            built[key] = _build(name, kwargs, key, i + 1)
        by_key.setdefault(key, []).append(i)

    suite = gx.ExpectationSuite(name="airflow_mlops")
    for expectation in built.values():
        suite.add_expectation(expectation)
    suite_result = batch.validate(suite, result_format=result_format)
    raw: dict[str, Any] = {}
    for r in suite_result.results:
        config = r.expectation_config
        tag = (config.meta or {}).get(_META_KEY) if config is not None else None
        if tag is not None:
            raw[tag] = r
    for key, expectation in built.items():
        if key not in raw:  # GX merged it with an equal one: run it on its own
            raw[key] = batch.validate(expectation, result_format=result_format)

    out: dict[int, ExpectationResult] = {}
    for i, name, kwargs in items:
        key = json.dumps([name, _jsonable(kwargs)], sort_keys=True)
        out[i] = _convert(name, kwargs, raw[key])
    return out


def _convert(name: str, kwargs: dict[str, Any], r: Any) -> ExpectationResult:
    """A GX ExpectationValidationResult as our plain ExpectationResult."""
    result = dict(r.result or {})
    error = _gx_error(r.exception_info)
    partial = result.get("partial_unexpected_list") or []
    percent = result.get("unexpected_percent")
    count = result.get("unexpected_count")
    return ExpectationResult(
        expectation=name,
        kwargs=_jsonable(kwargs),
        success=bool(r.success) and error is None,
        observed_value=_jsonable(result.get("observed_value")),
        unexpected_count=int(count) if count is not None else None,
        unexpected_percent=float(percent) if percent is not None else None,
        partial_unexpected_list=tuple(_jsonable(list(partial)[:MAX_PARTIAL_UNEXPECTED])),
        error=error,
    )


def _gx_error(info: Any) -> str | None:
    """The first exception message in a GX ``exception_info`` (flat or keyed by metric)."""
    if not info:
        return None
    if isinstance(info, Mapping):
        if "raised_exception" in info:
            if info.get("raised_exception"):
                message = str(info.get("exception_message") or "Great Expectations raised an error")
                return message if len(message) <= _MAX_ERROR else message[: _MAX_ERROR - 3] + "..."
            return None
        for value in info.values():
            nested = _gx_error(value)
            if nested:
                return nested
    return None


def _pydantic_errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'arguments'}: {e.get('msg')}" for e in items
            )
        except Exception:  # pragma: no cover - fall back to the message
            pass
    return f"{type(exc).__name__}: {exc}"


# --- plain data -----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with numpy/pandas scalars, arrays, sets and dates turned into JSON types.

    NaN becomes ``None``; infinities become the strings ``"inf"`` and ``"-inf"``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):
        return _jsonable(value.item())
    return str(value)


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(_jsonable(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
