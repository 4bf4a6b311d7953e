"""The ClientApp in the Flower environment: its handlers answer with this node's rows only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.training.job import TrainingJob, write_job
from airflow_mlops.training.prepare import trainer_config

FEATURES = ["amount", "age", "hour", "merchant"]


def make_job(tmp_path: Path, frame: Any) -> Any:
    store = ArtifactStore(str(tmp_path / "store"))
    frame.to_parquet(tmp_path / "t.parquet")
    ref = store.put_file(tmp_path / "t.parquet", "p/r/train/train.parquet")
    config = trainer_config(
        model="mlp", target="label", features=FEATURES, positive_label=1, task=None,
        hyperparameters={"epochs": 1, "batch_size": 64, "hidden_units": [8]}, seed=5, device="cpu",
        threshold={"rule": "best_f1"}, validation_fraction=0.2, early_stopping_patience=None,
        precision="auto", privacy=None,
    )  # fmt: skip
    job = TrainingJob(store_root=store.root, train=ref, model="mlp", config=config, output_key="p/r/train/w")
    return write_job(store, "p/r/train/job.json", job)


def test_the_client_handlers(tmp_path: Path, make_frame: Any, in_flower: Any) -> None:
    ref = make_job(tmp_path, make_frame(300, 7))
    code = f"""
import json
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from airflow_mlops.training.federated import client_app, local
from airflow_mlops.training.networks import Preprocessor
from flwr.supercore.task_identity import TaskIdentity

TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0  # what a ClientApp process sets

class Ctx:  # the two fields the handlers read
    node_config = {{"partition-id": 1, "num-partitions": 3}}
base = {{"job-uri": {ref.uri!r}, "job-sha256": {ref.sha256!r}, "job-size": {ref.size}, "data": "partitions",
         "partitions": 3}}
msg = Message(RecordDict({{"config": ConfigRecord({{**base, "action": "statistics"}})}}), dst_node_id=1,
              message_type=MessageType.QUERY)
reply = client_app.query(msg, Ctx())
stats = json.loads(reply.content["reply"]["statistics"])
summary = json.loads(reply.content["reply"]["summary"])
pre = Preprocessor.from_dict({{**stats, "numeric": {{k: {{"mean": v[1], "std": 1.0}} for k, v in stats["numeric"].items()}}}})
model = local.build_model({{"model": "mlp", "target": "label", "seed": 5, "params": {{"hidden_units": [8]}}}}, pre.output_dim)
config = {{**base, "preprocessor": json.dumps(pre.to_dict()), "pos-weight": 3.0, "proximal-mu": 0.0}}
content = RecordDict({{"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord(config)}})
train = client_app.train(Message(content, dst_node_id=1, message_type=MessageType.TRAIN), Ctx())
hist = client_app.query(Message(RecordDict({{"arrays": ArrayRecord(model.state_dict()),
    "config": ConfigRecord({{**config, "action": "histogram"}})}}), dst_node_id=1, message_type=MessageType.QUERY), Ctx())
print(json.dumps({{"app": isinstance(client_app.app, ClientApp), "summary": summary,
    "numeric": sorted(stats["numeric"]), "categorical": sorted(stats["categorical"]),
    "train": dict(train.content["metrics"]), "keys": list(train.content["arrays"].keys()) == list(model.state_dict()),
    "hist": sum(json.loads(hist.content["reply"]["positive"])) + sum(json.loads(hist.content["reply"]["negative"]))}}))
"""
    proc = in_flower(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["app"] is True
    assert got["summary"]["rows"] == 100  # partition 1 of 3 of 300 rows
    assert got["numeric"] == ["age", "amount", "hour"] and got["categorical"] == ["merchant"]
    assert got["train"]["num-examples"] == got["summary"]["train_rows"] == 80
    assert got["train"]["train_loss"] > 0 and got["keys"] is True
    assert got["hist"] == 20  # every validation row of this partition, and no other
