"""The validation report a person reads: one self-contained HTML page.

:func:`render_validation_html` turns a :class:`~airflow_mlops.data.validation.ValidationReport`
and the batch it was computed on into a single HTML document, top to bottom:

* the verdict (passed or failed), the batch, the reference and the counts;
* every failed expectation with what was observed and up to :data:`MAX_SAMPLE_ROWS` rows of the
  batch that break it (the offending cell highlighted);
* every expectation, met or not;
* one profile per column, batch against reference: count, nulls, distinct values, min, max,
  mean, standard deviation and quantiles (numeric), the most frequent values (text, flags), and
  a histogram of both as inline SVG (drawn by :func:`airflow_mlops.reports.figures.distribution_svg`,
  the same figure as the drift report's).

The page is rendered through :mod:`airflow_mlops.reports` like every report: it loads nothing (no
script, font, image or stylesheet from anywhere), a ``Content-Security-Policy`` meta tag forbids
scripts and fetches, and every string from the data (column names, values, the source URIs) is
escaped by the template. :func:`profile_columns` and
:func:`sample_rows` are plain functions returning plain data, so the JSON report can carry them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.validation import ExpectationResult, ValidationReport, _jsonable, _short
from airflow_mlops.reports import render_page
from airflow_mlops.reports.figures import distribution_svg

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_SAMPLE_ROWS",
    "ColumnProfile",
    "ColumnStats",
    "profile_columns",
    "render_validation_html",
    "sample_rows",
]

#: A failed expectation shows at most this many offending rows of the batch.
MAX_SAMPLE_ROWS = 5
#: A sample row shows at most this many columns (the offending one first).
MAX_SAMPLE_COLUMNS = 12
#: Quantiles shown for numeric columns.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Numeric histograms have (at most) this many bins, cut at the reference's quantiles.
HISTOGRAM_BINS = 10
#: Integer columns with at most this many distinct values are profiled as categories.
MAX_DISCRETE_VALUES = 20
#: Text columns list this many most frequent values in the profile table.
TOP_VALUES = 5

# Expectations whose offending rows are the null ones, or the non-null ones.
_NULL_ROWS = {"expect_column_values_to_not_be_null"}
_NON_NULL_ROWS = {"expect_column_values_to_be_null"}

# --- profiles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnStats:
    """What one data set holds in one column (numbers are ``None`` where they do not apply).

    :ivar rows: rows of the data set; ``nulls`` of them are null in this column.
    :ivar quantiles: ``{"p5": ..., "p50": ..., "p95": ...}`` for numeric columns.
    :ivar top: the most frequent values and their share of the non-null rows (text, flags,
        discrete integers).
    """

    rows: int
    nulls: int
    distinct: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    top: tuple[tuple[Any, float], ...] = ()

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = _jsonable(asdict(self))
        out["null_fraction"] = self.null_fraction
        return out


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the batch against the reference.

    :ivar kind: ``numeric``, ``categorical`` (text, flags, discrete integers) or ``other``.
    :ivar histogram: ``{"edges", "reference", "current"}`` (numeric) or ``{"categories",
        "reference", "current"}`` (categorical): shares of the non-null rows, the form
        :func:`~airflow_mlops.reports.figures.distribution_svg` draws; ``current`` is the batch.
        Shares of a data set that lacks the column are ``None``.
    """

    name: str
    kind: str
    batch: ColumnStats | None
    reference: ColumnStats | None
    histogram: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "batch": self.batch.to_dict() if self.batch else None,
            "reference": self.reference.to_dict() if self.reference else None,
            "histogram": _jsonable(self.histogram),
        }


def profile_columns(
    batch: pd.DataFrame, reference: pd.DataFrame | None = None, *, columns: Sequence[str] | None = None
) -> list[ColumnProfile]:
    """Profile ``columns`` (default: the batch's, then any only the reference has) of both sets.

    Numeric histograms are cut at the reference's deciles (the batch's when there is no
    reference), with the outer edges stretched to hold both sets' extremes.
    """
    names = list(columns) if columns else [str(c) for c in batch.columns]
    if not columns and reference is not None:
        names += [str(c) for c in reference.columns if str(c) not in names]
    out = []
    for name in names:
        cur = batch[name] if name in batch.columns else None
        ref = reference[name] if reference is not None and name in reference.columns else None
        kind = _profile_kind([s for s in (cur, ref) if s is not None])
        histogram: dict[str, Any] = {}
        if kind == "numeric":
            histogram = _numeric_histogram(cur, ref)
        elif kind == "categorical":
            histogram = _categorical_histogram(cur, ref)
        out.append(
            ColumnProfile(
                name=name,
                kind=kind,
                batch=_stats(cur, kind) if cur is not None else None,
                reference=_stats(ref, kind) if ref is not None else None,
                histogram=histogram,
            )
        )
    return out


def _profile_kind(series: Sequence[pd.Series]) -> str:
    import pandas as pd

    if not series:
        return "other"
    if all(
        pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) for s in series
    ):
        integer = all(
            pd.api.types.is_integer_dtype(s.dtype) or _whole(s.dropna().to_numpy(dtype="float64"))
            for s in series
        )
        distinct = pd.concat([s.dropna() for s in series]).nunique()
        return "categorical" if integer and distinct <= MAX_DISCRETE_VALUES else "numeric"
    if any(pd.api.types.is_datetime64_any_dtype(s.dtype) for s in series):
        return "other"
    return "categorical"


def _whole(values: Any) -> bool:
    import numpy as np

    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool(np.all(finite == np.round(finite)))


def _stats(series: pd.Series, kind: str) -> ColumnStats:
    values = series.dropna()
    common: dict[str, Any] = {
        "rows": len(series),
        "nulls": int(series.isna().sum()),
        "distinct": int(values.nunique()),
    }
    if kind == "numeric" or (kind == "categorical" and _is_number(series)):
        numbers = values.to_numpy(dtype="float64")
        if len(numbers):
            common.update(
                min=float(numbers.min()),
                max=float(numbers.max()),
                mean=float(numbers.mean()),
                std=float(numbers.std(ddof=1)) if len(numbers) > 1 else 0.0,
            )
            if kind == "numeric":
                import numpy as np

                common["quantiles"] = {
                    f"p{round(q * 100)}": float(v)
                    for q, v in zip(QUANTILES, np.quantile(numbers, QUANTILES), strict=True)
                }
    if kind == "categorical":
        shares = values.astype(str).value_counts(normalize=True)
        common["top"] = tuple((k, float(v)) for k, v in shares.head(TOP_VALUES).items())
    return ColumnStats(**common)


def _is_number(series: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _numeric_histogram(cur: pd.Series | None, ref: pd.Series | None) -> dict[str, Any]:
    import numpy as np

    cur_values = cur.dropna().to_numpy(dtype="float64") if cur is not None else np.array([])
    ref_values = ref.dropna().to_numpy(dtype="float64") if ref is not None else np.array([])
    cur_values, ref_values = cur_values[np.isfinite(cur_values)], ref_values[np.isfinite(ref_values)]
    basis = ref_values if len(ref_values) else cur_values
    if not len(basis):
        return {}
    edges = np.unique(np.quantile(basis, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    both = np.concatenate([cur_values, ref_values])
    low, high = float(both.min()), float(both.max())
    if len(edges) < 2:  # a constant column: one bin around it
        edges = np.array([low - 0.5, high + 0.5]) if low == high else np.array([low, high])
    edges[0], edges[-1] = min(edges[0], low), max(edges[-1], high)

    def shares(values: Any, present: bool) -> list[float | None]:
        if not present:
            return [None] * (len(edges) - 1)
        if not len(values):
            return [0.0] * (len(edges) - 1)
        counts, _ = np.histogram(values, bins=edges)
        return [float(c) / len(values) for c in counts]

    return {
        "edges": [float(e) for e in edges],
        "reference": shares(ref_values, ref is not None),
        "current": shares(cur_values, cur is not None),
    }


def _categorical_histogram(cur: pd.Series | None, ref: pd.Series | None) -> dict[str, Any]:
    cur_shares = cur.dropna().astype(str).value_counts(normalize=True) if cur is not None else None
    ref_shares = ref.dropna().astype(str).value_counts(normalize=True) if ref is not None else None
    order: list[str] = []
    for shares in (ref_shares, cur_shares):  # the reference's order, then what only the batch has
        if shares is not None:
            order += [str(k) for k in shares.index if str(k) not in order]
    if not order:
        return {}

    def pick(shares: Any) -> list[float | None]:
        if shares is None:
            return [None] * len(order)
        return [float(shares.get(k, 0.0)) for k in order]

    return {"categories": order, "reference": pick(ref_shares), "current": pick(cur_shares)}


# --- sample rows -----------------------------------------------------------------------------


def sample_rows(
    result: ExpectationResult, batch: pd.DataFrame, *, limit: int = MAX_SAMPLE_ROWS
) -> pd.DataFrame | None:
    """Up to ``limit`` rows of ``batch`` that break a failed per-row expectation on one column.

    The rows are found from what GX reported: the null rows for ``..._not_be_null``, else the
    rows holding one of the offending values (``partial_unexpected_list``). ``None`` when the
    expectation is about the whole table or a column aggregate (its observed value says it), or
    names a column the batch does not have. The index is the row's position in the batch.
    """
    column = result.kwargs.get("column")
    if result.success or not isinstance(column, str) or column not in batch.columns:
        return None
    values = batch[column]
    if result.expectation in _NULL_ROWS:
        mask = values.isna()
    elif result.expectation in _NON_NULL_ROWS:
        mask = values.notna()
    elif result.partial_unexpected_list:
        wanted = [v for v in result.partial_unexpected_list if v is not None]
        mask = values.isin(wanted)
        if not mask.any():  # values that went through JSON (dates, numpy types): compare as text
            mask = values.astype(str).isin([str(v) for v in wanted])
    else:
        return None
    found = batch.reset_index(drop=True)[mask.to_numpy()]
    if found.empty:
        return None
    ordered = [column, *[str(c) for c in batch.columns if str(c) != column]][:MAX_SAMPLE_COLUMNS]
    return found.head(limit)[ordered]


# --- the page --------------------------------------------------------------------------------

_TEMPLATE = """{% extends "page.html" %}
{% import "macros.html" as m %}
{% block content %}
<div class="banner {{ 'ok' if report.success else 'failed' }}"><div class="verdict">{{ 'Passed' if report.success else 'FAILED' }}</div><div>{{ met }} of {{ report.results|length }} expectation(s) met on {{ report.row_count }} row(s)</div></div>
{{ m.context(context) }}
{{ m.nav([("failed", "Failed expectations"), ("expectations", "All expectations"), ("profiles", "Column profiles")]) }}
{% call m.section("failed", "Failed expectations (%d)" % failures|length if failures else "Failed expectations") %}
{% for f in failures %}
<div class="failure"><h3>{{ f.name }}</h3><p>{{ f.describe }}</p>
{% if f.rows is none %}{{ m.missing("No sample rows: this expectation is about the whole column or table.") }}
{% else %}<p class="muted">Sample of the offending rows (up to {{ max_rows }}; row = position in the batch):</p>
{% call m.table(["row"] + f.columns) %}
{% for index, values in f.rows %}<tr>{{ m.cell(index) }}{% for name, value in values %}{{ m.cell(value, "bad" if name == f.column else "") }}{% endfor %}</tr>{% endfor %}
{% endcall %}
{% endif %}
</div>
{% else %}{{ m.missing("None: every expectation was met.") }}
{% endfor %}
{% endcall %}
{% call m.section("expectations", "All expectations") %}
{% if expectations %}
{% call m.table(["", "expectation", "observed", "unexpected", "unexpected %"]) %}
{% for e in expectations %}{{ m.tr("" if e.success else "failed") }}<td>{{ m.passed(e.success, "met", "failed") }}</td><td><code>{{ e.name }}</code></td><td>{{ e.observed }}</td>{{ m.cell(e.unexpected_count) }}{{ m.cell(e.unexpected_percent) }}</tr>
{% endfor %}
{% endcall %}
{% else %}{{ m.missing("No expectations were given.") }}{% endif %}
{% endcall %}
{% call m.section("profiles", "Column profiles: reference against batch" if profiles else "Column profiles") %}
{% if not has_reference and profiles %}{{ m.missing("No reference data set: the batch alone.") }}{% endif %}
{% for p in profiles %}
<div class="profile"><h3>{{ p.name }} <span class="muted">{{ p.kind }}</span></h3><div class="profile-body">
{% call m.table(["", "reference", "batch"]) %}{% for label, ref, cur in p.stats %}<tr><th>{{ label }}</th>{{ m.cell(ref) }}{{ m.cell(cur) }}</tr>{% endfor %}{% endcall %}
{{ m.figure(p.figure) }}</div></div>
{% else %}{{ m.missing("No columns.") }}
{% endfor %}
{% endcall %}
{% endblock %}
"""


def render_validation_html(
    report: ValidationReport,
    batch: pd.DataFrame,
    *,
    reference: pd.DataFrame | None = None,
    columns: Sequence[str] | None = None,
    source: str = "",
    reference_source: str | None = None,
    title: str = "",
    context: Mapping[str, str] | None = None,
    profiles: Sequence[ColumnProfile] | None = None,
) -> str:
    """The validation report as one self-contained HTML document.

    :param report: the result of :func:`~airflow_mlops.data.validation.validate_dataframe` on
        ``batch``.
    :param reference: the reference data set the profiles compare against (optional).
    :param columns: the columns profiled (default: all, see :func:`profile_columns`).
    :param source: where the batch came from; ``reference_source`` where the reference did.
    :param context: lines shown under the verdict (pipeline, run, ...); shown as text (escaped).
    :param profiles: profiles already computed with :func:`profile_columns` (else computed here).
    """
    if profiles is None:
        profiles = profile_columns(batch, reference, columns=columns)
    return render_page(
        _TEMPLATE,
        title=title or "Data validation report",
        report=report,
        met=len(report.results) - len(report.failed),
        context={
            "batch": source or "(not given)",
            "reference": reference_source or "(none)",
            "rows": str(report.row_count),
            **dict(context or {}),
        },
        failures=[_failure(result, batch) for result in report.failed],
        max_rows=MAX_SAMPLE_ROWS,
        expectations=[_expectation(r) for r in sorted(report.results, key=lambda r: r.success)],
        profiles=[_profile(p) for p in profiles],
        has_reference=reference is not None,
    )


def _expectation_name(result: ExpectationResult) -> str:
    args = ", ".join(f"{k}={_short(v, 80)}" for k, v in result.kwargs.items())
    return f"{result.expectation}({args})"


def _failure(result: ExpectationResult, batch: pd.DataFrame) -> dict[str, Any]:
    """A failed expectation with the offending rows: ``(position, [(column, value), ...])``."""
    rows = sample_rows(result, batch)
    return {
        "name": _expectation_name(result),
        "describe": result.describe(),
        "column": result.kwargs.get("column"),
        "columns": [] if rows is None else [str(c) for c in rows.columns],
        "rows": None
        if rows is None
        else [
            (int(index), [(name, _jsonable(value)) for name, value in row.items()])
            for index, row in rows.iterrows()
        ],
    }


def _expectation(result: ExpectationResult) -> dict[str, Any]:
    observed = result.error or (
        _short(result.observed_value, 80) if result.observed_value is not None else ""
    )
    return {
        "success": result.success,
        "name": _expectation_name(result),
        "observed": observed,
        "unexpected_count": result.unexpected_count,
        "unexpected_percent": result.unexpected_percent,
    }


def _stat_rows(profile: ColumnProfile) -> list[tuple[str, Any, Any]]:
    """``(statistic, reference, batch)`` rows of a profile's table."""

    def row(label: str, get: Any) -> tuple[str, Any, Any]:
        ref = get(profile.reference) if profile.reference else None
        cur = get(profile.batch) if profile.batch else None
        return (label, ref, cur)

    rows = [
        row("rows", lambda s: s.rows),
        row("nulls", lambda s: s.nulls),
        row("null share", lambda s: s.null_fraction),
        row("distinct", lambda s: s.distinct),
    ]
    stats = [s for s in (profile.reference, profile.batch) if s is not None]
    if any(s.min is not None for s in stats):
        rows += [
            row("min", lambda s: s.min),
            row("max", lambda s: s.max),
            row("mean", lambda s: s.mean),
            row("std", lambda s: s.std),
        ]
    for key in dict.fromkeys(k for s in stats for k in s.quantiles):
        rows.append(row(key, lambda s, key=key: s.quantiles.get(key)))
    for i in range(max((len(s.top) for s in stats), default=0)):
        rows.append(
            row(
                f"top {i + 1}",
                lambda s, i=i: f"{s.top[i][0]} ({s.top[i][1] * 100:.1f}%)" if i < len(s.top) else None,
            )
        )
    return rows


def _profile(profile: ColumnProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "kind": profile.kind,
        "stats": _stat_rows(profile),
        "figure": distribution_svg(
            profile.name,
            profile.histogram,
            note=profile.kind,
            caption="bins: the reference's deciles, drawn equal-width",
            current="batch",
        ),
    }
