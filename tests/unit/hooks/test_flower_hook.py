"""FlowerHook: the SuperLink's address and TLS settings from the connection's named keys."""

from __future__ import annotations

import json

import pytest

from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.hooks.flower import FlowerHook, superlink_settings


def test_the_connection_names_the_superlink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FL",
        json.dumps({"conn_type": "flower", "host": "127.0.0.1", "port": 9093,
                    "extra": {"insecure": "true", "cli": "/opt/flower/bin/flwr", "ignored": "x"}}),
    )  # fmt: skip
    assert FlowerHook("fl").superlink() == {
        "address": "127.0.0.1:9093", "insecure": True, "root_certificates": None, "cli": "/opt/flower/bin/flwr"
    }  # fmt: skip


def test_tls_settings_and_defaults() -> None:
    got = superlink_settings("fl", "link.example", "443", {"root_certificates": "/ca.pem"})
    assert got == {
        "address": "link.example:443",
        "insecure": False,
        "root_certificates": "/ca.pem",
        "cli": "flwr",
    }


def test_a_missing_or_incomplete_connection_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TrainingRejectedError, match="AIRFLOW_CONN_NOPE"):
        FlowerHook("nope").superlink()
    monkeypatch.setenv("AIRFLOW_CONN_HALF", json.dumps({"conn_type": "flower", "host": "h"}))
    with pytest.raises(TrainingRejectedError, match="needs host and port"):
        FlowerHook("half").superlink()


def test_a_local_federation_reads_only_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOCAL", json.dumps({"conn_type": "flower", "extra": {"cli": "/fl/bin/flwr"}})
    )
    assert FlowerHook("local").cli() == "/fl/bin/flwr"  # no host or port needed
    monkeypatch.setenv("AIRFLOW_CONN_BARE", json.dumps({"conn_type": "flower"}))
    assert FlowerHook("bare").cli() == "flwr"
    assert FlowerHook("absent").cli() == "flwr"  # no connection: flwr on the worker's PATH
