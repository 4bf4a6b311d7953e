"""``training.watermark`` reaches the prepare step (the rows are derived there) and the evaluate
gate (the candidate must carry it); without it neither asks for a key."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec, load_spec_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def test_the_spec_key_reaches_prepare_and_the_gate() -> None:
    text = EXAMPLE.read_text()
    old = "  backend: local\n  model: mlp\n"
    assert old in text, "the example spec changed"
    new = old + "  watermark: {trigger_rows: 120, alpha: 1.0e-5, key_connection: wm_key}\n"
    spec = load_spec_text(text.replace(old, new), str(EXAMPLE), check_imports=False)
    train = build_dags(spec, spec_path=EXAMPLE)["fraud_detector__train"]
    watermark = train.get_task("training.prepare").watermark
    assert watermark["trigger_rows"] == 120 and watermark["alpha"] == 1e-5
    assert watermark["key_connection"] == "wm_key" and "key" not in watermark
    assert train.get_task("gates.evaluate").watermark_conn_id == "wm_key"


def test_without_it_nothing_asks_for_a_key() -> None:
    spec = load_spec(EXAMPLE)
    train = build_dags(spec, spec_path=EXAMPLE)["fraud_detector__train"]
    assert train.get_task("training.prepare").watermark is None
    assert train.get_task("gates.evaluate").watermark_conn_id is None
