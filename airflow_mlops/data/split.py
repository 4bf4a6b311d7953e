"""Deterministic, stratified train/holdout split (every row lands in exactly one side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd


def stratified_split(
    df: pd.DataFrame, *, target: str, holdout_fraction: float, seed: int, task: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` so each class keeps its share in both parts; same seed, same split.

    Classes are the labels read as :func:`~airflow_mlops.labels.label_key` reads them (``1``
    and ``"1"`` are one class). A ``regression`` target is stratified by its deciles instead, so
    both parts span the target's range.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.labels import label_key

    if target not in df.columns:
        raise DataError(
            f"target column {target!r} is not in the data (columns: {', '.join(map(str, df.columns))})"
        )
    if not 0 < holdout_fraction < 1:
        raise DataError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    holdout_positions: list[int] = []
    if task == "regression":
        from airflow_mlops.tasks import regression_target

        values = regression_target(df[target], column=target)
        if len(values) < 4:
            raise DataError(
                f"{len(values)} row(s) of {target!r}: a regression needs at least 4 to hold some out"
            )
        bins = min(10, len(values) // 2)
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        strata = (ranks * bins) // len(values)
        groups = [np.flatnonzero(strata == b) for b in range(bins)]
        described = [f"decile {b + 1}" for b in range(bins)]
    else:
        # label_key per distinct value, then spread by code (one Python call per class, not per row)
        codes, uniques = pd.factorize(df[target], use_na_sentinel=False)
        keys = np.asarray([label_key(u) for u in uniques], dtype=object)[codes]
        ordered = sorted(set(keys.tolist()), key=str)
        groups = [np.flatnonzero(keys == key) for key in ordered]
        described = [repr(key) for key in ordered]
    for what, positions in zip(described, groups, strict=True):
        if len(positions) < 2:
            raise DataError(
                f"class {what} of {target!r} has {len(positions)} row(s); at least 2 are needed to "
                "keep it in both the training and the holdout set"
                + ("" if task else " (is it a regression target? set `task: regression` in the spec)")
            )
        n = min(max(1, round(len(positions) * holdout_fraction)), len(positions) - 1)
        holdout_positions.extend(rng.choice(positions, size=n, replace=False).tolist())
    mask = np.zeros(len(df), dtype=bool)
    mask[holdout_positions] = True
    return df.iloc[~mask].reset_index(drop=True), df.iloc[mask].reset_index(drop=True)
