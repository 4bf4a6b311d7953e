"""What the federated server and clients compute and exchange, as plain functions.

Nothing here imports Flower: the server app and the client app call these, and the unit tests
check them without a federation. What leaves a SuperNode is only what these functions return:
per-feature counts, means and variances, the category names seen, label counts, a histogram of
the global model's scores on its validation rows, and (in the training rounds) model weights.
Rows never leave it.

- :func:`partition_indices`: the rows of partition ``i`` of ``n`` (``data: partitions``);
- :func:`feature_statistics` / :func:`merge_statistics`: the global input encoding (a
  :class:`~airflow_mlops.training.networks.Preprocessor` equal to one fitted on the pooled rows:
  means and variances are pooled exactly, with Chan's parallel formula);
- :func:`score_histograms` / :func:`threshold_from_histograms`: the operating threshold chosen on
  every client's validation rows, through histograms of the scores (``HISTOGRAM_BINS`` bins);
- :func:`app_sha256`: the hash of the app's files the ML-BOM names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, TrainingRejectedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Score histogram resolution: the threshold is chosen to within 1 / HISTOGRAM_BINS.
HISTOGRAM_BINS = 1000
#: The federated app: this package's modules and the app folder (see :func:`app_files`).
APP_DIR = Path(__file__).resolve().parent / "app"


def partition_indices(rows: int, partition_id: int, num_partitions: int, seed: int) -> np.ndarray:
    """Row positions of partition ``partition_id`` of ``num_partitions``: a seeded shuffle cut into
    contiguous, near-equal parts (every row is in exactly one partition)."""
    import numpy as np

    if num_partitions < 1 or not 0 <= partition_id < num_partitions:
        raise TrainingRejectedError(
            f"partition-id {partition_id} is not in 0..{num_partitions - 1} (num-partitions "
            f'{num_partitions}); set the SuperNode\'s --node-config "partition-id=<i> num-partitions=<n>"'
        )
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(np.array_split(order, num_partitions)[partition_id])


def feature_statistics(
    frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str] | None
) -> dict[str, Any]:
    """One client's contribution to the encoding: per numeric feature ``[count, mean, m2]`` of its
    finite values, per categorical feature the sorted category names.

    Which columns are categorical follows :meth:`Preprocessor.fit` (given, or inferred from the
    column types), so the clients and a centralised fit agree.
    """
    import numpy as np

    from airflow_mlops.training.networks import Preprocessor, _category_strings, _numeric_values

    local = Preprocessor.fit(frame, features, categorical)  # checks columns and types as training does
    numeric: dict[str, list[float]] = {}
    for name in local.numeric:
        values = _numeric_values(frame[name], name)
        finite = values[~np.isnan(values)]
        mean = float(finite.mean()) if finite.size else 0.0
        numeric[name] = [float(finite.size), mean, float(((finite - mean) ** 2).sum())]
    categories = {
        name: sorted({s for s in _category_strings(frame[name]) if s is not None})
        for name in local.categorical
    }
    return {"features": list(local.features), "numeric": numeric, "categorical": categories}


def merge_statistics(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The global :class:`Preprocessor` (as its dict) from the clients' :func:`feature_statistics`.

    :raises DataError: no part, or the clients disagree on the features or on a column's kind.
    """
    if not parts:
        raise DataError("no client sent its feature statistics")
    features = list(parts[0]["features"])
    numeric_names = set(parts[0]["numeric"])
    for part in parts[1:]:
        if list(part["features"]) != features or set(part["numeric"]) != numeric_names:
            raise DataError(
                "the clients' tables disagree on the features or on which are numeric "
                f"({features} / numeric {sorted(numeric_names)} vs {list(part['features'])} / numeric "
                f"{sorted(part['numeric'])}); give every SuperNode the same columns and types"
            )
    numeric: dict[str, dict[str, float]] = {}
    for name in sorted(numeric_names):
        count, mean, m2 = 0.0, 0.0, 0.0
        for part in parts:
            n_b, mean_b, m2_b = (float(v) for v in part["numeric"][name])
            if n_b == 0:
                continue
            total = count + n_b
            delta = mean_b - mean
            mean += delta * n_b / total
            m2 += m2_b + delta * delta * count * n_b / total
            count = total
        std = math.sqrt(m2 / count) if count else 1.0
        if not math.isfinite(std) or std < 1e-12:
            std = 1.0
        numeric[name] = {"mean": mean if count else 0.0, "std": std}
    categorical = {
        name: sorted(set().union(*(set(part["categorical"][name]) for part in parts)))
        for name in features
        if name not in numeric_names
    }
    return {"features": features, "numeric": numeric, "categorical": categorical}


def score_histograms(scores: Any, labels: Any, bins: int = HISTOGRAM_BINS) -> tuple[list[int], list[int]]:
    """Counts of the positive and of the negative rows' scores in ``bins`` equal bins of [0, 1]."""
    import numpy as np

    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(labels).astype(bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    positive = np.histogram(scores[labels], bins=edges)[0]
    negative = np.histogram(scores[~labels], bins=edges)[0]
    return [int(v) for v in positive], [int(v) for v in negative]


def threshold_from_histograms(
    positives: Iterable[Sequence[int]], negatives: Iterable[Sequence[int]], rule: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply the threshold ``rule`` to the clients' summed histograms (every row at its bin's lower
    edge, so a threshold chosen here classifies each bin as a whole)."""
    import numpy as np

    from airflow_mlops.training.threshold import choose_threshold

    pos = np.sum([np.asarray(h, dtype=np.int64) for h in positives], axis=0)
    neg = np.sum([np.asarray(h, dtype=np.int64) for h in negatives], axis=0)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise DataError("the clients' score histograms differ in size")
    lower = np.linspace(0.0, 1.0, len(pos) + 1)[:-1]
    scores = np.concatenate([np.repeat(lower, pos), np.repeat(lower, neg)])
    labels = np.concatenate(
        [np.ones(int(pos.sum()), dtype=np.int64), np.zeros(int(neg.sum()), dtype=np.int64)]
    )
    return choose_threshold(labels, scores, rule)


def app_files() -> list[Path]:
    """The files the app's hash covers: the app folder and this package's modules."""
    here = Path(__file__).resolve().parent
    return sorted([*APP_DIR.glob("*.toml"), *here.glob("*.py")])


def app_sha256(files: Sequence[Path] | None = None, *, root: Path | None = None) -> str:
    """sha256 over the app's files (each one's path relative to ``root`` and its content)."""
    paths = list(files) if files is not None else app_files()
    base = root or Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(base).as_posix()):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(base).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
