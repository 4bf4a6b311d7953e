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


def _conn(monkeypatch: pytest.MonkeyPatch, name: str, password: str | None, extra: dict) -> None:
    body = {"conn_type": "mlops_signing", "extra": extra}
    if password is not None:
        body["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(body))


def test_a_certificate_connection_gives_a_signer_and_a_ca_trust(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from airflow_mlops.security.signing import sign_model, verify_model
    from tests.pki import IDENTITY, make_pki, pem

    pki = make_pki()
    private, cert = pki.leaf()
    extra = {
        "method": "certificate",
        "certificate": cert.decode(),
        "certificate_chain": pem(pki.intermediate[0]).decode(),
        "ca_bundle": pem(pki.root).decode(),
        "identity": IDENTITY,
    }
    _conn(monkeypatch, "cert", private.decode(), extra)
    key = ModelSigningHook("cert", method="certificate").get_key(need_private=True)
    assert key.method == "certificate" and key.trust.identity == IDENTITY
    assert private.decode().splitlines()[1] not in repr(key)
    model = tmp_path / "m"
    model.mkdir()
    (model / "w").write_bytes(b"w")
    assert key.signer is not None
    sign_model(model, tmp_path / "m.sig", key.signer)
    assert verify_model(model, tmp_path / "m.sig", key.trust).method == "certificate"

    verify_only = ModelSigningHook("cert").get_key(need_private=False)
    assert verify_only.signer is None and verify_only.trust.ca_bundle_pem
    _conn(monkeypatch, "nocab", private.decode(), {k: v for k, v in extra.items() if k != "ca_bundle"})
    with pytest.raises(SigningError, match="ca_bundle"):
        ModelSigningHook("nocab").get_key(need_private=False)


def test_a_sigstore_connection_needs_its_identity_and_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.exceptions import SignatureVerificationError

    _conn(
        monkeypatch,
        "keyless",
        "eyJ.token.sig",
        {"method": "sigstore", "identity": "ci@example.org", "oidc_issuer": "https://id.example.org"},
    )
    key = ModelSigningHook("keyless").get_key(need_private=True)
    assert (
        key.method == "sigstore" and key.signer is not None and key.signer.identity_token == "eyJ.token.sig"
    )
    assert "token" not in repr(key) and "token" not in repr(key.signer)
    _conn(monkeypatch, "anyone", None, {"method": "sigstore"})
    with pytest.raises(SignatureVerificationError, match="identity and its OIDC issuer"):
        ModelSigningHook("anyone").get_key(need_private=False)


def test_a_connection_of_another_method_than_the_spec_asks_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, _ = generate_key_pair()
    _conn(monkeypatch, "plain", private.decode(), {})
    with pytest.raises(
        SigningError, match="holds a 'key' signing identity, but the pipeline asks for 'sigstore'"
    ):
        ModelSigningHook("plain", method="sigstore").get_key(need_private=False)
    _conn(monkeypatch, "typo", private.decode(), {"method": "certifcate"})
    with pytest.raises(SigningError, match="not one of key, certificate, sigstore"):
        ModelSigningHook("typo").get_key(need_private=False)


def test_a_missing_connection_is_a_clear_project_error(monkeypatch) -> None:
    import pytest as _pytest

    from airflow_mlops.exceptions import RegistryError, SigningError
    from airflow_mlops.hooks.mlflow import MLflowHook
    from airflow_mlops.hooks.signing import ModelSigningHook

    monkeypatch.delenv("AIRFLOW_CONN_NOSUCH_CONN", raising=False)
    with _pytest.raises(SigningError, match=r"'nosuch_conn' is not defined.*AIRFLOW_CONN_NOSUCH_CONN"):
        ModelSigningHook(signing_conn_id="nosuch_conn").get_key(need_private=False)
    with _pytest.raises(RegistryError, match=r"'nosuch_conn' is not defined.*conn_type.*mlflow"):
        MLflowHook(mlflow_conn_id="nosuch_conn").get_conn()


def test_the_mlflow_connection_test_never_echoes_credentials(monkeypatch) -> None:
    import json

    from airflow_mlops.hooks.mlflow import MLflowHook

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEAKY",
        json.dumps({"conn_type": "mlflow", "host": "http://bob:hunter2-secret@127.0.0.1:9"}),
    )
    ok, message = MLflowHook(mlflow_conn_id="leaky").test_connection()
    assert not ok and "hunter2-secret" not in message
