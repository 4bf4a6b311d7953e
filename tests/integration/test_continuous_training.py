"""The continuous-training loop on a real Airflow: scheduler, triggerer, dag-processor, api-server.

The same loop as ``make demo`` (``scripts/demo_loop.py``): a champion is trained; a live window
without drift passes and starts nothing; a drifted window makes the monitor emit the drift asset
event, and the scheduler starts a training run on it that learns from that window. Then new data:
a batch dropped into the watched folder starts a training run on exactly that batch; the
triggerer is restarted, and a batch that landed while it was down is taken once, the first one
never again. The version the drift retrain registered names the drift event that caused it: in its
MLflow tags, its signed evaluation attestation, its ML-BOM and its Models-view row.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.demo_loop import AirflowAPI, run_loop, wait_for
from tests.integration.airflow_stack import COMPONENTS, airflow_stack
from tests.integration.conftest import MLflowServer
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder

pytestmark = pytest.mark.integration

PIPELINE = "fraud_detector"
TRAIN, MONITOR = f"{PIPELINE}__train", f"{PIPELINE}__monitor"
NEW_DATA = f"x-mlops://{PIPELINE}/new_data"


def _loop_spec(path: Path) -> None:
    """The example spec, edited: runs only on events and by hand (no time schedule), fast
    training, no retries, a fast new-data watcher."""
    spec = path.read_text()
    edits = {
        'time: "@daily"\n  events: [drift, new_data]': "events: [drift, new_data]",
        "retries: 1,": "retries: 0,",
        "epochs: 15,": "epochs: 3,",
        # After 3 epochs the validation rows sometimes hold no threshold with precision 0.8
        # (the rule then refuses the model) and the holdout precision is lower: this test is about
        # scheduling, not about the example's operating point.
        "threshold: {rule: min_precision, value: 0.8}": "threshold: {rule: best_f1}",
        ", precision: {min: 0.5}}": "}",
        "poll_interval: 10s": "poll_interval: 2s\n    settle: 1s",
        'schedule: "@daily"\n  reference: champion': "schedule: null\n  reference: champion",
    }
    for old, new in edits.items():
        assert old in spec, f"the example spec changed: {old!r} not found in {path}"
        spec = spec.replace(old, new)
    path.write_text(spec)


def _consumed_sources(api: AirflowAPI, run_id: str) -> str:
    ref = api.xcom(TRAIN, run_id, "data.validate", "data")
    return str(ref["metadata"]["source"])


def _fetch(url: str) -> bytes:
    """A page of the api-server (every user is an admin in this stack: no token needed)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def _assert_the_version_names_the_drift_event(
    client: Any, api: AirflowAPI, url: str, model: str, result: Any, public_key: bytes, tmp: Path
) -> None:
    """The retrained version's MLflow tags, signed attestation, ML-BOM and Models-view row all name
    the drift event that started its run."""
    from airflow_mlops.registry.mlflow_registry import EVALUATION_ATTESTATION, download_attestation
    from airflow_mlops.security.attestation import EVALUATION_PREDICATE, verify_envelope

    extra = result.drift_event["extra"]
    run_id = result.retrain_run["dag_run_id"]
    assert result.retrain_states["release.register"] == "success", result.retrain_states
    version = str(api.xcom(TRAIN, run_id, "release.register", "version"))
    mv = client.get_model_version(model, version)
    # MLflow version tags: the kind, a sentence, the reason as JSON.
    assert mv.tags["mlops.retrain.kind"] == "drift", mv.tags
    reason = json.loads(mv.tags["mlops.retrain.reason"])
    assert reason["kind"] == "drift" and reason["run_type"] == "asset_triggered"
    assert reason["event_count"] == 1 and reason["kinds"] == {"drift": 1}
    (event,) = reason["events"]
    assert event["asset"] == f"x-mlops://{PIPELINE}/drift"
    assert event["source"] == {
        "dag_id": MONITOR,
        "run_id": result.drift_monitor_run,
        "task_id": "monitor.emit_drift",
    }
    assert event["monitor_run"] == extra["source_run"] == f"{MONITOR}/{result.drift_monitor_run}"
    assert event["window"] == extra["window"]
    assert event["drifted_features"] == extra["drifted_features"][:10]
    assert set(event["statistics"]) == set(extra["drifted_features"][:10])  # with their tests
    assert all(s["tests"] for s in event["statistics"].values()), event["statistics"]
    first = extra["drifted_features"][0]
    assert mv.tags["mlops.retrain.summary"].startswith(("feature ", "features ")), mv.tags
    assert (
        first in mv.tags["mlops.retrain.summary"] and extra["source_run"] in mv.tags["mlops.retrain.summary"]
    )
    # The training run says so too.
    assert client.get_run(mv.run_id).data.tags["mlops.retrain.kind"] == "drift"
    # The signed evaluation attestation carries the same reason, under the signature.
    path = download_attestation(client, mv, EVALUATION_ATTESTATION, tmp / "attestation")
    assert path is not None
    attested = verify_envelope(
        path.read_bytes(),
        public_key,
        model_sha256=mv.tags["mlops.model_sha256"],
        predicate_type=EVALUATION_PREDICATE,
    ).predicate["retrain_reason"]
    assert attested["kind"] == "drift" and attested["events"][0]["monitor_run"] == extra["source_run"]
    assert attested["summary"] == mv.tags["mlops.retrain.summary"]
    # The ML-BOM (as the Models view serves it): a formulation whose trigger is the drift event.
    bom = json.loads(_fetch(f"{url}/mlops/models/{model}/versions/{version}/mlbom.cdx.json"))
    trigger = bom["formulation"][0]["workflows"][0]["trigger"]
    assert trigger["type"] == "api" and trigger["uid"] == f"x-mlops://{PIPELINE}/drift"
    assert trigger["description"] == attested["summary"]
    assert json.loads(trigger["event"]["data"]["content"])["events"][0]["window"] == extra["window"]
    props = {p["name"]: p["value"] for p in bom["components"][0]["properties"]}
    assert props["airflow-mlops:retrain:kind"] == "drift"
    # The Models view's row (served by the api-server) says it, from the verified attestation.
    page = _fetch(f"{url}/mlops/models/").decode()
    row = re.search(rf'<tr class="version" id="version-{re.escape(model)}-{version}".*?</tr>', page, re.S)
    assert row is not None, page[:3000]
    cell = re.search(r'<td class="retrain">(.*?)</td>', row.group(0), re.S)
    assert cell is not None, row.group(0)
    assert 'data-retrain-kind="drift" title="attested"' in cell.group(1), cell.group(1)
    assert html.escape(f"retrained because {attested['summary']}", quote=False) in cell.group(1), cell.group(
        1
    )


def _assert_the_run_names_the_batch(client: Any, api: AirflowAPI, run_id: str, batch: Path) -> None:
    """The training run a new-data batch started says, in its MLflow tags, which batch landed."""
    (event,) = [e for e in api.asset_events(NEW_DATA) if str(batch) in json.dumps(e["extra"])]
    payload = event["extra"].get("payload", event["extra"])
    mlflow_run = api.xcom(TRAIN, run_id, "training.package", "mlflow_run_id")
    tags = client.get_run(mlflow_run).data.tags
    assert tags["mlops.retrain.kind"] == "new_data", tags
    reason = json.loads(tags["mlops.retrain.reason"])
    (recorded,) = reason["events"]
    assert recorded["batch_id"] == payload["batch_id"] and recorded["objects"] == [str(batch)]
    assert recorded["object_count"] == 1 and recorded["bytes"] == batch.stat().st_size
    assert tags["mlops.retrain.summary"].startswith(f"batch {payload['batch_id'][:16]} landed (1 file(s)")


def _new_runs(api: AirflowAPI, known: set[str]) -> list[dict[str, Any]]:
    return [r for r in api.runs(TRAIN) if r["dag_run_id"] not in known]


def test_drift_and_new_data_start_training_runs(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from mlflow import MlflowClient

    data = tmp_path / "data"
    shutil.copytree(example_data, data)  # this test lands files in it
    (data / "incoming").mkdir()
    model = f"fraud-detector-loop-{secrets.token_hex(4)}"
    dags = make_dags_folder(tmp_path, data, model)
    _loop_spec(dags / "specs" / "fraud_detector.yaml")
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    client = MlflowClient(tracking_uri=fresh_mlflow_server.url)

    with airflow_stack(tmp_path, env, components=(*COMPONENTS, "triggerer")) as stack:
        api = AirflowAPI(stack.url)  # all users are admins in this stack: no token needed
        wait_for("the api-server", 180, lambda: api.get("monitor/health"), check=stack.check_alive)

        # --- drift ------------------------------------------------------------------------------
        result = run_loop(
            api,
            pipeline=PIPELINE,
            data_dir=data,
            first_training="manual",
            today=dt.date(2026, 1, 5),
            check=stack.check_alive,
        )
        assert result.no_drift_states["monitor.detect"] == "success", result.no_drift_states
        assert result.no_drift_states["monitor.emit_drift"] == "skipped", result.no_drift_states
        assert result.drift_states["monitor.emit_drift"] == "success", result.drift_states
        assert result.drift_reasons, "the drift event must say why"

        # The event says why, names the report and the (labelled) window it was found in ...
        extra = result.drift_event["extra"]
        assert extra["reasons"] == result.drift_reasons
        assert extra["drifted_features"], extra
        assert Path(extra["html_report"]).is_file() and Path(extra["report"]).is_file()
        report = json.loads(Path(extra["report"]).read_text())
        assert report["drifted"] is True and report["quality_failed"] is False
        assert "<svg" in Path(extra["html_report"]).read_text()
        # ... and the run it started trained on exactly that window, verified by its sha256.
        retrain = result.retrain_run
        assert retrain["run_type"] == "asset_triggered", retrain
        assert _consumed_sources(api, retrain["dag_run_id"]) == extra["window"]
        assert result.retrain_states["data.validate"] == "success", result.retrain_states
        assert result.retrain_states["training.package"] == "success", result.retrain_states
        promoted = result.retrain_states["release.promote"] == "success"
        champion = client.get_model_version_by_alias(model, "champion")
        assert champion.version == ("2" if promoted else "1"), (promoted, result.retrain_states)
        _assert_the_version_names_the_drift_event(
            client, api, stack.url, model, result, signing_keys[1], tmp_path
        )

        # The monitor ran against the champion and logged its reports to MLflow.
        monitor_runs = client.search_runs(
            [client.get_experiment_by_name(PIPELINE).experiment_id],
            filter_string="tags.`mlops.kind` = 'monitor'",
        )
        assert len(monitor_runs) == 2
        artifacts = {a.path for a in client.list_artifacts(monitor_runs[0].info.run_id, "drift")}
        assert {"drift/drift_report.json", "drift/drift_report.html", "drift/figures"} <= artifacts
        # The batch predictions of each window are stored (the batch-inference pattern).
        assert len(list((tmp_path / "artifacts").rglob("predictions.parquet"))) == 2

        # --- new data ---------------------------------------------------------------------------
        known = {r["dag_run_id"] for r in api.runs(TRAIN)}
        first = data / "incoming" / "2026-01-06" / "batch.parquet"
        first.parent.mkdir()
        shutil.copy(data / "train" / "2026-01-02" / "batch.parquet", first)
        run = wait_for(
            "a training run on the new batch", 120, lambda: _new_runs(api, known), check=stack.check_alive
        )
        assert len(run) == 1 and run[0]["run_type"] == "asset_triggered", run
        wait_for(
            "that run to finish",
            900,
            lambda: api.run(TRAIN, run[0]["dag_run_id"])["state"] in ("success", "failed"),
            check=stack.check_alive,
        )
        assert _consumed_sources(api, run[0]["dag_run_id"]) == str(first)
        _assert_the_run_names_the_batch(client, api, run[0]["dag_run_id"], first)
        assert len(api.asset_events(NEW_DATA)) == 1

        # The triggerer goes down; a batch lands meanwhile; after the restart it is taken once,
        # and the first batch is not taken again.
        known |= {run[0]["dag_run_id"]}
        stack.stop_component("triggerer")
        second = data / "incoming" / "2026-01-07" / "batch.parquet"
        second.parent.mkdir()
        shutil.copy(data / "train" / "2026-01-03" / "batch.parquet", second)
        time.sleep(3)
        assert _new_runs(api, known) == [], "nothing may start while the triggerer is down"
        stack.start("triggerer")
        run = wait_for(
            "a training run on the batch that landed while the triggerer was down",
            180,
            lambda: _new_runs(api, known),
            check=stack.check_alive,
        )
        wait_for(
            "that run to finish",
            900,
            lambda: api.run(TRAIN, run[0]["dag_run_id"])["state"] in ("success", "failed"),
            check=stack.check_alive,
        )
        assert _consumed_sources(api, run[0]["dag_run_id"]) == str(second)
        time.sleep(10)  # five poll intervals: a repeated batch would show by now
        events = api.asset_events(NEW_DATA)
        assert len(events) == 2, [e["extra"] for e in events]
        assert len(_new_runs(api, known)) == 1
