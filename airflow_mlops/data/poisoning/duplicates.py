"""``duplicates``: exact and near copies with conflicting labels (or, for a regression, targets
that differ by more than a tolerance); the copies that disagree with the label model are
suspect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.stats import MAD_TO_Z

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.data.poisoning.features import Encoder

# Numeric features are rounded to this share of their standard deviation.
NEAR_DUPLICATE_RESOLUTION = 1e-3
# Regression: copies disagree when their targets differ by more than the larger of this share of
# the target's robust standard deviation and DUPLICATE_RESIDUAL_Z x the label model's robust
# residual scale (the noise the features do not explain: two clean copies differ by it with a
# standard deviation of sqrt(2) x the scale, so 6 is ~4.2 of those).
DUPLICATE_TARGET_SHARE = 0.05
DUPLICATE_RESIDUAL_Z = 6.0


def duplicate_groups(x: np.ndarray, encoder: Encoder) -> np.ndarray:
    """A group id per row: rows equal after rounding numeric features to a thousandth of a std."""
    import numpy as np
    import pandas as pd

    keys = np.empty_like(x)
    for j, (name, num) in enumerate(zip(encoder.features, encoder.numeric, strict=True)):
        col = x[:, j]
        step = encoder.std.get(name, 0.0) * NEAR_DUPLICATE_RESOLUTION if num else 0.0
        keys[:, j] = np.round(col / step) if step > 0 else col
    frame = pd.DataFrame(keys).fillna(np.inf)  # missing values group together
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


def conflicting_duplicates(
    labels: np.ndarray, group: np.ndarray, labelled: np.ndarray, label_model: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Copies (exact or near) whose label (``labels``: class texts) disagrees with their group's
    most plausible label; any number of classes."""
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(labels), dtype=bool)
    probe = pd.DataFrame({"g": group[labelled], "y": labels[labelled]})
    n_labels = probe.groupby("g")["y"].nunique()
    conflicting = n_labels.index[n_labels.to_numpy() > 1].to_numpy()
    detail: dict[str, Any] = {
        "method": "exact and near duplicates (numeric features rounded to "
        f"{NEAR_DUPLICATE_RESOLUTION:g} standard deviations) with conflicting labels",
        "conflicting_groups": len(conflicting),
    }
    if not len(conflicting):
        detail["resolved_by"] = "nothing to resolve"
        return mask, detail
    in_conflict = labelled & np.isin(group, conflicting)
    lm = label_model()
    if lm.status == "ran":
        # The group's most plausible label: the most probable class, on average over its copies
        # (plain probabilities: here the class rates rightly count).
        rows = np.flatnonzero(in_conflict)
        per_group = pd.DataFrame(lm.proba[rows]).groupby(group[rows]).mean()
        best = per_group.to_numpy().argmax(axis=1)
        best_of = dict(zip(per_group.index.to_numpy(), best, strict=True))
        preferred = np.array([best_of[g] for g in group[rows]])
        mask[rows[lm.y[rows] != preferred]] = True
        detail["resolved_by"] = "label model: copies whose label is not the group's most plausible"
        detail["model_source"] = lm.source
    else:
        mask[in_conflict] = True  # cannot tell which copy is genuine: hold them all back
        detail["resolved_by"] = f"every copy (label model {lm.status})"
    return mask, detail


def target_scale(y: np.ndarray) -> float:
    """The robust standard deviation of a regression target (MAD / 0.6745, else its standard
    deviation; 0 for a constant or empty one)."""
    import numpy as np

    finite = y[np.isfinite(y)]
    if not len(finite):
        return 0.0
    scale = float(np.median(np.abs(finite - np.median(finite)))) / MAD_TO_Z
    return scale if scale > 0 else float(finite.std())


def conflicting_duplicate_targets(
    y: np.ndarray, group: np.ndarray, labelled: np.ndarray, target_scale: float, residual_model: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Regression: copies (exact or near) whose targets differ by more than the tolerance.

    The tolerance is :data:`DUPLICATE_TARGET_SHARE` x the target's robust standard deviation, or
    :data:`DUPLICATE_RESIDUAL_Z` x the residual scale of the label model when that is larger (two
    measurements of one row differ by the noise the features do not explain). In a conflicting
    group the copy nearest the model's prediction for the group is taken as genuine and the
    copies farther than the tolerance from it are suspect; without a model, every copy."""
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(y), dtype=bool)
    rows = np.flatnonzero(labelled)
    values = pd.Series(y[rows])
    by_group = values.groupby(group[rows])
    spread = (by_group.max() - by_group.min()).astype(float)
    floor = DUPLICATE_TARGET_SHARE * target_scale
    detail: dict[str, Any] = {
        "method": "exact and near duplicates (numeric features rounded to "
        f"{NEAR_DUPLICATE_RESOLUTION:g} standard deviations) whose targets differ by more than the tolerance",
        "tolerance_rule": f"the larger of {DUPLICATE_TARGET_SHARE:g} x the target's robust standard deviation "
        f"and {DUPLICATE_RESIDUAL_Z:g} x the label model's robust residual scale",
    }
    candidates = spread.index[spread.to_numpy() > floor].to_numpy()
    tolerance = floor
    rm = residual_model() if len(candidates) else None
    if rm is not None and rm.status == "ran":
        tolerance = max(floor, DUPLICATE_RESIDUAL_Z * rm.scale)
    conflicting = spread.index[spread.to_numpy() > tolerance].to_numpy()
    detail["tolerance"] = float(tolerance)
    detail["conflicting_groups"] = len(conflicting)
    if not len(conflicting):
        detail["resolved_by"] = "nothing to resolve"
        return mask, detail
    in_conflict = rows[np.isin(group[rows], conflicting)]
    if rm is not None and rm.status == "ran":
        frame = pd.DataFrame({"g": group[in_conflict], "y": y[in_conflict], "p": rm.prediction[in_conflict]})
        frame["gap"] = (frame["y"] - frame.groupby("g")["p"].transform("mean")).abs()
        anchor = frame.loc[frame.groupby("g")["gap"].idxmin(), ["g", "y"]].set_index("g")["y"]
        far = (frame["y"] - frame["g"].map(anchor)).abs().to_numpy() > tolerance
        mask[in_conflict[far]] = True
        detail["resolved_by"] = (
            "label model: copies farther than the tolerance from the copy nearest the group's prediction"
        )
        detail["model_source"] = rm.source
    else:
        mask[in_conflict] = True  # cannot tell which copy is genuine: hold them all back
        status = rm.status if rm is not None else "not run"
        detail["resolved_by"] = f"every copy (label model {status})"
    return mask, detail
