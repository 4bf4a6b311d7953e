"""Shared plumbing of the lifecycle operators: the artifact store, run-scoped keys, scratch space."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore

DEFAULT_ARTIFACT_ROOT_ENV = "AIRFLOW_MLOPS_ARTIFACT_ROOT"


def default_artifact_root() -> str:
    root = os.environ.get(DEFAULT_ARTIFACT_ROOT_ENV)
    if root:
        return root
    return str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "mlops-artifacts")


class MLOpsBaseOperator(BaseOperator):
    """Base of every lifecycle stage.

    :param pipeline: the pipeline name; the first segment of every artifact key.
    :param artifact_root: local directory or ``s3://bucket/prefix`` (templated). Default: the
        ``AIRFLOW_MLOPS_ARTIFACT_ROOT`` environment variable, else ``$AIRFLOW_HOME/mlops-artifacts``.
    :param aws_conn_id: Airflow AWS connection used for an ``s3://`` root.
    """

    template_fields: tuple[str, ...] = ("artifact_root",)
    stage: str = "stage"
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        pipeline: str,
        artifact_root: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Each key of the returned dict is also its own XCom, so `task.output["model"]` works.
        self.multiple_outputs = True
        self.pipeline = pipeline
        self.artifact_root = artifact_root
        self.aws_conn_id = aws_conn_id

    # -- store ---------------------------------------------------------------------------------

    def artifact_store(self) -> ArtifactStore:
        root = self.artifact_root or default_artifact_root()
        client = None
        if root.startswith("s3://") and self.aws_conn_id:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return ArtifactStore(root, s3_client=client)

    def artifact_key(self, context: Any, name: str) -> str:
        return f"{ArtifactStore.run_prefix(self.pipeline, context['run_id'], self.stage)}/{name}"

    def airflow_run(self, context: Any) -> str:
        return f"{context['dag'].dag_id}/{context['run_id']}"

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=f"mlops-{self.stage}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def fetch(self, ref: ArtifactRef | dict[str, Any], dest: Path) -> Path:
        """Fetch an upstream artifact and check it is exactly what the producer wrote."""
        return self.artifact_store().fetch(ref, dest)

    def fetch_source(self, uri: str, dest: Path) -> Path:
        """Bring an input file (local path or s3:// URI) to ``dest``."""
        if uri.startswith("s3://"):
            store = self.artifact_store()
            bucket, key = ArtifactStore._split_s3(uri)
            target = dest / key.rsplit("/", 1)[-1]
            store.s3.download_file(bucket, key, str(target))
            return target
        path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
        return path
