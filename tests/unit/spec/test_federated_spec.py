"""`training.backend: federated`: the `training.federated` section, its checks, and the fit task
and ML-BOM facts the factory builds from it."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.schema import json_schema
from tests.unit.spec import snippets

BASE = snippets.header("fraud", "is_fraud")

FULL = """\
training:
  backend: federated
  model: mlp
  params: {epochs: 2, hidden_units: [32]}
  federated:
    connection: flower_superlink
    data: partitions
    partitions: 3
    rounds: 4
    strategy: fedprox
    proximal_mu: 0.05
    min_clients: 3
    privacy: {clipping_norm: 1.0, noise_multiplier: 1.2, delta: 1.0e-5, epsilon: 20}
    round_timeout: 5m
    timeout: 1h
    poll_interval: 5s
"""


def load(text: str):
    return snippets.load(text, BASE)


def issues(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load(text)
    return str(info.value)


def test_a_full_federated_section_loads_and_validates_against_the_schema() -> None:
    spec = load(FULL)
    fed = spec.training.federated_settings
    assert (fed.connection, fed.partitions, fed.rounds, fed.strategy, fed.min_clients) == (
        "flower_superlink",
        3,
        4,
        "fedprox",
        3,
    )
    assert fed.privacy is not None and fed.privacy.epsilon == 20
    assert fed.round_timeout.total_seconds() == 300 and fed.poll_interval.total_seconds() == 5
    jsonschema.validate(yaml.safe_load(BASE + FULL), json_schema())


def test_a_federated_spec_without_a_task_is_a_binary_one() -> None:
    assert load("training: {backend: federated}\n").task_hint == "binary"
    assert load("task: binary\ntraining: {backend: federated}\n").task == "binary"


def test_the_defaults_need_no_section() -> None:
    fed = load("training: {backend: federated}\n").training.federated_settings
    assert (fed.connection, fed.data, fed.rounds, fed.strategy, fed.min_clients) == (
        "flower_default",
        "partitions",
        3,
        "fedavg",
        2,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("training: {backend: federated, model: xgboost}\n", "trains the built-in `mlp`"),
        ("training: {backend: federated, privacy: {epsilon: 3}}\n", "federated.privacy"),
        ("training: {backend: local, federated: {rounds: 2}}\n", "`federated` settings are given"),
        ("training: {backend: federated, federated: {strategy: fedsgd}}\n", "fedsgd"),
        ("training: {backend: federated, federated: {proximal_mu: 0.1}}\n", "`proximal_mu` applies"),
        ("training: {backend: federated, federated: {data: node, partitions: 3}}\n", "`partitions` applies"),
        ("training: {backend: federated, federated: {partitions: 2, min_clients: 3}}\n", "more than the 2"),
        (
            "training: {backend: federated, federated: {fraction_train: 0.5, privacy: "
            "{clipping_norm: 1, noise_multiplier: 1}}}\n",
            "fraction_train: 1",
        ),
        ("training: {backend: federated, federated: {rounds: 0}}\n", "rounds"),
        ("training: {backend: federated, watermark: {}}\n", "`watermark` does not apply"),
        ("training: {backend: federated, federated: {privacy: {noise_multiplier: 1}}}\n", "clipping_norm"),
        (
            "training: {backend: federated, federated: {local_nodes: 3, data: node}}\n",
            "needs `data: partitions`",
        ),
        (
            "training: {backend: federated, federated: {local_nodes: 3, partitions: 2}}\n",
            "differs from `local_nodes` 3",
        ),
        (
            "training: {backend: federated, federated: {local_nodes: 2, min_clients: 3}}\n",
            "the 2 local SuperNodes",
        ),
        ("training: {backend: federated, federated: {local_nodes: 17}}\n", "local_nodes"),
        # the federated app trains binary classification: a declared or implied other task is refused
        (
            "task: multiclass\ntraining: {backend: federated}\n",
            "training.backend: `backend: federated` (the built-in mlp) applies to binary tasks, but `task` "
            "is multiclass",
        ),
        ("task: regression\ntraining: {backend: federated}\n", "but `task` is regression"),
        (
            "evaluation: {metrics: {rmse: {max: 3}}}\ntraining: {backend: federated}\n",
            "`backend: federated` (the built-in mlp) applies to binary tasks, but metric rmse does not",
        ),
    ],
)
def test_what_does_not_fit_is_refused_at_its_key(text: str, words: str) -> None:
    assert words in issues(text)


def test_the_factory_builds_the_federated_fit_and_names_the_federation_for_the_mlbom() -> None:
    from airflow_mlops.factory.builder import build_train_dag
    from airflow_mlops.operators.training_federated import ModelFitFederatedOperator

    dag = build_train_dag(load(FULL))
    fit = dag.get_task("training.fit")
    assert isinstance(fit, ModelFitFederatedOperator)
    assert fit.flower_conn_id == "flower_superlink" and fit.deferrable
    assert fit.federated["rounds"] == 4 and fit.federated["round_timeout"] == 300.0
    assert fit.federated["timeout"] == 3600.0 and fit.federated["privacy"]["noise_multiplier"] == 1.2
    assert "connection" not in fit.federated  # the address is read through the connection only
    sign = dag.get_task("release.sign")
    assert sign.training["federation"] == "flower connection flower_superlink (data: partitions)"
    assert (sign.training["federated_rounds"], sign.training["federated_strategy"]) == (4, "fedprox")
    assert dag.get_task("training.package").backend == "federated"


def test_a_local_federation_is_started_by_the_fit_task_and_named_in_the_mlbom() -> None:
    from airflow_mlops.factory.builder import build_train_dag

    spec = load("training:\n  backend: federated\n  federated: {local_nodes: 3, min_clients: 3, rounds: 2}\n")
    assert spec.training.federated_settings.local_nodes == 3
    dag = build_train_dag(spec)
    fit = dag.get_task("training.fit")
    assert fit.federated["local_nodes"] == 3 and fit.federated["partitions"] is None
    sign = dag.get_task("release.sign")
    assert sign.training["federation"] == "local: 3 SuperNodes on the worker (data: partitions)"
    jsonschema.validate(
        yaml.safe_load(BASE + "training: {backend: federated, federated: {local_nodes: 3}}\n"), json_schema()
    )
