"""Shared plumbing of the lifecycle operators: the artifact store, run-scoped keys, scratch space,
the MLflow and signing hooks, trusted models from the registry, lineage, and fail-fast (a project
error that no retry can change fails the task at once; :mod:`.fail_fast`, re-exported here)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore, default_artifact_root
from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.fail_fast import as_final, fail_fast, final_error_type

__all__ = ["MLOpsBaseOperator", "as_final", "default_artifact_root", "fail_fast", "final_error_type"]

log = logging.getLogger(__name__)


class MLOpsBaseOperator(BaseOperator):
    """Base of every lifecycle stage.

    :param pipeline: the pipeline name; the first segment of every artifact key.
    :param artifact_root: local directory or ``s3://bucket/prefix`` (templated). Default: the
        ``AIRFLOW_MLOPS_ARTIFACT_ROOT`` environment variable, else ``$AIRFLOW_HOME/mlops-artifacts``.
    :param aws_conn_id: Airflow AWS connection used for an ``s3://`` root.
    :param allowed_roots: local directories and ``s3://`` prefixes the task may read user data
        from (the spec's effective allowed roots; the DAG factory passes them). Every location is
        checked when the task runs, after rendering, with symbolic links resolved, against these
        and against ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` where it is set
        (:func:`airflow_mlops.allowed_roots.check_runtime`); an explicit ``artifact_root`` too.
        None and no variable: not restricted.

    Fail fast: when a subclass's ``execute`` raises a project error whose ``retryable`` is False
    (a failed gate, an unsafe model, a poisoned batch, a blocked promotion, a spec, data or
    integrity error), the task fails at once without its retries; other errors retry as usual.
    """

    template_fields: tuple[str, ...] = ("artifact_root",)
    stage: str = "stage"
    ui_color = "#e8f0fe"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Apply :func:`fail_fast` to the ``execute`` of every subclass that defines one."""
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute):
            cls.execute = fail_fast(execute)  # type: ignore[method-assign]

    @fail_fast
    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Resume after a deferral; fail-fast applies to the resumed method too."""
        return super().resume_execution(next_method, next_kwargs, context)

    def __init__(
        self,
        *,
        pipeline: str,
        artifact_root: str | None = None,
        aws_conn_id: str | None = None,
        allowed_roots: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Each key of the returned dict is also its own XCom, so `task.output["model"]` works.
        self.multiple_outputs = True
        self.pipeline = pipeline
        self.artifact_root = artifact_root
        self.aws_conn_id = aws_conn_id
        self.allowed_roots = list(allowed_roots) if allowed_roots is not None else None

    #: Airflow connection of the MLflow tracking server (set by the stages that talk to MLflow).
    mlflow_conn_id: str = MLflowHook.default_conn_name
    #: Airflow connection of the signing identity, and its method (the stages that sign or verify).
    signing_conn_id: str = ModelSigningHook.default_conn_name
    signing_method: str | None = None
    #: Import paths the model scanner accepts beyond its allowlists (the stages that load a model).
    allowed_globals: Sequence[str] = ()

    @cached_property
    def mlflow_hook(self) -> MLflowHook:
        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @property
    def signing_hook(self) -> ModelSigningHook:
        """The hook of ``signing_conn_id`` (with ``signing_method``)."""
        return ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method)

    def trust(self) -> Any:
        """What verifiers trust (the signing connection read verify-only)."""
        return self.signing_hook.get_key(need_private=False).trust

    # -- trusted models from the registry ------------------------------------------------------

    def fetch_trusted_alias(self, client: Any, model_name: str, alias: str, dest: Path) -> Any:
        """``(version, model_dir)`` of ``model_name@alias`` downloaded, its signature and digest
        verified and its files scanned (:func:`~airflow_mlops.registry.mlflow_registry.fetch_trusted_champion`);
        None when the alias is not set."""
        from airflow_mlops.registry.mlflow_registry import fetch_trusted_champion

        return fetch_trusted_champion(
            client,
            model_name,
            alias,
            self.trust(),
            dest,
            allowed_globals=self.allowed_globals,
            pipeline=self.pipeline,
        )

    # -- store ---------------------------------------------------------------------------------

    def check_location(self, location: str, what: str = "data location") -> str:
        """``location`` checked against the allowed roots (see ``allowed_roots``); returns what to
        open: the resolved local path, or the ``s3://`` URI. Raises ``OutsideAllowedRootsError``
        (final: the task fails without retry)."""
        from airflow_mlops.allowed_roots import check_runtime

        return check_runtime(location, self.allowed_roots, what=what)

    def artifact_store(self) -> ArtifactStore:
        # The spec's artifacts.root, rendered and checked: the store is the checked (resolved)
        # folder, never the text again. The default is the deployment's.
        root = (
            self.check_location(self.artifact_root, "artifacts.root")
            if self.artifact_root
            else default_artifact_root()
        )
        client = None
        if root.startswith("s3://") and self.aws_conn_id:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return ArtifactStore(root, s3_client=client)

    def artifact_key(self, context: Any, name: str) -> str:
        return f"{ArtifactStore.run_prefix(self.pipeline, context['run_id'], self.stage)}/{name}"

    def airflow_run(self, context: Any) -> str:
        return f"{context['dag'].dag_id}/{context['run_id']}"

    def actor(self, context: Any) -> str:
        """Who acts, for the audit trail: this task try, and the user who triggered the run."""
        ti = context.get("ti") or context.get("task_instance")
        try_number = getattr(ti, "try_number", None)
        who = f"airflow:{self.airflow_run(context)}/{self.task_id}" + (f"#{try_number}" if try_number else "")
        user = getattr(context.get("dag_run"), "triggering_user_name", None)
        return f"{who} (triggered by {user})" if user else who

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=f"mlops-{self.stage}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def fetch(self, ref: ArtifactRef | dict[str, Any], dest: Path) -> Path:
        """Fetch an upstream artifact and check it is exactly what the producer wrote.

        The ref is read only from this pipeline's artifact store or from under the allowed roots
        (its URI resolved, links followed; the resolved file is what is read, no link followed):
        a ref can come from outside the run (an asset event, a model version's tag), and whoever
        writes it writes its sha256 too, so the digest alone says nothing about where it points.
        """
        store = self.artifact_store()
        parsed = ArtifactRef.from_dict(ref)
        source = store.locate(parsed.uri)
        if source is None:
            source = self.check_location(parsed.uri, f"artifact {parsed.uri} (outside the artifact store)")
        path = store.fetch(parsed, dest, source=None if source.startswith("s3://") else source)
        self._lineage_inputs.append((parsed.uri, parsed.sha256 or None))
        return path

    # -- lineage -------------------------------------------------------------------------------

    @cached_property
    def _lineage_inputs(self) -> list[tuple[str, str | None]]:
        return []

    def record_input(self, uri: str, sha256: str | None = None) -> None:
        """Note an input this task read from outside the artifact store (for OpenLineage)."""
        if "://" not in uri:
            uri = str(Path(uri).expanduser().resolve())
        elif uri.startswith("file://"):
            uri = str(Path(uri[len("file://") :]).resolve())
        self._lineage_inputs.append((uri, sha256))

    _lineage_result: Any = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The artifacts this task read and wrote, and the model version it registered, as
        OpenLineage datasets (see :mod:`airflow_mlops.operators.lineage`)."""
        from airflow_mlops.operators.lineage import dataset_for_uri, operator_lineage, outputs_of

        tracking_uri = None
        if isinstance(self._lineage_result, dict) and self._lineage_result.get("model_name"):
            try:
                tracking_uri = self.mlflow_hook.tracking_uri
            except Exception:  # lineage never fails a task
                tracking_uri = None
        inputs = [dataset_for_uri(uri, sha) for uri, sha in self._lineage_inputs]
        return operator_lineage(inputs, outputs_of(self._lineage_result, tracking_uri))

    def fetch_source(self, uri: str, dest: Path, what: str = "data location") -> Path:
        """Bring an input file (local path, ``file://`` or ``s3://`` URI) to ``dest``, once it is
        known to lie under the allowed roots; a local file is returned resolved, not copied.

        The path returned is resolved: read it with ``read_table(path, checked=True)``, which
        opens it without following a link swapped in since the check."""
        location = self.check_location(uri, what)
        if location.startswith("s3://"):
            store = self.artifact_store()
            bucket, key = ArtifactStore._split_s3(location)
            if key.rsplit("/", 1)[-1] in ("", ".", ".."):
                from airflow_mlops.exceptions import DataError

                raise DataError(f"{what} {uri} does not name an object: use s3://bucket/path/file")
            target = dest / key.rsplit("/", 1)[-1]
            store.s3.download_file(bucket, key, str(target))
            self.record_input(uri)
            return Path(os.path.realpath(target))
        self.record_input(location)
        return Path(location)
