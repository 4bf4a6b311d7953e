"""The Models view's FastAPI app, mounted under Airflow 3's api-server by the plugin.

Every route needs an Airflow user: the JWT of the ``Authorization: Bearer`` header or the
``_token`` cookie the Airflow UI sets (Airflow's own ``get_user`` dependency; anonymous requests
get 401, an invalid token 403). A pipeline's models are shown, and its documents served, only
to a user who may read its ``<pipeline>__train`` DAG (the auth manager decides).

Settings (``[mlops]`` section of airflow.cfg, or ``AIRFLOW__MLOPS__...``):

- ``models_view_mlflow_conn_id`` (default ``mlflow_default``): the MLflow connection.
- ``models_view_signing_conn_id`` (default ``mlops_signing``): the connection whose public key
  verifies signatures and attestations (a verify-only connection with just ``extra.public_key``
  is enough). Without it the page says "not verified"; it never shows unverified as verified.
- ``models_view_max_versions`` (default 10): how many of the newest versions each model lists.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from airflow_mlops.exceptions import ArtifactError, RegistryError, RegistryLookupError
from airflow_mlops.ui import URL_PREFIX, page, rows

log = logging.getLogger(__name__)

# Served documents are data, never active content in the Airflow origin.
_REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Every route needs an Airflow user (401 without one, 403 for an invalid token).
User = Annotated[Any, Depends(get_user)]


def create_app() -> FastAPI:
    """The app; the plugin builds it on the view's first request (see ``plugin.LazyApp``)."""
    cache = rows.CheckCache()
    app = FastAPI(title="airflow-mlops Models view", docs_url=None, redoc_url=None, openapi_url=None)

    def may_read(user: Any, pipeline: str) -> bool:
        return bool(
            get_auth_manager().is_authorized_dag(
                method="GET", details=DagDetails(id=f"{pipeline}__train"), user=user
            )
        )

    def authorize_model(mlflow: Any, user: Any, model_name: str) -> None:
        try:
            pipeline = rows.model_pipeline(mlflow, model_name)
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        if not may_read(user, pipeline):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    def base(request: Request) -> str:
        return str(request.scope.get("root_path") or URL_PREFIX)

    def unavailable(exc: Exception) -> HTTPException:
        return HTTPException(status.HTTP_502_BAD_GATEWAY, f"the model registry did not answer: {exc}")

    @app.get("/", response_class=HTMLResponse)
    def models_page(request: Request, user: User) -> HTMLResponse:
        try:
            models = rows.collect_models(
                mlflow_client(),
                public_key_pem=public_key_pem(),
                include=lambda pipeline: may_read(user, pipeline),
                max_versions=conf.getint("mlops", "models_view_max_versions", fallback=10),
                cache=cache,
            )
        except RegistryError as exc:
            raise unavailable(exc) from None
        return HTMLResponse(page.render_models(models, base=base(request)), headers=_NO_STORE)

    @app.get("/{model_name}/versions/{version}/check", response_class=HTMLResponse)
    def check_page(request: Request, user: User, model_name: str, version: str) -> HTMLResponse:
        mlflow = mlflow_client()
        authorize_model(mlflow, user, model_name)
        signature, scan = rows.check_version(mlflow, model_name, version, public_key_pem(), cache=None)
        return HTMLResponse(
            page.render_check(model_name, version, signature, scan, base=base(request)), headers=_NO_STORE
        )

    @app.get("/{model_name}/versions/{version}/mlbom.cdx.json")
    def mlbom(user: User, model_name: str, version: str) -> Response:
        mlflow = mlflow_client()
        authorize_model(mlflow, user, model_name)
        try:
            data = rows.mlbom_document(mlflow, model_name, version)
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except ArtifactError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        filename = f"{model_name}-v{version}.mlbom.cdx.json".replace('"', "")
        return Response(
            data,
            media_type="application/vnd.cyclonedx+json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', **_NO_STORE},
        )

    @app.get("/runs/{run_id}/report/{path:path}")
    def report(user: User, run_id: str, path: str) -> Response:
        from airflow_mlops.registry.mlflow_registry import TAG_PIPELINE

        mlflow = mlflow_client()
        try:
            pipeline = mlflow.get_run(run_id).data.tags.get(TAG_PIPELINE)
        except Exception as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id}: {exc}") from None
        if not pipeline or not may_read(user, str(pipeline)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        try:
            data, media_type = rows.run_report(mlflow, run_id, path)
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        return Response(
            data,
            media_type=media_type,
            headers={"Content-Security-Policy": _REPORT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/artifacts/report")
    def artifact_report(user: User, uri: str, sha256: str) -> Response:
        """A stage's HTML report from the artifact store (validation, screen, evaluation), served
        only when its content has the digest its task recorded."""
        try:
            pipeline, data = rows.artifact_report(artifact_root(), uri, sha256)
        except LookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except ArtifactError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if not may_read(user, pipeline):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        return Response(
            data,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _REPORT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    return app


def artifact_root() -> str:
    """The lifecycle's artifact root, as the operators see it."""
    from airflow_mlops.operators.base import default_artifact_root

    return default_artifact_root()


def mlflow_client() -> Any:
    """The MLflow client of ``[mlops] models_view_mlflow_conn_id``."""
    from airflow_mlops.hooks.mlflow import MLflowHook

    conn_id = conf.get("mlops", "models_view_mlflow_conn_id", fallback="mlflow_default")
    return MLflowHook(mlflow_conn_id=conn_id).get_conn()


def public_key_pem() -> Any:
    """What ``[mlops] models_view_signing_conn_id`` trusts (a key, a CA bundle or a Sigstore
    identity); None (nothing verifies) without."""
    from airflow_mlops.hooks.signing import ModelSigningHook

    conn_id = conf.get("mlops", "models_view_signing_conn_id", fallback="mlops_signing")
    try:
        return ModelSigningHook(signing_conn_id=conn_id).get_key(need_private=False).trust
    except Exception as exc:  # no key: every check reads "not verified", with this reason
        log.warning("Models view: no public key from connection %r (%s)", conn_id, exc)
        return None
