"""The label-issue check's computations (``airflow_mlops/data/poisoning/label_issues.py``), done
again by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from airflow_mlops.data.generate import TARGET


def test_confident_learning_thresholds_match_an_independent_computation(poisoned_result, poisoned):
    """Per-class threshold = mean self-confidence (as in confident learning), computed again here."""
    from airflow_mlops.data.poisoning import label_issues

    y = poisoned[TARGET].to_numpy()
    proba = np.column_stack([1 - y * 0.7, y * 0.7 + 0.0]).astype(float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    thresholds = label_issues._mean_self_confidence(proba, y, 2)
    expected = [proba[y == j, j].mean() for j in (0, 1)]
    assert np.allclose(thresholds, expected)
    # A row labelled 1 whose probabilities point to 0 (p_0 = 0.99 >= t_0 = 0.9) is suggested 0.
    test = np.array([[0.9, 0.1], [0.99, 0.01], [0.2, 0.8]])
    t = label_issues._mean_self_confidence(test, np.array([0, 1, 1]), 2)
    s, sug = label_issues._confident_scores(test, np.array([0, 1, 1]), np.array([0.5, 0.5]), t)
    assert t.tolist() == pytest.approx([0.9, 0.405])
    assert sug.tolist() == [0, 0, 1]
    assert s[1] == pytest.approx(np.log(0.01) - np.log(0.99)) and s[0] > 0 and s[2] > 0


def test_label_cut_is_benjamini_hochberg_per_class_on_conformal_p_values():
    """Per class: the batch's p-values against the reference's scores of that class, BH at the
    FDR level among the rows whose label is not the most likely (or the per-row level, when
    higher); the cut sits just above the highest discovery. Computed again here."""
    from airflow_mlops.data.poisoning import label_issues, stats

    rng = np.random.default_rng(3)
    ref_y = np.repeat([0, 1], [3000, 300])
    ref_score = rng.normal(2.0, 1.5, len(ref_y))
    y = np.repeat([0, 1], [2000, 400])
    score = rng.normal(2.0, 1.5, len(y))
    flipped = rng.choice(np.flatnonzero(y == 1), size=120, replace=False)  # 30 % of class 1
    score[flipped] = rng.normal(-6.0, 1.0, len(flipped))
    model = label_issues.LabelModel(
        "ran", [0, 1], y, np.zeros((len(y), 2)), np.array([0.9, 0.1]), np.zeros(2), score,
        np.full(len(y), -1), source="reference", ref_y=ref_y, ref_score=ref_score,
    )  # fmt: skip
    cal = label_issues.calibrate_label_cut(model)
    assert cal is not None
    for j in (0, 1):
        own = score[y == j]
        p = np.where(own < 0, stats.conformal_p_values(np.sort(ref_score[ref_y == j]), own), np.inf)
        t = max(stats.bh_threshold(p, stats.FDR_LEVEL), stats.ROW_LEVEL)
        found = own[p <= t]
        if len(found):
            assert found.max() < cal["cuts"][j] <= np.nextafter(found.max(), np.inf)
        else:
            assert cal["cuts"][j] == -np.inf
    mask, detail = model.issues(cal)
    hits = np.flatnonzero(mask)
    assert len(set(hits) & set(flipped)) >= 0.9 * len(flipped)
    assert len(set(hits) - set(flipped)) <= 0.1 * len(hits)
    json.dumps(detail, allow_nan=False)  # no infinities in what is stored
