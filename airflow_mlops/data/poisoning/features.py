"""The features as matrices: :func:`build_feature_matrix` for distances, :class:`Encoder` for the
tree models, and the column helpers the checks share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# build_feature_matrix: categorical columns keep at most this many categories (the rest: "other").
MAX_CATEGORIES = 50
# A numeric column is log-compressed when all its values are >= 0 and its skewness is above this.
LOG_SKEW_THRESHOLD = 1.0


def build_feature_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Encode ``features`` of ``df`` as a dense float matrix for distance computations.

    * Numeric (and boolean) columns: missing and infinite values are imputed with the column
      median (0 when the whole column is missing); a column with only values >= 0 and a skewness
      above :data:`LOG_SKEW_THRESHOLD` is ``log1p``-compressed; then it is standardised to mean
      0, standard deviation 1 (a constant column becomes 0).
    * Other columns (strings, categories, ...): one-hot encoded, missing as its own category,
      at most :data:`MAX_CATEGORIES` of the most frequent categories (the rest share one
      column), scaled by ``1/sqrt(2)`` so that two different categories are as far apart as
      one standard deviation of a numeric column.

    :raises DataError: a feature column is missing.
    """
    import numpy as np
    import pandas as pd

    require_columns(df, list(features))
    blocks: list[np.ndarray] = []
    for name in features:
        col = df[name]
        if is_numeric(col):
            values = _numeric_view(col)
            finite = np.isfinite(values)
            fill = float(np.median(values[finite])) if finite.any() else 0.0
            values = np.where(finite, values, fill)
            std = values.std()
            blocks.append(((values - values.mean()) / std if std > 0 else np.zeros_like(values))[:, None])
        else:
            text = col.astype(object).where(col.notna(), "__missing__").astype(str)
            top = text.value_counts(sort=True).index[:MAX_CATEGORIES]
            text = text.where(text.isin(top), "__other__")
            onehot = pd.get_dummies(text, dtype=float).to_numpy()
            blocks.append(onehot / np.sqrt(2.0))
    if not blocks:
        return np.zeros((len(df), 0))
    return np.hstack(blocks)


@dataclass
class Encoder:
    """Features as a float matrix for the tree models, with statistics taken from one frame.

    Numeric columns keep their values (+-inf become NaN: trees treat NaN as missing; the robust
    z-score catches the infinite values); categorical columns become codes of their
    :data:`MAX_CATEGORIES` most frequent categories in the fitted frame (others: NaN).
    """

    features: list[str]
    numeric: list[bool]
    categories: dict[str, list[str]]
    median: dict[str, float]
    mad: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, df: pd.DataFrame, features: list[str]) -> Encoder:
        import numpy as np

        numeric = [is_numeric(df[f]) for f in features]
        categories: dict[str, list[str]] = {}
        median: dict[str, float] = {}
        mad: dict[str, float] = {}
        std: dict[str, float] = {}
        for name, is_num in zip(features, numeric, strict=True):
            if is_num:
                values = float_values(df[name])
                finite = values[np.isfinite(values)]
                if len(finite) == 0:
                    raise DataError(
                        f"feature column {name!r} has no finite value in the data it is compared "
                        "against: drop it from data.features or fix the data"
                    )
                med = float(np.median(finite))
                median[name] = med
                mad[name] = float(np.median(np.abs(finite - med)))
                std[name] = float(finite.std())
            else:
                text = df[name].dropna().astype(str)
                categories[name] = [str(c) for c in text.value_counts(sort=True).index[:MAX_CATEGORIES]]
        return cls(list(features), numeric, categories, median, mad, std)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        import numpy as np
        import pandas as pd

        out = np.empty((len(df), len(self.features)), dtype=np.float64)
        for j, (name, is_num) in enumerate(zip(self.features, self.numeric, strict=True)):
            if is_num:
                values = float_values(df[name])
                out[:, j] = np.where(np.isfinite(values), values, np.nan)
            else:
                col = df[name]
                text = col.astype(str).where(col.notna())
                codes = pd.Categorical(text, categories=self.categories[name]).codes
                out[:, j] = np.where(codes >= 0, codes, np.nan)
        return out

    @property
    def categorical_mask(self) -> list[bool]:
        return [not n for n in self.numeric]


def require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not in the data; it has {list(map(str, df.columns))}: "
            "check data.target and data.features in the spec"
        )


def is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col.dtype))


def float_values(col: pd.Series) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()


def finite_values(col: pd.Series) -> np.ndarray:
    import numpy as np

    values = float_values(col)
    return values[np.isfinite(values)]


def is_heavy_tailed(values: np.ndarray) -> bool:
    import numpy as np

    finite = values[np.isfinite(values)]
    if len(finite) <= 2 or finite.min() < 0:
        return False
    std = finite.std()
    skew = float(((finite - finite.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    return skew > LOG_SKEW_THRESHOLD


def _numeric_view(col: pd.Series) -> np.ndarray:
    """A numeric column as float64 (missing as NaN), log1p-compressed when heavy right-tailed."""
    import numpy as np

    values = float_values(col)
    if is_heavy_tailed(values):
        with np.errstate(invalid="ignore"):
            values = np.log1p(values)  # keeps +inf as +inf, NaN as NaN
    return values
