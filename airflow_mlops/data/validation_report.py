"""The validation report a person reads: one self-contained HTML page.

:func:`render_validation_html` turns a :class:`~airflow_mlops.data.validation.ValidationReport`
and the batch it was computed on into a single HTML document, top to bottom:

* the verdict (passed or failed), the batch, the reference and the counts;
* every failed expectation with what was observed and up to :data:`MAX_SAMPLE_ROWS` rows of the
  batch that break it (the offending cell highlighted);
* every expectation, met or not;
* one profile per column, batch against reference: count, nulls, distinct values, min, max,
  mean, standard deviation and quantiles (numeric), the most frequent values (text, flags), and
  a histogram of both as inline SVG (drawn by :func:`airflow_mlops.drift.figures.distribution_svg`,
  the same figure as the drift report's).

Like the drift report it loads nothing (no script, font, image or stylesheet from anywhere), a
``Content-Security-Policy`` meta tag forbids scripts and fetches, and every string from the data
(column names, values, the source URIs) is escaped. :func:`profile_columns` and
:func:`sample_rows` are plain functions returning plain data, so the JSON report can carry them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.validation import ExpectationResult, ValidationReport, _jsonable, _short
from airflow_mlops.drift.figures import distribution_svg, escape, format_value
from airflow_mlops.drift.html import html_page

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

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1180px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:4px 0}
h2{font-size:18px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid #e3e6ea}
h3{font-size:15px;margin:14px 0 4px;word-break:break-all}
.muted{color:#666}
.banner{border-left:6px solid;border-radius:6px;padding:10px 16px;margin:14px 0}
.banner.ok{background:#eef8ee;border-color:#2ca02c}
.banner.failed{background:#fdeeee;border-color:#d62728}
.banner .verdict{font-size:19px;font-weight:700}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 12px 3px 4px;text-align:left;vertical-align:top}
th{background:#f6f7f9;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.failed td{background:#fdeeee}
td.bad{background:#f8c9c9;font-weight:600}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600}
.tag.failed{background:#d62728;color:#fff}
.tag.passed{background:#e3f2e3;color:#1d6b1d}
.failure{border:1px solid #d62728;border-radius:6px;margin:10px 0;padding:4px 12px}
.profile{border:1px solid #e3e6ea;border-radius:6px;margin:10px 0;padding:4px 12px}
.profile-body{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
code{font-size:12px;word-break:break-all}
svg{max-width:100%;height:auto}
dl.context{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}
dl.context dt{font-weight:600}
dl.context dd{margin:0;word-break:break-all}
"""


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
        :func:`~airflow_mlops.drift.figures.distribution_svg` draws; ``current`` is the batch.
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
    heading = title or "Data validation report"
    if profiles is None:
        profiles = profile_columns(batch, reference, columns=columns)
    return html_page(
        heading,
        [
            _banner(report),
            _context(
                {
                    "batch": source or "(not given)",
                    "reference": reference_source or "(none)",
                    "rows": str(report.row_count),
                    **dict(context or {}),
                }
            ),
            '<nav><a href="#failed">Failed expectations</a> <a href="#expectations">All expectations</a> '
            '<a href="#profiles">Column profiles</a></nav>',
            _failed_section(report, batch),
            _expectations_section(report),
            _profiles_section(profiles, reference is not None),
        ],
        style=_STYLE,
    )


def _tag(css: str, text: str) -> str:
    return f'<span class="tag {css}">{escape(text)}</span>'


def _cell(value: object, css: str = "") -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    classes = " ".join(c for c in (css, "num" if numeric else "") if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{escape(format_value(value))}</td>"


def _table(headers: Iterable[str], rows: Iterable[tuple[str, str]]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead>"
    body = "".join(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>" for css, cells in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{content}</section>'


def _banner(report: ValidationReport) -> str:
    met = len(report.results) - len(report.failed)
    css, word = ("ok", "Passed") if report.success else ("failed", "FAILED")
    return (
        f'<div class="banner {css}"><div class="verdict">{word}</div>'
        f"<div>{met} of {len(report.results)} expectation(s) met on {report.row_count} row(s)</div></div>"
    )


def _context(lines: Mapping[str, str]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in lines.items())
    return f'<dl class="context">{items}</dl>'


def _expectation_name(result: ExpectationResult) -> str:
    args = ", ".join(f"{k}={_short(v, 80)}" for k, v in result.kwargs.items())
    return f"{result.expectation}({args})"


def _failed_section(report: ValidationReport, batch: pd.DataFrame) -> str:
    if not report.failed:
        return _section(
            "failed", "Failed expectations", '<p class="muted">None: every expectation was met.</p>'
        )
    blocks = []
    for result in report.failed:
        column = result.kwargs.get("column")
        rows = sample_rows(result, batch)
        if rows is None:
            sample = (
                '<p class="muted">No sample rows: this expectation is about the whole column or table.</p>'
            )
        else:
            headers = ["row", *map(str, rows.columns)]
            body = []
            for index, row in rows.iterrows():
                cells = _cell(int(index))
                for name, value in row.items():
                    cells += _cell(_jsonable(value), "bad" if name == column else "")
                body.append(("", cells))
            sample = (
                f'<p class="muted">Sample of the offending rows (up to {MAX_SAMPLE_ROWS}; row = '
                "position in the batch):</p>" + _table(headers, body)
            )
        blocks.append(
            f'<div class="failure"><h3>{escape(_expectation_name(result))}</h3>'
            f"<p>{escape(result.describe())}</p>{sample}</div>"
        )
    return _section("failed", f"Failed expectations ({len(report.failed)})", "".join(blocks))


def _expectations_section(report: ValidationReport) -> str:
    if not report.results:
        return _section(
            "expectations", "All expectations", '<p class="muted">No expectations were given.</p>'
        )
    rows = []
    for result in sorted(report.results, key=lambda r: r.success):  # failed first, else in order
        status = _tag("passed", "met") if result.success else _tag("failed", "failed")
        observed = result.error or (
            _short(result.observed_value, 80) if result.observed_value is not None else ""
        )
        rows.append(
            (
                "" if result.success else "failed",
                f"<td>{status}</td><td><code>{escape(_expectation_name(result))}</code></td>"
                f"<td>{escape(observed)}</td>"
                + _cell(result.unexpected_count)
                + _cell(result.unexpected_percent),
            )
        )
    table = _table(["", "expectation", "observed", "unexpected", "unexpected %"], rows)
    return _section("expectations", "All expectations", table)


def _stat_rows(profile: ColumnProfile) -> list[tuple[str, str]]:
    def row(label: str, get: Any) -> tuple[str, str]:
        ref = get(profile.reference) if profile.reference else None
        cur = get(profile.batch) if profile.batch else None
        return ("", f"<th>{escape(label)}</th>" + _cell(ref) + _cell(cur))

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


def _profiles_section(profiles: Sequence[ColumnProfile], has_reference: bool) -> str:
    if not profiles:
        return _section("profiles", "Column profiles", '<p class="muted">No columns.</p>')
    blocks = []
    for profile in profiles:
        table = _table(["", "reference", "batch"], _stat_rows(profile))
        figure = distribution_svg(
            profile.name,
            profile.kind,
            profile.histogram,
            caption="bins: the reference's deciles, drawn equal-width; current = this batch",
        )
        blocks.append(
            f'<div class="profile"><h3>{escape(profile.name)} <span class="muted">{escape(profile.kind)}'
            f'</span></h3><div class="profile-body">{table}<figure>{figure}</figure></div></div>'
        )
    note = "" if has_reference else '<p class="muted">No reference data set: the batch alone.</p>'
    return _section("profiles", "Column profiles: reference against batch", note + "".join(blocks))
