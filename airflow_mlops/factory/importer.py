"""Spec files as first-class DAG files: per-spec import errors in the Airflow UI.

Two mechanisms, one behaviour (documented in docs/spec.md, "How specs reach Airflow"):

1. :class:`SpecDagImporter` is an Airflow DAG importer (``AbstractDagImporter``, AIP-85) for
   ``.yaml``/``.yml``. Where Airflow lets you configure importers, register it and a bare spec
   dropped into the dags folder becomes a DAG file of its own: its DAGs, or one import error
   naming the spec, line, column, key and fix. :func:`register_spec_importer` registers it in
   the running process (used by tools that build a ``DagBag`` in-process).
2. Airflow 3.3.2's DAG processor discovers only ``.py``/``.zip`` files, so the loader
   ``dags/mlops_specs.py`` builds every spec and calls :func:`report_spec_errors`: the broken
   specs are added to the import result of the file being parsed, each under *its own* path
   (``DagImportError.file_path``), so ``airflow dags list-import-errors`` and the UI list
   ``specs/broken.yaml`` with its message, and the good specs' DAGs still load.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC
from pathlib import Path
from typing import Any

from airflow_mlops import compat
from airflow_mlops.exceptions import SpecError

log = logging.getLogger(__name__)

try:  # Airflow >= 3.3 (experimental importer registry)
    from airflow_mlops.compat import AbstractDagImporter, DagImportError, DagImportResult

    HAVE_IMPORTERS = True
except ImportError:  # pragma: no cover - older Airflow: the loader .py path still works
    AbstractDagImporter = object  # type: ignore[assignment,misc]
    HAVE_IMPORTERS = False


def _import_error(exc: SpecError, file_path: str) -> Any:
    first = exc.issues[0]
    return DagImportError(
        file_path=file_path,
        message=str(exc),
        error_type="spec",
        line_number=first.line,
        column_number=first.column,
        suggestion=first.hint,
    )


class SpecDagImporter(AbstractDagImporter):
    """Imports airflow-mlops pipeline specs (``apiVersion: mlops/v1``) as DAG files."""

    @classmethod
    def supported_extensions(cls) -> list[str]:
        return [".yaml", ".yml"]

    def list_dag_files(self, directory: str | os.PathLike[str], safe_mode: bool = True) -> Any:
        from airflow_mlops.factory.folder import find_spec_files

        for path in find_spec_files(directory):
            yield str(path)

    def import_file(
        self,
        file_path: str | Path,
        *,
        bundle_path: Path | None = None,
        bundle_name: str | None = None,
        safe_mode: bool = True,
    ) -> Any:
        from airflow_mlops.factory.folder import SpecFolderLoader

        relative = self.get_relative_path(file_path, bundle_path)
        result = DagImportResult(file_path=relative)
        roots = [str(bundle_path)] if bundle_path else None
        try:
            dags = SpecFolderLoader(default_allowed_roots=roots).build(Path(file_path))
        except SpecError as exc:
            result.errors.append(_import_error(exc, relative))
            return result
        for dag in dags.values():
            dag.fileloc = str(file_path)
            dag.relative_fileloc = relative
        result.dags.extend(dags.values())
        return result


def register_spec_importer() -> bool:
    """Register :class:`SpecDagImporter` for ``.yaml``/``.yml`` in this process (idempotent)."""
    if not HAVE_IMPORTERS:
        return False
    registry = compat.dag_importer_registry()
    if not isinstance(registry.get_importer("spec.yaml"), SpecDagImporter):
        registry.register(SpecDagImporter())
    return True


def report_spec_errors(errors: dict[str, SpecError], loader_file: str) -> int:
    """Report each broken spec as an import error of its own file; returns how many were attached.

    Every spec file read is also recorded as parsed by the running ``DagBag`` (when there is
    one), so the error of a spec that was fixed is cleared. Outside a DAG processor / DagBag
    parse (e.g. ``python dags/mlops_specs.py``) the errors are logged instead.
    """
    if HAVE_IMPORTERS:
        bag = compat.find_on_stack("self", compat.dag_bag_class())
        if bag is not None:
            from datetime import datetime

            for parsed in getattr(errors, "parsed_files", ()):
                mtime = datetime.fromtimestamp(os.path.getmtime(parsed), tz=UTC)
                bag.file_last_changed.setdefault(str(Path(parsed).resolve()), mtime)
    if not errors:
        return 0
    result = compat.find_on_stack("result", DagImportResult) if HAVE_IMPORTERS else None
    if result is None:
        for exc in errors.values():
            log.error("%s", exc)
        return 0
    # The bundle root: the loader's absolute path minus its path relative to the bundle.
    loader = Path(loader_file).resolve()
    relative_loader = Path(result.file_path)
    root = loader
    for _ in relative_loader.parts:
        root = root.parent
    for spec_path, exc in sorted(errors.items()):
        relative = str(Path(spec_path).resolve())
        if not relative_loader.is_absolute():  # paths relative to the bundle, like Airflow's own
            try:
                relative = str(Path(spec_path).resolve().relative_to(root))
            except ValueError:
                pass
        result.errors.append(_import_error(exc, relative))
    return len(errors)
