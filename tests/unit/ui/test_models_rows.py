"""The Models view's data layer against a local MLflow store (SQLite + local artifacts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.ui import rows
from tests.unit.ui.models_registry import GATES, MODEL, PIPELINE, log_monitor_run, register


def _model(views: list[rows.ModelView], name: str = MODEL) -> rows.ModelView:
    (view,) = [v for v in views if v.name == name]
    return view


def _row(view: rows.ModelView, version: str) -> rows.VersionRow:
    (row,) = [r for r in view.versions if r.version == version]
    return row


def test_the_champion_row_shows_alias_metrics_attested_gates_and_verified_signature(
    client: Any, registry: dict[str, Any], keys: tuple[bytes, bytes]
) -> None:
    view = _model(rows.collect_models(client, public_key_pem=keys[1]))
    assert view.pipeline == PIPELINE and view.aliases == {"champion": registry["v1"]}
    assert [r.version for r in view.versions] == [registry["v2"], registry["v1"]]  # newest first
    champion = _row(view, registry["v1"])
    assert champion.aliases == ("champion",)
    assert champion.metrics == pytest.approx(registry["metrics"])
    assert champion.gates_source == "attested" and champion.gates_passed is True
    assert [(g.name, g.value, g.threshold, g.passed) for g in champion.gates] == [
        (g["name"], g["value"], g["threshold"], g["passed"]) for g in GATES
    ]
    assert (champion.signature.state, champion.signature.label) == (rows.OK, "verified")
    assert (champion.scan.state, champion.scan.label) == (rows.OK, "clean")
    assert champion.has_mlbom
    other = _row(view, registry["v2"])
    assert other.aliases == () and other.metrics == {} and not other.has_mlbom
    assert other.signature.state == rows.UNCHECKED  # only aliased versions are checked by default
    assert other.gates_source == "attested"
    assert not view.errors


def test_verify_all_checks_every_listed_version(client: Any, registry: dict[str, Any], keys) -> None:
    view = _model(rows.collect_models(client, public_key_pem=keys[1], verify="all"))
    assert {r.version: r.signature.label for r in view.versions} == {
        registry["v1"]: "verified",
        registry["v2"]: "verified",
    }


def test_lock_models_and_models_no_pipeline_registered_are_hidden(
    client: Any, registry: dict[str, Any], keys
) -> None:
    from airflow_mlops.registry.mlflow_registry import TAG_PIPELINE
    from airflow_mlops.registry.promotion import lock_name

    client.create_registered_model(lock_name(MODEL, "champion"), tags={TAG_PIPELINE: PIPELINE})
    client.create_registered_model("hand-made")  # no pipeline tag
    names = [v.name for v in rows.collect_models(client, public_key_pem=keys[1], verify="none")]
    assert names == [MODEL]


def test_include_hides_the_pipelines_the_user_may_not_read(client: Any, registry, keys) -> None:
    asked: list[str] = []

    def include(pipeline: str) -> bool:
        asked.append(pipeline)
        return False

    assert rows.collect_models(client, public_key_pem=keys[1], include=include) == []
    assert asked == [PIPELINE]


def _stored_model_file(client: Any, model: str, version: str) -> Path:
    from urllib.parse import urlparse

    mv = client.get_model_version(model, version)
    root = client.get_run(mv.run_id).info.artifact_uri
    path = Path(urlparse(root).path if root.startswith("file:") else root) / "model" / "weights"
    return path / "model_config.json"


def test_a_tampered_artifact_shows_signature_failed_and_is_not_scanned(
    client: Any, registry: dict[str, Any], keys
) -> None:
    stored = _stored_model_file(client, MODEL, registry["v1"])
    stored.write_text(json.dumps({"tag": "swapped"}))
    champion = _row(_model(rows.collect_models(client, public_key_pem=keys[1])), registry["v1"])
    assert (champion.signature.state, champion.signature.label) == (rows.FAILED, "FAILED")
    assert "model_config.json" in champion.signature.detail
    assert champion.scan.state == rows.UNCHECKED


def test_the_check_cache_expires_and_a_recheck_sees_tampering(client: Any, registry, keys) -> None:
    cache = rows.CheckCache(ttl=3600)
    first = rows.check_version(client, MODEL, registry["v1"], keys[1], cache=cache)
    assert first[0].ok
    _stored_model_file(client, MODEL, registry["v1"]).write_text("{}")
    assert rows.check_version(client, MODEL, registry["v1"], keys[1], cache=cache) == first  # cached
    cache.ttl = 0
    cache.put(rows._cache_key(client.get_model_version(MODEL, registry["v1"]), keys[1]), first)
    again = rows.check_version(client, MODEL, registry["v1"], keys[1], cache=cache)
    assert again[0].state == rows.FAILED


def test_an_attestation_signed_with_another_key_reads_as_failed_gates(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.security.signing import generate_key_pair

    other_private, _ = generate_key_pair()
    version = register(client, tmp_path, keys[0], model=MODEL, tag="ui/forged", attest_key=other_private)
    row = _row(_model(rows.collect_models(client, public_key_pem=keys[1], verify="all")), version)
    assert row.gates_passed is False and row.gates == ()
    assert (
        row.gates_source.startswith("attestation FAILED") and "not signed by the trusted" in row.gates_source
    )
    assert row.signature.label == "verified"  # the model itself is signed with the right key


def test_without_a_key_nothing_reads_as_verified(client: Any, registry: dict[str, Any]) -> None:
    champion = _row(_model(rows.collect_models(client, public_key_pem=None)), registry["v1"])
    assert champion.signature.state == rows.ERROR and champion.signature.label == "not verified"
    assert "no public key" in champion.signature.detail
    assert champion.scan.state == rows.UNCHECKED
    assert champion.gates_passed is True and champion.gates_source.startswith("tag (not verified")


def test_a_version_without_attestation_shows_its_tag_unverified(client: Any, tmp_path: Path, keys) -> None:
    version = register(client, tmp_path, keys[0], model=MODEL, tag="ui/old", attest=False, passed=False)
    row = _row(_model(rows.collect_models(client, public_key_pem=keys[1], verify="none")), version)
    assert row.gates_passed is False and row.gates_source == "tag (not verified: no attestation)"


def test_the_last_drift_result_is_the_newest_finished_monitor_run(client: Any, registry, keys) -> None:
    log_monitor_run(
        client,
        experiment=PIPELINE,
        pipeline=PIPELINE,
        model=MODEL,
        version=registry["v1"],
        drifted=False,
        share=0.0,
    )
    newest = log_monitor_run(
        client,
        experiment=PIPELINE,
        pipeline=PIPELINE,
        model=MODEL,
        version=registry["v1"],
        drifted=True,
        share=0.4,
    )
    log_monitor_run(  # another model's monitor run in the same experiment
        client, experiment=PIPELINE, pipeline=PIPELINE, model="other", version="9", drifted=False, share=0.0
    )
    drift = _model(rows.collect_models(client, public_key_pem=keys[1], verify="none")).drift
    assert drift is not None
    assert (drift.run_id, drift.verdict, drift.drift_share, drift.model_version) == (
        newest,
        "drift",
        pytest.approx(0.4),
        registry["v1"],
    )
    assert drift.has_html and drift.drifted_features == 2


def test_no_monitor_run_means_no_drift_result(client: Any, registry, keys) -> None:
    assert _model(rows.collect_models(client, public_key_pem=keys[1], verify="none")).drift is None


def test_verify_must_be_a_known_mode(client: Any) -> None:
    with pytest.raises(ValueError, match="verify must be"):
        rows.collect_models(client, verify="some")


def _drift_reason(feature: str = "amount") -> dict[str, Any]:
    import datetime as dt
    from types import SimpleNamespace

    from airflow_mlops.retrain.reason import retrain_reason

    event = SimpleNamespace(
        asset=SimpleNamespace(uri=f"x-mlops://{PIPELINE}/drift"),
        extra={"drifted_features": [feature], "source_run": "ui-pipeline__monitor/scheduled__2026-01-05"},
        timestamp=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    )
    return retrain_reason({"drift": [event]}, "asset_triggered")


def test_the_row_says_why_the_version_was_trained_from_the_verified_attestation(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.retrain.reason import retrain_reason

    drift = register(client, tmp_path, keys[0], model=MODEL, tag="ui/drift", retrain_reason=_drift_reason())
    # The tag claims another feature; the signed attestation is what the row believes.
    lying = register(
        client, tmp_path, keys[0], model=MODEL, tag="ui/lying", retrain_reason=_drift_reason(),
        tagged_reason=_drift_reason("income"),
    )  # fmt: skip
    tag_only = register(
        client, tmp_path, keys[0], model=MODEL, tag="ui/tag", attest=False,
        retrain_reason=retrain_reason({}, "scheduled"),
    )  # fmt: skip
    none = register(client, tmp_path, keys[0], model=MODEL, tag="ui/none")
    view = _model(rows.collect_models(client, public_key_pem=keys[1], verify="none"))
    row = _row(view, drift).retrain
    assert row is not None and (row.kind, row.source) == ("drift", "attested")
    assert row.label == (
        "retrained because feature amount drifted in window ui-pipeline__monitor/scheduled__2026-01-05"
    )
    lied = _row(view, lying).retrain
    assert lied is not None and "amount" in lied.summary and lied.source == "attested"
    scheduled = _row(view, tag_only).retrain
    assert scheduled is not None and scheduled.label == "scheduled run"
    assert scheduled.source == "tag (not verified)"
    assert _row(view, none).retrain is None
    # Without a key nothing is verified: the tag is shown, and said to be unverified.
    unverified = _row(_model(rows.collect_models(client, public_key_pem=None, verify="none")), drift).retrain
    assert unverified is not None and unverified.source == "tag (not verified)" and unverified.kind == "drift"


def test_retrain_of_reads_odd_tags_defensively() -> None:
    assert rows.retrain_of({}, None, "attested") is None
    odd = rows.retrain_of({"mlops.retrain.kind": "manual", "mlops.retrain.reason": "{bad"}, None, "none")
    assert odd is not None and (odd.kind, odd.label) == ("manual", "manual run")
    batch = rows.retrain_of({}, {"kind": "new_data", "summary": "batch 12ab landed"}, "attested")
    assert batch is not None and batch.label == "retrained because batch 12ab landed"
    # A reason in an attestation that did not verify is not used.
    assert rows.retrain_of({}, {"kind": "drift", "summary": "x"}, "attestation FAILED: bad") is None
