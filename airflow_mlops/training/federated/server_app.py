"""The Flower ServerApp of ``training.backend: federated`` (runs inside a SuperLink).

One run: wait for ``min-clients`` SuperNodes; ask each for its feature statistics and label
counts (query ``statistics``) and build the shared encoding; train the built-in ``mlp`` for
``rounds`` rounds of FedAvg (or FedProx), optionally with DP on the client updates (clipped on
each client by Flower's ``fixedclipping_mod``, noised here by
``DifferentialPrivacyClientSideFixedClipping``, every client weighted alike); ask each client for
the histogram of the global model's scores on its validation rows (query ``histogram``) and
choose the operating threshold; save the global model into the artifact store with the metrics
of every round (:mod:`.global_model`).

Imports ``flwr``: loaded only by a SuperLink's ServerApp process, never by Airflow.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, FedProx

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.training.federated import common, global_model
from airflow_mlops.training.federated.local import build_model, read_job

log = logging.getLogger("airflow_mlops.training.federated")
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """The run (see the module docstring)."""
    import torch

    from airflow_mlops.training.networks import Preprocessor

    started = time.monotonic()
    settings = global_model.RunSettings.from_run_config(context.run_config)
    app_sha256 = common.app_sha256()
    if settings.app_sha256 and settings.app_sha256 != app_sha256:
        raise TrainingRejectedError(
            f"this SuperLink's airflow-mlops federated app has sha256 {app_sha256}, the submitting worker's "
            f"{settings.app_sha256}: install the same airflow-mlops release on the SuperLink, the SuperNodes "
            "and the workers"
        )
    job = read_job(settings.job_uri, settings.job_sha256, settings.job_size)
    cfg = global_model.trainer_config(job)
    shared = {"job-uri": settings.job_uri, "job-sha256": settings.job_sha256, "job-size": settings.job_size,
              "data": settings.data, "partitions": settings.partitions}  # fmt: skip
    nodes = _wait_for_nodes(grid, settings.min_clients, settings.connect_timeout)
    stats = _query(grid, nodes, {**shared, "action": "statistics"}, settings, None)
    preprocessor = Preprocessor.from_dict(
        common.merge_statistics([json.loads(s["statistics"]) for s in stats])
    )
    summaries = [json.loads(s["summary"]) for s in stats]
    weight = global_model.pos_weight(summaries, cfg["params"]["class_weight"])
    negative = global_model.negative_label(summaries)
    print(f"federated: {len(stats)} clients, {sum(s['rows'] for s in summaries)} rows, "
          f"{preprocessor.output_dim} inputs, pos_weight {weight:.4g}", flush=True)  # fmt: skip
    model = build_model({**job.config, "model": job.model}, preprocessor.output_dim)
    train_config = ConfigRecord({**shared, "preprocessor": json.dumps(preprocessor.to_dict()), "pos-weight": weight,
                                 "proximal-mu": settings.proximal_mu})  # fmt: skip
    result = _strategy(settings, len(nodes)).start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=settings.rounds,
        timeout=settings.round_timeout,
        train_config=train_config,
        evaluate_config=train_config,
    )
    model.load_state_dict(result.arrays.to_torch_state_dict())
    hist = _query(grid, list(grid.get_node_ids()), {**dict(train_config), "action": "histogram"}, settings,
                  result.arrays)  # fmt: skip
    threshold = common.threshold_from_histograms(
        [json.loads(h["positive"]) for h in hist], [json.loads(h["negative"]) for h in hist], cfg["threshold"]
    )
    metrics = _metrics(result, settings, len(stats), threshold, time.monotonic() - started)
    metrics["federated_app_sha256"] = app_sha256
    if settings.private:
        metrics["dp_epsilon"] = settings.dp_epsilon  # accounted by the operator before submitting
    with torch.no_grad():
        saved = global_model.save_global_model(
            job, settings, model, preprocessor, negative=negative, threshold=threshold, metrics=metrics
        )
    print(f"federated: global model {saved['weights']['uri']} (sha256 {saved['weights']['sha256']}), "
          f"threshold {threshold['value']:.4g}", flush=True)  # fmt: skip


def _strategy(settings: global_model.RunSettings, connected: int) -> Any:
    """FedAvg or FedProx over ``min-clients``; with DP, wrapped for client-side clipping (every
    connected client trains in every round: ``fraction-train`` 1, checked by the spec)."""
    common_args: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": 1.0,
        "min_train_nodes": settings.min_clients,
        "min_evaluate_nodes": settings.min_clients,
        "min_available_nodes": settings.min_clients,
    }
    if settings.private:
        common_args["weighted_by_key"] = "dp-weight"  # every client alike: the noise's sensitivity
    inner = (
        FedProx(proximal_mu=settings.proximal_mu, **common_args)
        if settings.strategy == "fedprox"
        else FedAvg(**common_args)
    )
    if not settings.private:
        return inner
    return DifferentialPrivacyClientSideFixedClipping(
        inner,
        noise_multiplier=settings.dp_noise_multiplier,
        clipping_norm=settings.dp_clipping_norm,
        num_sampled_clients=connected,
    )


def _wait_for_nodes(grid: Grid, needed: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= needed:
            return nodes
        if time.monotonic() > deadline:
            raise TrainingError(
                f"{len(nodes)} SuperNode(s) connected within {timeout:.0f}s; min_clients is {needed}"
            )
        time.sleep(1.0)


def _query(
    grid: Grid, nodes: Iterable[int], config: dict[str, Any], settings: global_model.RunSettings, arrays: Any
) -> list[dict[str, Any]]:
    """Send a query to ``nodes``; the replies' metric records, at least ``min-clients`` of them."""
    content = RecordDict({"config": ConfigRecord(config)})
    if arrays is not None:
        content["arrays"] = arrays
    messages = [Message(content=content, dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
    replies = list(grid.send_and_receive(messages, timeout=settings.round_timeout))
    good, errors = [], []
    for reply in replies:
        if reply.has_error():
            errors.append(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
        else:
            good.append(dict(reply.content["reply"]))
    if errors:
        print("federated: query " + str(config["action"]) + " failed on " + "; ".join(errors), flush=True)
    if len(good) < settings.min_clients:
        raise TrainingRejectedError(
            f"query {config['action']}: {len(good)} client(s) answered, min_clients is {settings.min_clients}"
            + (f" ({'; '.join(errors)})" if errors else "")
        )
    return good


def _metrics(
    result: Any, settings: global_model.RunSettings, clients: int, threshold: dict[str, Any], seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": "binary",
        "model": "mlp",
        "federated_rounds": settings.rounds,
        "federated_strategy": settings.strategy,
        "federated_clients": clients,
        "threshold": float(threshold["value"]),
        "threshold_rule": str(threshold["rule"]),
        "duration_seconds": round(seconds, 3),
    }
    validation = threshold.get("validation") or {}
    for key in ("precision", "recall"):
        if validation.get(key) is not None:
            out[f"val_{key}"] = float(validation[key])
    for name, per_round in (
        ("train", result.train_metrics_clientapp),
        ("eval", result.evaluate_metrics_clientapp),
    ):
        for rnd, record in sorted(per_round.items()):
            for key, value in dict(record).items():
                if key.endswith("loss") and isinstance(value, (int, float)):
                    out[f"round_{rnd}_{name}_loss"] = float(value)
    last = max(result.evaluate_metrics_clientapp or {0: None})
    if last and "eval_loss" in dict(result.evaluate_metrics_clientapp[last]):
        out["val_loss"] = float(result.evaluate_metrics_clientapp[last]["eval_loss"])
    return out
