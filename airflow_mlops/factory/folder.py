"""Load every spec in a folder into DAGs; a broken spec never hides the others."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecError

log = logging.getLogger(__name__)


def find_spec_files(folder: str | os.PathLike[str]) -> list[Path]:
    """``*.yaml``/``*.yml`` files below ``folder`` that declare ``apiVersion: mlops/...``, sorted."""
    from airflow_mlops.spec.loader import is_spec_document

    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    out = []
    for path in files:
        try:
            if is_spec_document(path.read_text(encoding="utf-8", errors="replace")):
                out.append(path)
        except OSError:
            continue
    return out


def load_dags_folder(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, SpecError]]:
    """Build the DAGs of every valid spec; return them with the errors of the broken ones."""
    from airflow_mlops.factory.builder import build_dags
    from airflow_mlops.spec.loader import load_spec

    dags: dict[str, Any] = {}
    errors: dict[str, SpecError] = {}
    for path in find_spec_files(folder):
        try:
            spec = load_spec(path)
            built = build_dags(spec, spec_path=path)
        except SpecError as exc:
            errors[str(path)] = exc
            log.error("%s", exc)
            continue
        for dag_id, dag in built.items():
            if dag_id in dags:
                from airflow_mlops.exceptions import SpecIssue

                errors[str(path)] = SpecError(
                    [SpecIssue(str(path), None, None, "pipeline", f"DAG id {dag_id!r} is already defined by another spec",
                               hint="give each spec its own `pipeline` name")]
                )
                continue
            dags[dag_id] = dag
    return dags, errors
