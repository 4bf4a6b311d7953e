"""Built-in models (tabular MLP, image CNN) and the preprocessing every flavor can use.

How a trained model is stored and loaded (any flavor, safetensors for these networks) is
:mod:`airflow_mlops.training.flavors`.

This module runs wherever a model is trained or loaded: the trainer subprocess or pod, the
evaluation task, and MLflow serving. It imports only torch, numpy, pandas, safetensors and the
standard-library-only exception hierarchy (never Airflow or MLflow), and it is never imported by
the DAG processor (hence its exemption from the module-level import ban in ``pyproject.toml``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from airflow_mlops.exceptions import DataError

# A categorical column with more distinct values than this is almost always an identifier.
MAX_CATEGORIES = 1000
# An object/string column is "numbers with typos" when at least this share of its values parse.
_NUMERIC_LOOKING_SHARE = 0.9


class MLP(nn.Module):
    """A feed-forward network: ``[Linear -> ReLU -> Dropout] * n -> Linear(outputs)``.

    With one output (binary: a logit; regression: a value) ``forward`` returns shape ``(n,)``;
    with ``outputs`` > 1 (multiclass logits) ``(n, outputs)``.
    """

    def __init__(
        self, input_dim: int, hidden_units: Sequence[int], dropout: float = 0.0, outputs: int = 1
    ) -> None:
        super().__init__()
        if not _is_int(input_dim) or input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        if not hidden_units or not all(_is_int(u) and u >= 1 for u in hidden_units):
            raise ValueError(
                f"hidden_units must be a non-empty list of positive integers, got {hidden_units!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not _is_int(outputs) or outputs < 1:
            raise ValueError(f"outputs must be a positive integer, got {outputs!r}")
        self.outputs = int(outputs)
        self.input_dim = int(input_dim)
        self.hidden_units = [int(u) for u in hidden_units]
        self.dropout = float(dropout)
        layers: list[nn.Module] = []
        width = self.input_dim
        for units in self.hidden_units:
            # Dropout is kept even at p=0 so the state-dict keys never depend on the rate.
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(self.dropout)]
            width = units
        layers.append(nn.Linear(width, self.outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.outputs == 1 else out

    model_type = "mlp"

    def architecture(self) -> dict[str, Any]:
        """What :meth:`from_architecture` needs to rebuild this network (without weights)."""
        return {
            "input_dim": self.input_dim,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "outputs": self.outputs,
        }

    @classmethod
    def from_architecture(cls, architecture: Mapping[str, Any]) -> MLP:
        return cls(
            input_dim=architecture["input_dim"],
            hidden_units=architecture["hidden_units"],
            dropout=architecture.get("dropout", 0.0),
            outputs=architecture.get("outputs", 1),
        )


class CNN(nn.Module):
    """A small convolutional network for images stored as pixel columns (any task: see :class:`MLP`).

    The input is the preprocessed float matrix, one column per pixel value in row-major
    ``(channels, height, width)`` order; ``forward`` reshapes it to images, runs
    ``[Conv3x3 -> ReLU -> MaxPool2]`` per entry of ``conv_channels`` (pooling only while the image
    is at least 2x2), flattens, and ends in the same dense head as :class:`MLP`. No batch norm:
    the network stays compatible with per-sample gradients (DP-SGD).
    """

    model_type = "cnn"

    def __init__(
        self,
        image_shape: Sequence[int],
        conv_channels: Sequence[int],
        hidden_units: Sequence[int],
        dropout: float = 0.0,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or not all(_is_int(d) and d >= 1 for d in image_shape):
            raise ValueError(f"image_shape must be [channels, height, width], got {image_shape!r}")
        if not conv_channels or not all(_is_int(c) and c >= 1 for c in conv_channels):
            raise ValueError(
                f"conv_channels must be a non-empty list of positive integers, got {conv_channels!r}"
            )
        channels, height, width = (int(d) for d in image_shape)
        self.image_shape = [channels, height, width]
        self.conv_channels = [int(c) for c in conv_channels]
        self.input_dim = channels * height * width
        blocks: list[nn.Module] = []
        for out_channels in self.conv_channels:
            blocks += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            if height >= 2 and width >= 2:
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = MLP(channels * height * width, hidden_units, dropout, outputs)

    @property
    def hidden_units(self) -> list[int]:
        return self.head.hidden_units

    @property
    def dropout(self) -> float:
        return self.head.dropout

    @property
    def outputs(self) -> int:
        return self.head.outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(x.shape[0], *self.image_shape)
        return self.head(self.features(images).flatten(1))

    def architecture(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "image_shape": list(self.image_shape),
            "conv_channels": list(self.conv_channels),
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "outputs": self.outputs,
        }

    @classmethod
    def from_architecture(cls, architecture: Mapping[str, Any]) -> CNN:
        model = cls(
            image_shape=architecture["image_shape"],
            conv_channels=architecture["conv_channels"],
            hidden_units=architecture["hidden_units"],
            dropout=architecture.get("dropout", 0.0),
            outputs=architecture.get("outputs", 1),
        )
        if architecture.get("input_dim", model.input_dim) != model.input_dim:
            raise ValueError("input_dim does not match image_shape")
        return model


# model_config.json "model_type" -> the class that rebuilds it from "architecture".
MODEL_TYPES: dict[str, type[MLP] | type[CNN]] = {"mlp": MLP, "cnn": CNN}


@dataclass(frozen=True)
class Preprocessor:
    """Turns a DataFrame into the MLP's float32 input matrix.

    Numeric columns are standardised with the training mean and standard deviation (missing
    values become the mean, i.e. 0 after scaling). Categorical columns are one-hot encoded with
    the categories seen in training; a missing or unseen category encodes as all zeros. Output
    columns follow ``features`` order (see :attr:`output_names`).
    """

    features: tuple[str, ...]
    numeric: Mapping[str, tuple[float, float]]  # column -> (mean, std)
    categorical: Mapping[str, tuple[str, ...]]  # column -> categories, as strings
    # True: a missing numeric value stays NaN (for tree models, which learn where it goes).
    keep_missing: bool = False

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        features: Sequence[str],
        categorical: Sequence[str] | None = None,
        *,
        keep_missing: bool = False,
    ) -> Preprocessor:
        """Learn the encoding from training data.

        :param categorical: columns to one-hot encode; every other feature must be numeric.
            ``None`` infers: object, string and category columns are categorical.
        :raises DataError: a feature is missing, a numeric column holds non-numbers or
            infinities, a column has an unusable dtype, or a categorical column has more than
            ``MAX_CATEGORIES`` distinct values.
        """
        features = [str(f) for f in features]
        if not features:
            raise DataError("no feature columns given; list at least one in features")
        duplicates = sorted({f for f in features if features.count(f) > 1})
        if duplicates:
            raise DataError(f"feature column(s) listed more than once: {', '.join(duplicates)}")
        _require_columns(df, features, "training data")
        if categorical is None:
            cat_set = {f for f in features if _infer_categorical(df[f], f)}
        else:
            cat_set = {str(c) for c in categorical}
            unknown = sorted(cat_set - set(features))
            if unknown:
                raise DataError(
                    f"categorical column(s) {', '.join(unknown)} are not among the features; "
                    "add them to features or remove them from categorical"
                )
        numeric: dict[str, tuple[float, float]] = {}
        cats: dict[str, tuple[str, ...]] = {}
        for name in features:
            if name in cat_set:
                strings = _category_strings(df[name])
                seen = sorted({s for s in strings if s is not None})
                if len(seen) > MAX_CATEGORIES:
                    raise DataError(
                        f"categorical column {name!r} has {len(seen)} distinct values (limit "
                        f"{MAX_CATEGORIES}); it looks like an identifier: drop it from features"
                    )
                cats[name] = tuple(seen)
            else:
                values = _numeric_values(df[name], name)
                finite = values[~np.isnan(values)]
                mean = float(finite.mean()) if finite.size else 0.0
                std = float(finite.std()) if finite.size else 1.0
                if not math.isfinite(std) or std < 1e-12:
                    std = 1.0
                numeric[name] = (mean, std)
        return cls(features=tuple(features), numeric=numeric, categorical=cats, keep_missing=keep_missing)

    @property
    def output_names(self) -> list[str]:
        """Names of the encoded columns: ``col`` for numerics, ``col=category`` for one-hots."""
        names: list[str] = []
        for name in self.features:
            if name in self.numeric:
                names.append(name)
            else:
                names.extend(f"{name}={c}" for c in self.categorical[name])
        return names

    @property
    def output_dim(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categorical.values())

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode ``df`` into a ``(len(df), output_dim)`` float32 matrix.

        :raises DataError: a feature column is missing, or a numeric column holds non-numbers.
        """
        _require_columns(df, self.features, "input data")
        out = np.zeros((len(df), self.output_dim), dtype=np.float32)
        offset = 0
        for name in self.features:
            if name in self.numeric:
                mean, std = self.numeric[name]
                values = _numeric_values(df[name], name)
                if not self.keep_missing:
                    values = np.where(np.isnan(values), mean, values)
                out[:, offset] = (values - mean) / std
                offset += 1
            else:
                categories = self.categorical[name]
                codes = pd.Categorical(_category_strings(df[name]), categories=categories).codes
                rows = np.flatnonzero(codes >= 0)
                out[rows, offset + codes[rows]] = 1.0
                offset += len(categories)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "numeric": {name: {"mean": m, "std": s} for name, (m, s) in self.numeric.items()},
            "categorical": {name: list(c) for name, c in self.categorical.items()},
            **({"missing": "keep"} if self.keep_missing else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        features = tuple(str(f) for f in data["features"])
        numeric = {str(k): (float(v["mean"]), float(v["std"])) for k, v in data["numeric"].items()}
        categorical = {str(k): tuple(str(c) for c in v) for k, v in data["categorical"].items()}
        if set(numeric) & set(categorical) or set(numeric) | set(categorical) != set(features):
            raise ValueError("every feature must be exactly one of numeric or categorical")
        if any(not (math.isfinite(m) and math.isfinite(s) and s > 0) for m, s in numeric.values()):
            raise ValueError("numeric means must be finite and stds finite and positive")
        missing = data.get("missing", "mean")
        if missing not in ("mean", "keep"):
            raise ValueError(f"preprocessing missing must be mean or keep, got {missing!r}")
        return cls(
            features=features, numeric=numeric, categorical=categorical, keep_missing=missing == "keep"
        )


# --- helpers ------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    present = {str(c) for c in df.columns}
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(
            f"{what} lacks feature column(s) {', '.join(repr(c) for c in missing)} "
            f"(it has {len(present)} column(s): {', '.join(sorted(present)[:20])})"
        )


def _is_categorical_dtype(dtype: Any) -> bool:
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _infer_categorical(series: pd.Series, name: str) -> bool:
    """Object, string and category columns are categorical; numbers and booleans are numeric.

    An object/string column that is mostly numbers with a few non-numbers is a broken numeric
    column (typically a CSV with a typo), not a category: that is reported, not encoded.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    ):
        return False
    if not _is_categorical_dtype(dtype):
        raise DataError(
            f"feature column {name!r} has dtype {dtype}, which the model cannot use; convert it "
            "to numbers or strings, or drop it from features"
        )
    if not isinstance(dtype, pd.CategoricalDtype):
        # Judged on the distinct values and their counts (a few, for a real category), not row by row.
        counts = series.value_counts(dropna=True)
        parsed = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce")
        total = int(counts.sum())
        share = float(counts.to_numpy()[parsed.notna().to_numpy()].sum()) / total if total else 0.0
        if _NUMERIC_LOOKING_SHARE <= share < 1.0:
            bad_value = counts.index[int(np.flatnonzero(parsed.isna().to_numpy())[0])]
            row = series.index[series.astype(object) == bad_value][0]
            raise DataError(
                f"column {name!r} looks numeric ({share:.1%} of its values are numbers) but holds "
                f"non-numeric values such as {bad_value!r} (row {row!r}); fix the data, "
                "or list the column under categorical to treat it as categories"
            )
    return True


def _numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values; non-numbers raise DataError."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    ):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif _is_categorical_dtype(dtype):
        raw = series.astype(object)
        coerced = pd.to_numeric(raw, errors="coerce")
        bad = coerced.isna() & raw.notna()
        if bad.any():
            first = raw[bad]
            raise DataError(
                f"numeric column {name!r} holds {int(bad.sum())} non-numeric value(s) such as "
                f"{first.iloc[0]!r} (row {first.index[0]!r}); fix the data, or list the column "
                "under categorical"
            )
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raise DataError(
            f"numeric column {name!r} has dtype {dtype}, not numbers; convert it or drop it from features"
        )
    if np.isinf(values).any():
        raise DataError(
            f"numeric column {name!r} holds {int(np.isinf(values).sum())} infinite value(s); "
            "replace them with finite numbers or leave them empty"
        )
    return values


def _category_strings(series: pd.Series) -> np.ndarray:
    """Category values as strings (so 1 and "1" match), with None for missing values."""
    raw = series.astype(object)
    if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        # All text: str() once per distinct value, spread by code (-1: missing -> None). Mixed
        # types go row by row, since factorize would merge 1, 1.0 and True, which str() tells apart.
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        strings = np.asarray([*(str(v) for v in uniques), None], dtype=object)
        return strings[codes]
    present = raw.notna().to_numpy()
    out = np.full(len(raw), None, dtype=object)
    out[present] = [str(v) for v in raw.to_numpy()[present]]
    return out
