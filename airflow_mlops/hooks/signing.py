"""Hook for the model-signing key held in an Airflow connection (or a secrets backend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk.bases.hook import BaseHook

from airflow_mlops.exceptions import SigningError


@dataclass(frozen=True, repr=False)
class SigningKey:
    """Key material. ``repr`` hides the private key so it cannot leak through logs."""

    private_key_pem: bytes | None
    public_key_pem: bytes
    password: bytes | None

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"


class ModelSigningHook(BaseHook):
    """Reads the signing key from a connection of type ``mlops_signing``.

    - ``password``: the PEM private key (ECDSA P-256). Airflow masks it in logs.
    - ``extra.public_key``: the PEM public key. Optional when the private key is present; a
      verify-only connection (on a serving cluster) holds just the public key.
    - ``extra.key_password``: the private key's passphrase, if it is encrypted.

    Only these named keys are read.
    """

    conn_name_attr = "signing_conn_id"
    default_conn_name = "mlops_signing"
    conn_type = "mlops_signing"
    hook_name = "Model signing key"

    def __init__(self, signing_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.signing_conn_id = signing_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "login", "port"],
            "relabeling": {"password": "Private key (PEM)"},
            "placeholders": {"extra": '{"public_key": "-----BEGIN PUBLIC KEY-----\\n..."}'},
        }

    def get_key(self, *, need_private: bool) -> SigningKey:
        from airflow_mlops.security.signing import public_key_from_private

        conn = self.get_connection(self.signing_conn_id)
        extra = conn.extra_dejson or {}
        private = (conn.password or "").strip().encode() or None
        passphrase = extra.get("key_password")
        password = passphrase.encode() if passphrase else None
        public_text = extra.get("public_key")
        if need_private and private is None:
            raise SigningError(
                f"connection {self.signing_conn_id!r} holds no private key; put the PEM private key "
                "in its password field (see docs/security.md)"
            )
        if public_text:
            public = public_text.strip().encode()
        elif private is not None:
            public = public_key_from_private(private, password)
        else:
            raise SigningError(
                f"connection {self.signing_conn_id!r} holds neither a private key (password) nor "
                "a public key (extra.public_key)"
            )
        return SigningKey(private_key_pem=private, public_key_pem=public, password=password)
