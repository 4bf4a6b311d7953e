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

import dataclasses
import logging
import re
from typing import Annotated, Any

from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_mlops import compat
from airflow_mlops.compat import get_auth_manager
from airflow_mlops.connections import MLFLOW_CONN_ID, SIGNING_CONN_ID
from airflow_mlops.exceptions import ArtifactError, RegistryError, RegistryLookupError
from airflow_mlops.redaction import RedactingFilter, redact_paths
from airflow_mlops.ui import URL_PREFIX, documents, page, rows
from airflow_mlops.ui.headers import REPORT_CSP, SecureHeaders

log = logging.getLogger(__name__)
log.addFilter(RedactingFilter())  # messages and tracebacks in the api-server log, credentials masked

# Served documents are data, never active content in the Airflow origin (the page policy and
# the other security headers are on every answer: ``headers.SecureHeaders``).
_REPORT_HEADERS = {"Content-Security-Policy": REPORT_CSP}
# Every route needs an Airflow user (401 without one, 403 for an invalid token).
User = Annotated[Any, Depends(compat.get_user_dependency())]
_UNAVAILABLE = "the model registry (MLflow) is unavailable; try again later"
#: Airflow stores a task's map index as a 32-bit integer.
MAX_MAP_INDEX = 2**31 - 1
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def create_app() -> FastAPI:
    """The app; the plugin builds it on the view's first request (see ``plugin.LazyApp``)."""
    cache = rows.CheckCache()
    app = FastAPI(title="airflow-mlops Models view", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecureHeaders)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Error bodies never name server paths or credentials, whatever a message carried.
        return JSONResponse(
            {"detail": redact_paths(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        where = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) or "request" for e in exc.errors()})
        detail = f"invalid request: missing or malformed {', '.join(where)}"
        return JSONResponse({"detail": redact_paths(detail)}, status_code=422)

    def may_read(user: Any, pipeline: str) -> bool:
        return bool(
            get_auth_manager().is_authorized_dag(
                method="GET", details=compat.dag_details(f"{pipeline}__train"), user=user
            )
        )

    def may_read_outputs(user: Any, dag_id: str) -> bool:
        return bool(
            get_auth_manager().is_authorized_dag(
                method="GET",
                access_entity=compat.dag_xcom_entity(),
                details=compat.dag_details(dag_id),
                user=user,
            )
        )

    def registry() -> Any:
        try:
            return mlflow_client()
        except Exception as exc:
            log.warning("Models view: no MLflow client: %s", redact_paths(exc))
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, _UNAVAILABLE) from None

    def authorize_model(mlflow: Any, user: Any, model_name: str) -> None:
        try:
            pipeline = documents.model_pipeline(mlflow, model_name)
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        if not may_read(user, pipeline):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    def base(request: Request) -> str:
        return str(request.scope.get("root_path") or URL_PREFIX)

    def unavailable(exc: Exception) -> HTTPException:
        log.warning("Models view: the model registry did not answer: %s", redact_paths(exc))
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, _UNAVAILABLE)

    @app.get("/", response_class=HTMLResponse)
    def models_page(request: Request, user: User) -> HTMLResponse:
        try:
            models = rows.collect_models(
                registry(),
                public_key_pem=public_key_pem(),
                include=lambda pipeline: may_read(user, pipeline),
                max_versions=conf.getint("mlops", "models_view_max_versions", fallback=10),
                cache=cache,
            )
        except RegistryError as exc:
            raise unavailable(exc) from None
        models = [dataclasses.replace(m, suppressed=suppressed_triggers(m.pipeline)) for m in models]
        return HTMLResponse(page.render_models(models, base=base(request)))

    @app.get("/{model_name}/versions/{version}/check", response_class=HTMLResponse)
    def check_page(request: Request, user: User, model_name: str, version: str) -> HTMLResponse:
        mlflow = registry()
        authorize_model(mlflow, user, model_name)
        signature, scan = rows.check_version(mlflow, model_name, version, public_key_pem(), cache=None)
        return HTMLResponse(page.render_check(model_name, version, signature, scan, base=base(request)))

    @app.get("/{model_name}/versions/{version}/mlbom.cdx.json")
    def mlbom(user: User, model_name: str, version: str) -> Response:
        mlflow = registry()
        authorize_model(mlflow, user, model_name)
        try:
            data = documents.mlbom_document(mlflow, model_name, version)
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except ArtifactError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        filename = _filename(f"{model_name}-v{version}.mlbom.cdx.json")
        return Response(
            data,
            media_type="application/vnd.cyclonedx+json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/runs/{run_id}/report/{path:path}")
    def report(user: User, run_id: str, path: str) -> Response:
        from airflow_mlops.registry.mlflow_registry import TAG_PIPELINE, lookup_failed

        mlflow = registry()
        try:
            pipeline = mlflow.get_run(run_id).data.tags.get(TAG_PIPELINE)
        except Exception as exc:
            error = lookup_failed(f"reading MLflow run {run_id}", exc)
            if isinstance(error, RegistryLookupError):
                log.info("Models view: MLflow run %r: %s", run_id, redact_paths(exc))
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no MLflow run {run_id!r}") from None
            raise unavailable(exc) from None
        if not pipeline or not may_read(user, str(pipeline)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        try:
            data, media_type = documents.run_report(mlflow, run_id, path)
        except documents.ReportRefusedError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
        except documents.ReportChangedError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except RegistryLookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        return Response(data, media_type=media_type, headers=_REPORT_HEADERS)

    @app.get("/artifacts/report")
    def artifact_report(
        user: User,
        dag_id: Annotated[str, Query(min_length=1, max_length=250)],
        run_id: Annotated[str, Query(min_length=1, max_length=250)],
        task_id: Annotated[str, Query(min_length=1, max_length=250)],
        map_index: Annotated[int, Query(ge=-1, le=MAX_MAP_INDEX)] = -1,
        output: Annotated[str, Query(max_length=64)] = "html_report",
    ) -> Response:
        """The HTML report a task stored in the artifact store (validation, screen).

        The URL names the task instance and which of its outputs (``html_report`` or
        ``report``); the report's location and sha256 come from that task's own XCom record,
        never from the URL. Served to a user who may read the DAG's XComs and the report's
        pipeline's ``<pipeline>__train`` DAG (a DAG id that starts with a pipeline's name proves
        nothing: it is checked like any other), only while the stored file still has the recorded
        digest."""
        if output not in documents.REPORT_OUTPUTS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{output!r} is not a report output")
        if not may_read_outputs(user, dag_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        where = f"task {task_id!r} of run {run_id!r} of DAG {dag_id!r}"
        try:
            record = task_output(dag_id, run_id, task_id, map_index, output)
        except Exception as exc:
            log.warning("Models view: reading the XCom of %s failed: %s", where, redact_paths(exc))
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "the Airflow metadata database did not answer"
            ) from None
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{where} recorded no {output}")

        try:
            _, data = documents.artifact_report(
                artifact_root(), record, run_id=run_id, authorize=lambda pipeline: may_read(user, pipeline)
            )
        except PermissionError:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden") from None
        except documents.ReportRefusedError as exc:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"the report of {where} is not served: {exc}"
            ) from None
        except documents.ReportUnavailableError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{where}: {exc}") from None
        except ArtifactError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{where}: {exc}") from None
        return Response(data, media_type="text/html; charset=utf-8", headers=_REPORT_HEADERS)

    return app


def _filename(name: str) -> str:
    """A file name safe in a ``Content-Disposition`` header (ASCII letters, digits, ``._-``)."""
    return _UNSAFE_FILENAME.sub("_", name)[:200] or "download"


def task_output(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    """The XCom ``key`` a task instance pushed (None when it pushed none), read from Airflow's
    metadata database as the api-server's own XCom routes read it."""
    return compat.read_task_xcom(dag_id, run_id, task_id, map_index, key)


def suppressed_triggers(pipeline: str) -> Any:
    """The retrain gate's suppressed events of ``pipeline`` (its retrain ledger), or None."""
    from airflow_mlops.ui.suppressed import read_suppressed

    return read_suppressed(artifact_root(), pipeline)


def artifact_root() -> str:
    """The lifecycle's artifact root, as the operators see it."""
    from airflow_mlops.artifacts import default_artifact_root

    return default_artifact_root()


def mlflow_client() -> Any:
    """The MLflow client of ``[mlops] models_view_mlflow_conn_id``."""
    from airflow_mlops.hooks.mlflow import MLflowHook

    conn_id = conf.get("mlops", "models_view_mlflow_conn_id", fallback=MLFLOW_CONN_ID)
    return MLflowHook(mlflow_conn_id=conn_id).get_conn()


def public_key_pem() -> Any:
    """What ``[mlops] models_view_signing_conn_id`` trusts (a key, a CA bundle or a Sigstore
    identity); None (nothing verifies) without."""
    from airflow_mlops.hooks.signing import ModelSigningHook

    conn_id = conf.get("mlops", "models_view_signing_conn_id", fallback=SIGNING_CONN_ID)
    try:
        return ModelSigningHook(signing_conn_id=conn_id).get_key(need_private=False).trust
    except Exception as exc:  # no key: every check reads "not verified", with this reason
        log.warning("Models view: no public key from connection %r (%s)", conn_id, exc)
        return None
