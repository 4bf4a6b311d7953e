"""Data for the task examples (docs/examples/tasks), made from datasets bundled with scikit-learn.

Nothing is downloaded: breast cancer (binary), wine, iris (text labels) and digits (multiclass, digits as 8x8 images in
64 pixel columns) and diabetes (regression) ship inside scikit-learn. Each dataset is shuffled with
a fixed seed and written as the examples read it::

    OUT/<name>/reference.parquet                    # 40 % of the rows: the training distribution
    OUT/<name>/train/2026-01-02/batch.parquet       # 40 %: the batch the train DAG fits on
    OUT/<name>/live/2026-01-02/batch.parquet        # 20 %, labelled: a clean live window
    OUT/<name>/live/2026-01-03/batch.parquet        # the same rows drifted (a covariate shift)

The drifted window multiplies the dataset's most important features by 1.5 (a unit change or a
population moving beyond the training range: the kind of drift that should retrain).

Command line: ``python -m airflow_mlops.data.sklearn_examples --out DIR [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CLEAN_DAY, DRIFT_DAY = "2026-01-02", "2026-01-03"
#: name -> (loader, target column, the columns the drifted window scales)
DATASETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "breast_cancer": (
        "load_breast_cancer",
        "malignant",
        ("mean_radius", "mean_perimeter", "mean_area", "worst_radius", "worst_area"),
    ),
    "wine": ("load_wine", "cultivar", ("alcohol", "flavanoids", "color_intensity", "proline")),
    "digits": ("load_digits", "digit", ()),  # every pixel: the strokes get heavier
    "diabetes": ("load_diabetes", "disease_progression", ("bmi", "bp", "s5")),
    "iris": ("load_iris", "species", ("petal_length_cm", "petal_width_cm")),
}
_SEED = 20260102


def load_frame(name: str) -> pd.DataFrame:
    """The dataset as one DataFrame: feature columns with identifier names, and its target."""
    import numpy as np
    import pandas as pd
    from sklearn import datasets

    loader, target, _ = DATASETS[name]
    bunch: Any = getattr(datasets, loader)()
    if name == "digits":
        columns = [f"px_{i // 8}_{i % 8}" for i in range(bunch.data.shape[1])]
    else:
        columns = [re.sub(r"[^0-9A-Za-z]+", "_", str(c)).strip("_") for c in bunch.feature_names]
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=columns)
    values = bunch.target
    if name == "iris":
        values = np.asarray(bunch.target_names)[values]  # text labels: setosa, versicolor, virginica
    if name == "breast_cancer":
        values = (values == 0).astype(
            np.int64
        )  # scikit-learn codes malignant as 0: make it the positive class
    frame[target] = values
    return frame


def drift(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The drifted copy of a live window (see the module docstring)."""
    _, target, columns = DATASETS[name]
    out = frame.copy()
    scaled = list(columns) or [c for c in out.columns if c != target]
    out[scaled] = out[scaled] * 1.5
    return out


def write_example(name: str, out: str | Path) -> Path:
    """Write one dataset's files under ``out/<name>``; returns that folder."""
    import numpy as np

    frame = load_frame(name)
    order = np.random.default_rng(_SEED).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    n = len(frame)
    ref_end, train_end = int(n * 0.4), int(n * 0.8)
    root = Path(out) / name
    parts = {
        root / "reference.parquet": frame.iloc[:ref_end],
        root / "train" / CLEAN_DAY / "batch.parquet": frame.iloc[ref_end:train_end],
        root / "live" / CLEAN_DAY / "batch.parquet": frame.iloc[train_end:],
        root / "live" / DRIFT_DAY / "batch.parquet": drift(frame.iloc[train_end:], name),
    }
    for path, part in parts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        part.reset_index(drop=True).to_parquet(path, index=False)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops.data.sklearn_examples", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder to write <name>/... into")
    parser.add_argument("--only", nargs="*", choices=sorted(DATASETS), help="some datasets only")
    args = parser.parse_args(argv)
    for name in args.only or sorted(DATASETS):
        print(write_example(name, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
