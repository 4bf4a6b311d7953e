"""The Flower ClientApp of ``training.backend: federated`` (runs inside a SuperNode).

It answers four kinds of message, each about this node's own rows only (:mod:`.local`):

- query ``statistics``: per-feature counts, means, variances and category names, label counts;
- train: ``params.epochs`` local epochs from the global weights (FedProx: with the proximal
  term); replies the new weights, ``num-examples`` and the loss. With DP on client updates the
  server's configuration carries a clipping norm and Flower's ``fixedclipping_mod`` clips the
  update before it leaves the node;
- evaluate: the global model's loss on this node's validation rows;
- query ``histogram``: the histogram of the global model's scores on its validation rows.

Imports ``flwr``: loaded only by a SuperNode's ClientApp process, never by Airflow.
"""

from __future__ import annotations

import json
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from airflow_mlops.training.federated import common, local
from airflow_mlops.training.networks import Preprocessor

app = ClientApp()


def _rows(config: Any, context: Context) -> tuple[dict[str, Any], Any, local.ClientRows]:
    job = local.read_job(str(config["job-uri"]), str(config["job-sha256"]), int(config["job-size"]))
    table, salt = local.client_table(
        job, dict(context.node_config), str(config["data"]), int(config.get("partitions", 0))
    )
    trainer = {**job.config, "model": job.model}
    return trainer, table, local.split_rows(table, trainer, salt)


def _model(message: Message, config: Any, trainer: dict[str, Any]) -> tuple[Any, Preprocessor]:
    preprocessor = Preprocessor.from_dict(json.loads(str(config["preprocessor"])))
    model = local.build_model(trainer, preprocessor.output_dim)
    model.load_state_dict(message.content["arrays"].to_torch_state_dict())
    return model, preprocessor


def _clip_when_private(message: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` where the server asks for clipping (DP runs), else nothing."""
    config = message.content.config_records.get("config")
    if config is not None and "clipping_norm" in config:
        return fixedclipping_mod(message, context, call_next)
    return call_next(message, context)


@app.query()
def query(message: Message, context: Context) -> Message:
    """``statistics`` or ``histogram`` (see the module docstring)."""
    config = message.content["config"]
    trainer, table, rows = _rows(config, context)
    if config["action"] == "statistics":
        features = local.features_of(trainer, table)
        stats = common.feature_statistics(rows.train, features, trainer.get("categorical"))
        reply = {
            "statistics": json.dumps(stats),
            "summary": json.dumps(local.label_summary(rows, table, trainer)),
        }
    else:
        model, preprocessor = _model(message, config, trainer)
        scores, _ = local.scores_and_loss(
            model,
            preprocessor.transform(rows.validation),
            rows.y_validation,
            pos_weight=float(config["pos-weight"]),
        )
        positive, negative = common.score_histograms(scores, rows.y_validation)
        reply = {"positive": json.dumps(positive), "negative": json.dumps(negative)}
    return Message(RecordDict({"reply": ConfigRecord(reply)}), reply_to=message)


@app.train(mods=[_clip_when_private])
def train(message: Message, context: Context) -> Message:
    """Local epochs from the global weights; the new weights and the loss."""
    config = message.content["config"]
    trainer, _, rows = _rows(config, context)
    model, preprocessor = _model(message, config, trainer)
    from airflow_mlops.training.config import check_config

    cfg = check_config(trainer)
    loss = local.train_locally(
        model,
        preprocessor.transform(rows.train),
        rows.y_train,
        cfg["params"],
        pos_weight=float(config["pos-weight"]),
        seed=int(cfg["seed"]) + int(config.get("server-round", 0)),
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(rows.y_train), "dp-weight": 1})
    return Message(
        RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=message
    )


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """The global model's loss on this node's validation rows."""
    config = message.content["config"]
    trainer, _, rows = _rows(config, context)
    model, preprocessor = _model(message, config, trainer)
    _, loss = local.scores_and_loss(
        model,
        preprocessor.transform(rows.validation),
        rows.y_validation,
        pos_weight=float(config["pos-weight"]),
    )
    metrics = MetricRecord(
        {"eval_loss": loss, "num-examples": max(len(rows.y_validation), 1), "dp-weight": 1}
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=message)
