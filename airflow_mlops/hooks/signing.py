"""Hook for the model-signing identity held in an Airflow connection (or a secrets backend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from airflow_mlops.connections import SIGNING_CONN_ID, SIGNING_CONN_TYPE
from airflow_mlops.exceptions import SigningError

if TYPE_CHECKING:
    from airflow_mlops.security.trust import SigningIdentity, Trust


@dataclass(frozen=True, repr=False)
class SigningKey:
    """The connection's signer (None on a verify-only connection) and what verifiers trust.

    ``repr`` hides the key material, so it cannot leak through logs.
    """

    trust: Trust
    signer: SigningIdentity | None = None

    def __repr__(self) -> str:
        return f"SigningKey(method={self.method!r}, <redacted>)"

    @property
    def method(self) -> str:
        return self.trust.method

    @property
    def private_key_pem(self) -> bytes | None:
        return self.signer.private_key_pem if self.signer else None

    @property
    def password(self) -> bytes | None:
        return self.signer.password if self.signer else None

    @property
    def public_key_pem(self) -> bytes | None:
        """The trusted public key (method ``key`` only)."""
        return self.trust.public_key_pem


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _pem(value: Any) -> bytes | None:
    text = _text(value)
    return text.encode() if text else None


class ModelSigningHook(BaseHook):
    """Reads the signing identity from a connection of type ``mlops_signing``.

    ``extra.method`` chooses the signing method (default ``key``):

    - ``key``: ``password`` holds the PEM private key (ECDSA P-256); ``extra.public_key`` the PEM
      public key (optional when the private key is there; a verify-only connection on a serving
      cluster holds just the public key); ``extra.key_password`` the key's passphrase.
    - ``certificate``: ``password`` and ``extra.key_password`` as for ``key``;
      ``extra.certificate`` the signing certificate (PEM), ``extra.certificate_chain`` its
      intermediates (PEM), ``extra.ca_bundle`` the root CA(s) verifiers trust (PEM), and optionally
      ``extra.identity``, an identity (SAN e-mail, URI or DNS name, or subject CN) the signing
      certificate must carry.
    - ``sigstore`` (keyless): ``extra.identity`` and ``extra.oidc_issuer`` are what verifiers
      trust; ``password`` may hold an OIDC identity token (otherwise the worker's ambient
      credentials are used); ``extra.staging`` (tests) or ``extra.trust_config`` (the path of a
      private Sigstore instance's client trust configuration).

    Airflow masks the password in logs. Only these named keys are read.
    """

    conn_name_attr = "signing_conn_id"
    default_conn_name = SIGNING_CONN_ID
    conn_type = SIGNING_CONN_TYPE
    hook_name = "Model signing key"

    def __init__(
        self, signing_conn_id: str = default_conn_name, method: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.signing_conn_id = signing_conn_id
        self.method = method

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "login", "port"],
            "relabeling": {"password": "Private key (PEM) or Sigstore identity token"},
            "placeholders": {
                "extra": '{"method": "key", "public_key": "-----BEGIN PUBLIC KEY-----\\n..."}',
            },
        }

    def get_key(self, *, need_private: bool) -> SigningKey:
        """The connection's trust and, with ``need_private``, its signer.

        :param need_private: the caller signs: a connection that cannot sign is refused.
        :raises SigningError: the connection is not defined (the message says how to add it), lacks what its method needs, or its method is not the
            one the pipeline asks for; the message names the field.
        """
        from airflow_mlops.hooks import read_connection
        from airflow_mlops.security.keys import public_key_from_private
        from airflow_mlops.security.trust import METHODS, SigningIdentity, Trust

        conn = read_connection(
            self,
            self.signing_conn_id,
            SigningError,
            '{"conn_type": "mlops_signing", "extra": {"public_key": "<PEM public key>"}}',
            "pass --public-key PEM_FILE on the command line",
        )
        extra = conn.extra_dejson or {}
        method = _text(extra.get("method")) or "key"
        name = f"connection {self.signing_conn_id!r}"
        if method not in METHODS:
            raise SigningError(f"{name}: extra.method {method!r} is not one of {', '.join(METHODS)}")
        if self.method and self.method != method:
            raise SigningError(
                f"{name} holds a {method!r} signing identity, but the pipeline asks for {self.method!r} "
                "(security.signing.method in the spec); change one of them"
            )
        secret = _text(conn.password)
        passphrase = _pem(extra.get("key_password"))
        signer: SigningIdentity | None = None
        if method == "sigstore":
            staging = bool(extra.get("staging", False))
            trust_config = _text(extra.get("trust_config"))
            trust = Trust(
                method="sigstore",
                identity=_text(extra.get("identity")),
                oidc_issuer=_text(extra.get("oidc_issuer")),
                staging=staging,
                trust_config=trust_config,
            )
            if need_private:
                signer = SigningIdentity(
                    method="sigstore",
                    identity_token=secret,
                    oidc_issuer=_text(extra.get("oidc_issuer")),
                    staging=staging,
                    trust_config=trust_config,
                )
            return SigningKey(trust=trust, signer=signer)
        private = secret.encode() if secret else None
        if need_private and private is None:
            raise SigningError(
                f"{name} holds no private key; put the PEM private key in its password field "
                "(see docs/security.md)"
            )
        if method == "certificate":
            if not _pem(extra.get("ca_bundle")):
                raise SigningError(
                    f"{name} (method certificate) has no extra.ca_bundle: the root CA certificate(s) "
                    "that verifiers trust"
                )
            trust = Trust(
                method="certificate",
                ca_bundle_pem=_pem(extra.get("ca_bundle")),
                identity=_text(extra.get("identity")),
            )
            if need_private:
                signer = SigningIdentity(
                    method="certificate",
                    private_key_pem=private,
                    password=passphrase,
                    certificate_pem=_pem(extra.get("certificate")),
                    chain_pem=_pem(extra.get("certificate_chain")),
                )
            return SigningKey(trust=trust, signer=signer)
        public = _pem(extra.get("public_key"))
        if public is None and private is not None:
            public = public_key_from_private(private, passphrase)
        if public is None:
            raise SigningError(
                f"{name} holds neither a private key (password) nor a public key (extra.public_key)"
            )
        if need_private:
            signer = SigningIdentity(method="key", private_key_pem=private, password=passphrase)
        return SigningKey(trust=Trust(method="key", public_key_pem=public), signer=signer)


def read_watermark_key(conn_id: str | None = None) -> bytes:
    """The watermark key (``training.watermark.key_connection``): the connection's password, at
    least 16 bytes (e.g. 64 hex digits). Only that field is read; Airflow masks it in logs, and only
    its commitment is ever recorded.

    :raises SigningError: the connection is not defined, or its password is missing or too short.
    """
    from airflow_mlops.hooks import read_connection
    from airflow_mlops.security.watermark import WATERMARK_CONN_ID

    name = conn_id or WATERMARK_CONN_ID
    conn = read_connection(
        BaseHook,
        name,
        SigningError,
        '{"conn_type": "generic", "password": "<64 random hex digits>"}',
        "set MLOPS_WATERMARK_KEY for the command line",
    )
    secret = _text(conn.password)
    if secret is None or len(secret.encode()) < 16:
        raise SigningError(
            f"connection {name!r}: its password must hold the watermark key, at least 16 bytes; generate "
            "one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return secret.encode()
