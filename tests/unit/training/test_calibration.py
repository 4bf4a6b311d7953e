"""Calibration fitted at training time (the monitor's performance estimation reads it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import ArtifactError
from airflow_mlops.training.calibration import (
    MAX_KNOTS,
    apply_calibration,
    check_calibration,
    fit_calibration,
    fit_error_model,
    predict_errors,
)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities ``p``, labels drawn from them, and a score that pushes p to the extremes."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    y = (rng.random(n) < p).astype(np.int64)
    logit = np.log(p / (1 - p))
    return y, 1 / (1 + np.exp(-3 * logit))


def test_an_overconfident_binary_model_is_calibrated_and_beats_its_raw_log_loss() -> None:
    y, score = _overconfident(4000, 0)
    cal = fit_calibration("binary", y, score, ["1"], seed=1)
    (one,) = cal["calibrators"]
    assert one["method"] in ("platt", "isotonic")
    assert one["log_loss"][one["method"]] < one["log_loss"]["identity"]
    y_new, score_new = _overconfident(4000, 2)
    calibrated = apply_calibration(cal, score_new)
    assert _log_loss(y_new, calibrated) < _log_loss(y_new, score_new) - 0.02
    # Calibrated: in each score decile, the mean probability is close to the share of positives.
    bins = np.quantile(calibrated, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, calibrated, side="right") - 1, 0, 9)
    for b in range(10):
        assert abs(calibrated[which == b].mean() - y_new[which == b].mean()) < 0.08


def test_a_calibrated_model_keeps_identity_or_a_near_identity_map() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 3000)
    y = (rng.random(3000) < p).astype(np.int64)
    cal = fit_calibration("binary", y, p, ["1"])
    assert np.abs(apply_calibration(cal, p) - p).mean() < 0.03


def test_platt_recovers_the_coefficients_of_a_logistic_distortion() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 0.3)))).astype(np.int64)
    cal = fit_calibration("binary", y, 1 / (1 + np.exp(-z)), ["1"])
    (one,) = cal["calibrators"]
    assert one["method"] == "platt"
    assert one["a"] == pytest.approx(0.5, abs=0.05) and one["b"] == pytest.approx(-0.3, abs=0.06)


def test_isotonic_is_monotone_bounded_and_small() -> None:
    rng = np.random.default_rng(5)
    score = rng.random(20000)
    y = (rng.random(20000) < np.where(score > 0.5, 0.9, 0.1)).astype(np.int64)  # a step: isotonic wins
    cal = fit_calibration("binary", y, score, ["1"])
    (one,) = cal["calibrators"]
    assert one["method"] == "isotonic"
    assert len(one["x"]) <= 2 * MAX_KNOTS
    assert np.all(np.diff(one["x"]) >= 0) and np.all(np.diff(one["y"]) >= 0)
    out = apply_calibration(cal, np.array([-1.0, 0.2, 0.8, 2.0]))
    assert out[1] == pytest.approx(0.1, abs=0.03) and out[2] == pytest.approx(0.9, abs=0.03)
    assert 0 < out[0] <= out[1] and out[2] <= out[3] < 1


def test_multiclass_one_vs_rest_renormalised_and_columns_read_by_label() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 1.5, (5000, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in true])
    sharp = np.exp(2.5 * logits) / np.exp(2.5 * logits).sum(axis=1, keepdims=True)
    cal = fit_calibration("multiclass", y, sharp, ["a", "b", "c"])
    proba = apply_calibration(cal, sharp)
    assert np.allclose(proba.sum(axis=1), 1)
    nll = lambda p: -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)))  # noqa: E731
    assert nll(proba) < nll(sharp) - 0.05
    # Columns given in another order are matched by label.
    swapped = apply_calibration(cal, sharp[:, [2, 0, 1]], classes=["c", "a", "b"])
    assert np.allclose(swapped, proba[:, [2, 0, 1]])
    with pytest.raises(ArtifactError, match="missing"):
        apply_calibration(cal, sharp, classes=["a", "b", "z"])


def test_too_few_rows_keep_identity_with_a_note() -> None:
    cal = fit_calibration("binary", np.array([0, 1] * 10), np.linspace(0.1, 0.9, 20), ["1"])
    assert cal["calibrators"][0]["method"] == "identity" and "too few" in cal["calibrators"][0]["note"]


def test_the_error_model_sees_errors_that_grow_away_from_the_centre() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 6000)
    other = rng.normal(0, 1, 6000)
    y = 2 * x + rng.normal(0, 0.2 + np.abs(x), 6000)
    frame = pd.DataFrame({"x": x, "other": other, "kind": rng.choice(["u", "v"], 6000)})
    pred = 2 * x
    cal = fit_error_model(y, pred, frame, ["x", "other", "kind"])
    assert cal["inputs"] == ["prediction", "x", "other"]  # categorical columns are not read
    check_calibration(json.loads(json.dumps(cal)))
    near = predict_errors(cal, np.zeros(1), pd.DataFrame({"x": [0.0], "other": [0.0]}))
    far = predict_errors(cal, np.full(1, 5.0), pd.DataFrame({"x": [2.5], "other": [0.0]}))
    assert far["abs"][0] > 3 * near["abs"][0]
    # The validation rows' own MAE is estimated back closely.
    assert predict_errors(cal, pred, frame)["abs"].mean() == pytest.approx(cal["validation"]["mae"], rel=0.05)
    with pytest.raises(ArtifactError, match="other"):
        predict_errors(cal, pred, frame[["x"]])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda c: c.update(format_version=9), "format_version"),
        (lambda c: c["calibrators"][0].update(method="pickle"), "method"),
        (lambda c: c["calibrators"][0].update(method="platt", a="1", b=0.0), "platt needs numbers"),
        (lambda c: c["calibrators"][0].update(method="isotonic", x=[0.0, 1.0], y=[0.9, 0.1]), "not decrease"),
        (lambda c: c.update(classes=["0", "1"]), "same length"),
    ],
)
def test_a_damaged_calibration_is_refused(damage, message: str) -> None:
    y, score = _overconfident(500, 8)
    cal = json.loads(json.dumps(fit_calibration("binary", y, score, ["1"])))
    damage(cal)
    with pytest.raises(ArtifactError, match=message):
        check_calibration(cal)


def test_the_trainer_stores_the_calibration_for_each_task(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    from airflow_mlops.training.flavors import load_predictor
    from airflow_mlops.training.trainer import train

    frame = make_frame(1500, 21)
    config = {**base_config, "model": "sklearn.linear_model.LogisticRegression", "params": {}}
    metrics = train(frame, config, tmp_path / "binary")
    predictor = load_predictor(tmp_path / "binary")
    cal = predictor.calibration
    assert cal is not None and cal["kind"] == "cbpe" and cal["classes"] == ["1"]
    assert cal["rows"] == metrics["validation_rows"]
    assert metrics["calibration"] == cal["calibrators"][0]["method"]

    multi = frame.assign(
        label=pd.cut(frame["age"], [-np.inf, 32, 48, np.inf], labels=["y", "m", "o"]).astype(str)
    )
    train(multi, {**config, "features": ["amount", "hour", "merchant", "age"]}, tmp_path / "multi")
    cal = load_predictor(tmp_path / "multi").calibration
    assert cal is not None and cal["task"] == "multiclass" and sorted(cal["classes"]) == ["m", "o", "y"]

    reg = frame.assign(label=frame["age"] * 2.0 + frame["amount"])
    config = {
        **base_config,
        "model": "sklearn.linear_model.Ridge",
        "params": {},
        "features": ["amount", "hour", "merchant"],
    }
    train(reg, config, tmp_path / "reg")
    cal = load_predictor(tmp_path / "reg").calibration
    assert cal is not None and cal["kind"] == "dle" and cal["inputs"][0] == "prediction"


def test_without_validation_rows_nothing_is_stored(tmp_path: Path, make_frame, base_config: dict) -> None:
    from airflow_mlops.training.flavors import load_predictor
    from airflow_mlops.training.trainer import train

    config = {
        **base_config,
        "model": "sklearn.linear_model.LogisticRegression",
        "params": {},
        "validation_fraction": 0,
        "threshold": 0.5,
    }
    metrics = train(make_frame(400, 22), config, tmp_path / "m")
    assert "calibration" not in metrics and load_predictor(tmp_path / "m").calibration is None


def test_a_fit_entrypoint_records_the_calibration_through_its_context(tmp_path: Path, make_frame) -> None:
    from sklearn.linear_model import LogisticRegression, Ridge

    from airflow_mlops.training.flavors import load_predictor
    from airflow_mlops.training.job import FitContext

    frame = make_frame(1200, 23)
    train_rows, val_rows = frame.iloc[:900], frame.iloc[900:]
    numeric = ["amount", "age"]

    def context(task: str, out: Path) -> FitContext:
        ctx = FitContext(
            target="label", features=numeric, positive_label=1, seed=0, device="cpu",
            params={}, options={}, output_dir=out, task=task,
        )  # fmt: skip
        out.mkdir()
        ctx.learn_classes(train_rows)
        return ctx

    # binary: choosing the threshold records the calibration too; save stores it.
    ctx = context("binary", tmp_path / "b")
    model = LogisticRegression().fit(ctx.x(train_rows), ctx.y(train_rows))
    ctx.choose_threshold(ctx.y(val_rows), model.predict_proba(ctx.x(val_rows))[:, 1])
    ctx.save(model)
    assert load_predictor(tmp_path / "b").calibration["classes"] == ["1"]

    # regression: ctx.calibrate with the rows' features.
    reg_rows = frame.assign(label=frame["age"] * 2.0)
    ctx = context("regression", tmp_path / "r")
    model = Ridge().fit(ctx.x(reg_rows.iloc[:900]), ctx.y(reg_rows.iloc[:900]))
    with pytest.raises(Exception, match="needs x"):
        ctx.calibrate(ctx.y(reg_rows.iloc[900:]), model.predict(ctx.x(reg_rows.iloc[900:])))
    ctx.calibrate(
        ctx.y(reg_rows.iloc[900:]), model.predict(ctx.x(reg_rows.iloc[900:])), ctx.x(reg_rows.iloc[900:])
    )
    ctx.save(model)
    assert load_predictor(tmp_path / "r").calibration["kind"] == "dle"


def test_a_multiclass_calibration_picks_one_method_for_every_class_by_the_confusion_matrix() -> None:
    rng = np.random.default_rng(10)
    logits = rng.normal(0, 1.5, (4000, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.minimum((rng.random((4000, 1)) > np.cumsum(true, axis=1)).sum(axis=1), 2)
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)  # overconfident
    cal = fit_calibration("multiclass", y, sharp, ["a", "b", "c"])
    methods = {c["method"] for c in cal["calibrators"]}
    assert len(methods) == 1 and methods != {"identity"}
    errors = cal["selection"]["errors"]
    assert errors[methods.pop()] == min(errors.values()) < errors["identity"]
    # The calibrated expected accuracy is close to the realised one; the raw one is not.
    predicted = sharp.argmax(axis=1)
    proba = apply_calibration(cal, sharp)
    realised = float(np.mean(predicted == y))
    assert abs(proba[np.arange(4000), predicted].mean() - realised) < 0.02
    assert sharp.max(axis=1).mean() - realised > 0.05


def test_a_calibration_recorded_after_save_still_reaches_the_model_config(tmp_path: Path, make_frame) -> None:
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops.training.flavors import CONFIG_FILE
    from airflow_mlops.training.job import FitContext, _record_calibration

    frame = make_frame(800, 24)
    ctx = FitContext(
        target="label", features=["amount", "age"], positive_label=1, seed=0, device="cpu",
        params={}, options={}, output_dir=tmp_path, task="binary",
    )  # fmt: skip
    ctx.learn_classes(frame)
    model = LogisticRegression().fit(ctx.x(frame.iloc[:600]), ctx.y(frame.iloc[:600]))
    ctx.save(model)
    assert "calibration" not in json.loads((tmp_path / CONFIG_FILE).read_text())
    ctx.calibrate(ctx.y(frame.iloc[600:]), model.predict_proba(ctx.x(frame.iloc[600:]))[:, 1])
    _record_calibration(ctx, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["calibration"]["classes"] == ["1"]
