from __future__ import annotations

import json

import pytest

from airflow_mlops.exceptions import RegistryError, SigningError
from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.security.signing import generate_key_pair


def test_mlflow_hook_builds_the_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLF", json.dumps({"conn_type": "mlflow", "host": "127.0.0.1", "port": 5055})
    )
    assert MLflowHook("mlf").tracking_uri == "http://127.0.0.1:5055"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLF2", json.dumps({"conn_type": "mlflow", "host": "https://mlflow.internal"})
    )
    assert MLflowHook("mlf2").tracking_uri == "https://mlflow.internal"


def test_mlflow_hook_without_host_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY", json.dumps({"conn_type": "mlflow"}))
    with pytest.raises(RegistryError, match="tracking URI"):
        _ = MLflowHook("empty").tracking_uri


def test_signing_hook_derives_the_public_key_and_hides_the_private_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, public = generate_key_pair()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SIGN", json.dumps({"conn_type": "mlops_signing", "password": private.decode()})
    )
    key = ModelSigningHook("sign").get_key(need_private=True)
    assert key.public_key_pem.strip() == public.strip()
    assert "PRIVATE" not in repr(key) and private.decode().splitlines()[1] not in repr(key)


def test_signing_hook_verify_only_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _, public = generate_key_pair()
    monkeypatch.setenv(
        "AIRFLOW_CONN_VERIFY",
        json.dumps({"conn_type": "mlops_signing", "extra": {"public_key": public.decode()}}),
    )
    hook = ModelSigningHook("verify")
    assert hook.get_key(need_private=False).private_key_pem is None
    with pytest.raises(SigningError, match="no private key"):
        hook.get_key(need_private=True)


def test_encrypted_private_key_with_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = generate_key_pair(password=b"s3cret")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENC",
        json.dumps(
            {"conn_type": "mlops_signing", "password": private.decode(), "extra": {"key_password": "s3cret"}}
        ),
    )
    assert ModelSigningHook("enc").get_key(need_private=True).public_key_pem.strip() == public.strip()
