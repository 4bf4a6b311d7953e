"""Partitions, pooled feature statistics, histogram thresholds and the app's hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError, TrainingRejectedError
from airflow_mlops.training.federated import common
from airflow_mlops.training.networks import Preprocessor
from airflow_mlops.training.threshold import choose_threshold


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "amount": amount,
            "hour": rng.integers(0, 24, n).astype(float),
            "country": rng.choice(["DE", "FR", "US"], n),
            "label": (rng.random(n) < 0.1).astype(int),
        }
    )


def test_partitions_cover_every_row_once_and_are_seeded() -> None:
    parts = [common.partition_indices(100, i, 3, seed=7) for i in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert [len(p) for p in parts] == [34, 33, 33]
    assert np.array_equal(parts[1], common.partition_indices(100, 1, 3, seed=7))
    assert not np.array_equal(parts[1], common.partition_indices(100, 1, 3, seed=8))


@pytest.mark.parametrize(("pid", "parts"), [(3, 3), (-1, 3), (0, 0)])
def test_a_partition_outside_the_count_is_refused(pid: int, parts: int) -> None:
    with pytest.raises(TrainingRejectedError, match="partition-id"):
        common.partition_indices(10, pid, parts, seed=1)


def test_merged_statistics_equal_a_fit_on_the_pooled_rows() -> None:
    whole = frame(900, seed=3)
    features = ["amount", "hour", "country"]
    # unequal parts, and one part without a category the others have
    parts = [whole.iloc[:100], whole.iloc[100:550], whole.iloc[550:]]
    parts[0] = parts[0][parts[0]["country"] != "US"]
    pooled = pd.concat(parts)
    merged = Preprocessor.from_dict(
        common.merge_statistics([common.feature_statistics(p, features, None) for p in parts])
    )
    central = Preprocessor.fit(pooled, features)
    assert merged.categorical == central.categorical
    for name, (mean, std) in central.numeric.items():
        assert merged.numeric[name] == pytest.approx((mean, std), rel=1e-9)
    assert np.allclose(merged.transform(pooled), central.transform(pooled), atol=1e-5)


def test_clients_that_disagree_on_a_columns_kind_are_refused() -> None:
    a = frame(50, seed=1)
    b = a.assign(hour=a["hour"].astype(int).astype(str) + "h")  # text: categorical here
    stats = [common.feature_statistics(x, ["amount", "hour"], None) for x in (a, b)]
    with pytest.raises(DataError, match="disagree"):
        common.merge_statistics(stats)
    with pytest.raises(DataError, match="no client"):
        common.merge_statistics([])


def test_histogram_threshold_is_the_rule_applied_to_binned_scores() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.2).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0, 1)
    halves = [slice(0, 1200), slice(1200, 3000)]
    hists = [common.score_histograms(scores[h], labels[h]) for h in halves]
    rule = {"rule": "min_precision", "value": 0.8}
    chosen = common.threshold_from_histograms([h[0] for h in hists], [h[1] for h in hists], rule)
    binned = (
        np.floor(scores * common.HISTOGRAM_BINS).clip(max=common.HISTOGRAM_BINS - 1) / common.HISTOGRAM_BINS
    )
    assert chosen["value"] == pytest.approx(choose_threshold(labels, binned, rule)["value"])
    exact = choose_threshold(labels, scores, rule)["value"]
    assert abs(chosen["value"] - exact) <= 2.0 / common.HISTOGRAM_BINS
    assert sum(map(sum, (hists[0][0], hists[1][0]))) == labels.sum()


def test_app_hash_covers_the_app_files_and_changes_with_any(tmp_path: Path) -> None:
    files = common.app_files()
    names = {f.name for f in files}
    assert {"pyproject.toml", "server_app.py", "client_app.py", "common.py"} <= names
    assert common.app_sha256() == common.app_sha256(files)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.toml").write_text("y = 2\n")
    before = common.app_sha256([tmp_path / "a.py", tmp_path / "b.toml"], root=tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert common.app_sha256([tmp_path / "a.py", tmp_path / "b.toml"], root=tmp_path) != before
