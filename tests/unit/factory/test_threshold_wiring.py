"""The spec's threshold rule reaches the trainer's job; the gates and the monitor get the fallback."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec, load_spec_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def test_the_example_rule_reaches_the_trainer_and_the_gates_fall_back_to_one_half() -> None:
    spec = load_spec(EXAMPLE)
    dags = build_dags(spec, spec_path=EXAMPLE)
    train = dags["fraud_detector__train"]
    prepare = train.get_task("training.prepare")
    config = prepare.trainer_config(["amount"])
    assert config["threshold"] == spec.evaluation.threshold.as_config()
    assert config["threshold"]["rule"] != "fixed"
    assert config["validation_fraction"] == spec.training.validation_fraction
    # A rule that is not fixed: each model's stored threshold decides, 0.5 only for old models.
    assert train.get_task("gates.evaluate").threshold == 0.5
    assert dags["fraud_detector__monitor"].get_task("monitor.score").threshold == 0.5


def test_a_fixed_threshold_is_the_trainer_rule_and_the_fallback() -> None:
    text = EXAMPLE.read_text()
    old = "  threshold: {rule: min_precision, value: 0.8}\n"
    assert old in text, "the example spec changed"
    spec = load_spec_text(text.replace(old, "  threshold: 0.35\n"), str(EXAMPLE), check_imports=False)
    dags = build_dags(spec, spec_path=EXAMPLE)
    train = dags["fraud_detector__train"]
    prepare = train.get_task("training.prepare")
    assert prepare.trainer_config(["amount"])["threshold"] == {"rule": "fixed", "value": 0.35}
    assert train.get_task("gates.evaluate").threshold == 0.35
    assert dags["fraud_detector__monitor"].get_task("monitor.score").threshold == 0.35
