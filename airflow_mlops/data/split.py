"""Deterministic, stratified train/holdout split (every row lands in exactly one side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd


def stratified_split(
    df: pd.DataFrame, *, target: str, holdout_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` so each class keeps its share in both parts; same seed, same split."""
    import numpy as np

    if target not in df.columns:
        raise DataError(
            f"target column {target!r} is not in the data (columns: {', '.join(map(str, df.columns))})"
        )
    if not 0 < holdout_fraction < 1:
        raise DataError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    holdout_positions: list[int] = []
    labels = df[target].to_numpy()
    for label in sorted(set(labels.tolist()), key=str):
        positions = np.flatnonzero(labels == label)
        if len(positions) < 2:
            raise DataError(
                f"class {label!r} of {target!r} has {len(positions)} row(s); at least 2 are needed to "
                "keep it in both the training and the holdout set"
            )
        n = min(max(1, round(len(positions) * holdout_fraction)), len(positions) - 1)
        holdout_positions.extend(rng.choice(positions, size=n, replace=False).tolist())
    mask = np.zeros(len(df), dtype=bool)
    mask[holdout_positions] = True
    return df.iloc[~mask].reset_index(drop=True), df.iloc[mask].reset_index(drop=True)
