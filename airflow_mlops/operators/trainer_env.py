"""The environment of a trainer process the worker starts: an allow-list of the worker's variables,
the S3 settings of the artifact connection, and ``PYTHONPATH``. Credentials pass explicitly: never
the worker's whole environment (and so never an MLflow password)."""

from __future__ import annotations

import os
from collections.abc import Sequence

# Environment variables the local trainer subprocess inherits from the worker (nothing else):
# the interpreter's needs, locale, GPU selection, TLS trust, proxies, and the standard AWS
# credential chain the worker's own artifact store uses when no connection is set.
_INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
_AWS_CHAIN_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


def s3_environment(aws_conn_id: str | None) -> dict[str, str]:
    """S3 settings for a trainer process: from the Airflow AWS connection when one is named (the
    only place credentials are read), else the worker's own AWS credential chain variables."""
    if not aws_conn_id:
        return {k: os.environ[k] for k in _AWS_CHAIN_ENV if k in os.environ}
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id)
    env: dict[str, str] = {}
    credentials = hook.get_credentials()
    if credentials.access_key:
        env["AWS_ACCESS_KEY_ID"] = credentials.access_key
        env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key or ""
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL"] = str(endpoint)
    if hook.conn_region_name:
        env["AWS_DEFAULT_REGION"] = str(hook.conn_region_name)
    return env


def trainer_python_path(folders: Sequence[str], inherited: str | None) -> str:
    """``PYTHONPATH`` of the local trainer: ``training.python_path``, the dags folder (where the
    worker imports your code from), then what the worker had."""
    from airflow.configuration import conf

    parts = [
        *folders,
        conf.get("core", "dags_folder", fallback="") or "",
        *(inherited or "").split(os.pathsep),
    ]
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return os.pathsep.join(seen)


def local_trainer_environment(aws_conn_id: str | None, *, s3: bool) -> dict[str, str]:
    """The whole environment of the local trainer subprocess (see the module docstring)."""
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    if s3:
        env.update(s3_environment(aws_conn_id))
    return env
