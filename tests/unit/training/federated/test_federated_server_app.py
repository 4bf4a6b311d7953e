"""The ServerApp in the Flower environment: its component, and the strategy a spec picks."""

from __future__ import annotations

import json
from typing import Any

CODE = """
import json
from flwr.serverapp import ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, FedProx
from airflow_mlops.training.federated import server_app
from airflow_mlops.training.federated.global_model import RunSettings
from airflow_mlops.training.federated.flower_cli import run_config_values

def settings(**over):
    values = run_config_values(job={"uri": "/j", "sha256": "a", "size": 1}, result_key="r",
                               settings={"min_clients": 3, **over}, app_sha256="")
    return RunSettings.from_run_config(values)

plain = server_app._strategy(settings(), 3)
prox = server_app._strategy(settings(strategy="fedprox", proximal_mu=0.3), 3)
dp = server_app._strategy(settings(privacy={"clipping_norm": 2.0, "noise_multiplier": 0.5}), 4)
print(json.dumps({
    "app": isinstance(server_app.app, ServerApp),
    "plain": [type(plain).__name__, plain.min_train_nodes, plain.min_available_nodes, plain.weighted_by_key],
    "prox": [type(prox).__name__, prox.proximal_mu],
    "dp": [type(dp).__name__, dp.clipping_norm, dp.noise_multiplier, dp.num_sampled_clients,
           type(dp.strategy).__name__, dp.strategy.weighted_by_key],
}))
"""


def test_the_server_app_and_its_strategies(in_flower: Any) -> None:
    proc = in_flower(CODE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["app"] is True
    assert got["plain"] == ["FedAvg", 3, 3, "num-examples"]
    assert got["prox"] == ["FedProx", 0.3]
    # DP: every client weighted alike (the noise is calibrated to an unweighted mean)
    assert got["dp"] == ["DifferentialPrivacyClientSideFixedClipping", 2.0, 0.5, 4, "FedAvg", "dp-weight"]
