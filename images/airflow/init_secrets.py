"""Create the compose stack's secrets once, into its named volumes (the ``airflow-secrets-init`` service).

- ``<airflow-dir>/jwt_secret`` and ``<airflow-dir>/fernet_key``: read by every Airflow service
  through ``AIRFLOW__API_AUTH__JWT_SECRET_CMD`` / ``AIRFLOW__CORE__FERNET_KEY_CMD``, so all of them
  share one JWT secret without it being written in the compose file or an image.
- ``<signing-dir>/connections.json``: the ``mlops_signing`` connection (``password``: the PEM
  private key, ``extra.public_key``: the PEM public key), read by Airflow's
  ``LocalFilesystemBackend`` on the services that run tasks; ``signing_key.pub.pem`` beside it for
  people who verify models.

Nothing that exists is replaced (a restart keeps the key that signed the registered models).
Files holding secrets are created mode 0600 with an atomic rename; only the public key's
fingerprint is printed.

    python init_secrets.py --airflow-dir /opt/airflow/secrets --signing-dir /opt/airflow/signing
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

SIGNING_CONN_ID = "mlops_signing"
CONNECTIONS_FILE = "connections.json"
PUBLIC_KEY_FILE = "signing_key.pub.pem"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` mode 0600, atomically (never a half-written secret)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _ensure(path: Path, make: Callable[[], bytes]) -> bool:
    if path.exists():
        if path.stat().st_size == 0:
            raise SystemExit(f"{path} exists but is empty; delete it (or the volume) to create a new one")
        return False
    _write_private(path, make())
    return True


def _signing_connection() -> bytes:
    from airflow_mlops.security.signing import generate_key_pair

    private, public = generate_key_pair()
    conn = {
        SIGNING_CONN_ID: {
            "conn_type": "mlops_signing",
            "password": private.decode(),
            "extra": json.dumps({"public_key": public.decode()}),
        }
    }
    return json.dumps(conn, indent=2).encode()


def _public_key_of(connections_file: Path) -> bytes:
    data = json.loads(connections_file.read_text())
    try:
        extra = json.loads(data[SIGNING_CONN_ID]["extra"])
        return str(extra["public_key"]).encode()
    except (KeyError, TypeError, ValueError) as exc:
        raise SystemExit(
            f"{connections_file} holds no {SIGNING_CONN_ID!r} connection with extra.public_key ({exc!r}); "
            "delete the file (or the volume) to create a new key pair"
        ) from exc


def _fernet_key() -> bytes:
    from cryptography.fernet import Fernet

    return Fernet.generate_key()


def init_secrets(airflow_dir: Path, signing_dir: Path) -> dict[str, bool]:
    """Create what is missing; return ``{file name: created}``."""
    for folder in (airflow_dir, signing_dir):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = {
        "jwt_secret": _ensure(airflow_dir / "jwt_secret", lambda: secrets.token_urlsafe(64).encode()),
        "fernet_key": _ensure(airflow_dir / "fernet_key", _fernet_key),
        CONNECTIONS_FILE: _ensure(signing_dir / CONNECTIONS_FILE, _signing_connection),
    }
    public = _public_key_of(signing_dir / CONNECTIONS_FILE)
    public_path = signing_dir / PUBLIC_KEY_FILE
    if not public_path.exists() or public_path.read_bytes() != public:
        public_path.write_bytes(public)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-dir", type=Path, required=True, help="JWT secret and Fernet key folder")
    parser.add_argument("--signing-dir", type=Path, required=True, help="signing connection folder")
    args = parser.parse_args(argv)
    created = init_secrets(args.airflow_dir, args.signing_dir)
    for name, new in created.items():
        print(f"{name}: {'created' if new else 'kept (exists)'}")
    public = (args.signing_dir / PUBLIC_KEY_FILE).read_bytes()
    print(f"signing public key sha256: {hashlib.sha256(public).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
