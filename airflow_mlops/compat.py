"""Airflow's private and version-dependent APIs: the one place this package reaches them.

Everything here is an Airflow internal (a ``_``-named module or name, ``airflow.dag_processing``,
``airflow.models``, ``airflow.utils``, ``airflow._shared``, ``airflow.api_fastapi``,
``airflow.sdk.execution_time``, ``airflow.sdk.definitions._internal``,
``airflow.sdk.definitions.context``, ``airflow.sdk.plugins_manager``,
``airflow.triggers.shared_stream``) or a walk of Airflow's call stack. Each accessor names the
versions it was checked against and what to do when it moves; ``tests/unit/core/test_compat.py``
resolves every accessor on the installed Airflow (a move fails there, by the accessor's name) and
checks that no other module of the package imports these modules or walks the stack.

Checked against: apache-airflow 3.3.2 (apache-airflow-core 3.3.2), apache-airflow-task-sdk 1.3.2.
None of the internals below comes from a provider; the providers' public hooks and operators
(amazon 9.39.0, cncf-kubernetes 10.25.0, docker 4.6.1, openlineage 2.20.3, standard 1.21.0)
are imported where they are used.

Importing this module is cheap: it imports no Airflow module at module level. Each accessor
imports inside its body, on first use (the DAG processor parses specs with this package, and
``tests/unit/factory/test_dag_parsing.py`` checks what that imports).

Public Airflow API (``airflow.sdk`` top-level names, ``airflow.triggers.base``,
``airflow.plugins_manager.AirflowPlugin``, ``airflow.configuration.conf``, the providers'
operators and hooks) stays where it is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.dag_processing.importers import AbstractDagImporter as AbstractDagImporter
    from airflow.dag_processing.importers import DagImportError as DagImportError
    from airflow.dag_processing.importers import DagImportResult as DagImportResult
    from airflow.triggers.shared_stream import AdvanceItem as AdvanceItem
    from airflow.triggers.shared_stream import SharedStreamProducer as SharedStreamProducer

#: Classes this package subclasses or builds, resolved on first access
#: (``from airflow_mlops.compat import AdvanceItem`` imports Airflow's module then, not before).
#: A name whose module is missing raises ImportError, as a plain ``from ... import`` would.
LAZY_CLASSES: dict[str, str] = {
    # Airflow's DAG importer registry (AIP-85): experimental in Airflow 3.3, checked on 3.3.2.
    # Used fields: ``DagImportResult(file_path).errors/.dags/.file_path``, ``DagImportError(
    # file_path, message, error_type, line_number, column_number, suggestion)``, and
    # ``AbstractDagImporter.get_relative_path``. If they move: follow Airflow's module; an
    # ImportError here keeps the loader ``dags/mlops_specs.py`` working (errors are logged).
    "AbstractDagImporter": "airflow.dag_processing.importers",
    "DagImportError": "airflow.dag_processing.importers",
    "DagImportResult": "airflow.dag_processing.importers",
    # A producer that polls once for every event trigger with the same ``shared_stream_key``,
    # and the items its ``advance`` receives (``broker_payload``, ``outcome.is_clean``); checked
    # on Airflow 3.3.2. If they move: follow them in ``airflow.triggers``.
    "SharedStreamProducer": "airflow.triggers.shared_stream",
    "AdvanceItem": "airflow.triggers.shared_stream",
}


def __getattr__(name: str) -> Any:
    module = LAZY_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AbstractDagImporter",
    "AdvanceItem",
    "DagImportError",
    "DagImportResult",
    "SharedStreamProducer",
    "airflowignore_rule",
    "dag_bag_class",
    "dag_details",
    "dag_importer_registry",
    "dag_xcom_entity",
    "find_on_stack",
    "get_auth_manager",
    "get_user_dependency",
    "integrate_macros_plugins",
    "read_task_xcom",
    "template_context_keys",
    "template_filter_names",
    "walk_dag_folder",
    "xcom_backend",
]


# --- Templates (spec/templates.py) -------------------------------------------------------------


@cache
def template_context_keys() -> frozenset[str]:
    """The keys of a task's template context.

    ``airflow.sdk.definitions.context.KNOWN_CONTEXT_KEYS`` (a set of str); checked on Task SDK
    1.3.2 (Airflow 3.3.2). If it moves: look for the ``Context`` TypedDict's keys in the Task SDK
    (``airflow.sdk.definitions.context.Context.__annotations__`` is the same set).
    """
    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

    return frozenset(KNOWN_CONTEXT_KEYS)


@cache
def template_filter_names() -> frozenset[str]:
    """The names of Airflow's own Jinja filters (``ds``, ``ts``...).

    ``airflow.sdk.definitions._internal.templater.FILTERS`` (a dict name -> function); checked
    on Task SDK 1.3.2 (Airflow 3.3.2). If it moves: the filters of the environment
    ``create_template_env`` builds in the same module (``env.filters`` minus Jinja's built-ins).
    """
    from airflow.sdk.definitions._internal.templater import FILTERS

    return frozenset(FILTERS)


def integrate_macros_plugins() -> None:
    """Add the plugins' macros to ``airflow.sdk.macros`` (loads the plugins).

    ``airflow.sdk.plugins_manager.integrate_macros_plugins``; checked on Task SDK 1.3.2 (Airflow
    3.3.2). If it moves: find where the
    Task SDK fills ``macros.<plugin name>`` before rendering a template and call that.
    """
    from airflow.sdk.plugins_manager import integrate_macros_plugins as integrate

    integrate()


# --- DAG importers and the parse (factory/importer.py) -----------------------------------------


def dag_importer_registry() -> Any:
    """Airflow's registry of DAG importers by file extension (AIP-85):
    ``airflow.dag_processing.importers.get_importer_registry()`` (its ``get_importer(path)``
    and ``register(importer)``); experimental in Airflow 3.3, checked on 3.3.2. If it moves:
    follow it (only tools that build a ``DagBag`` in-process register the spec importer)."""
    from airflow.dag_processing.importers import get_importer_registry

    return get_importer_registry()


def dag_bag_class() -> type:
    """``airflow.dag_processing.dagbag.DagBag`` (checked on Airflow 3.3.2). Its ``file_last_changed`` dict (path -> mtime) is written by
    ``report_spec_errors``; if that attribute goes, drop the write (a fixed spec's error then
    clears on the loader file's next change only)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag


def find_on_stack(name: str, kind: Any) -> Any:
    """The nearest local variable ``name`` of type ``kind`` up the caller's stack, else None.

    Used to reach the ``DagBag`` (its local ``self``) and the ``DagImportResult`` (its local
    ``result``) of the parse that runs ``dags/mlops_specs.py``: Airflow passes neither to a DAG
    file. Checked on Airflow 3.3.2 (``DagBag.process_file`` -> ``PythonDagImporter.import_file``).
    If Airflow renames those locals, the errors are logged instead of listed (a unit test on the
    installed Airflow, ``tests/unit/factory/test_importer.py``, fails first).
    """
    frame: Any = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get(name)
        if isinstance(candidate, kind):
            return candidate
        frame = frame.f_back
    return None


# --- .airflowignore (factory/folder.py) ---------------------------------------------------------


def walk_dag_folder() -> Callable[..., Any] | None:
    """Airflow's walk of a DAG folder that honours ``.airflowignore``, or None if it moved.

    ``airflow._shared.module_loading.file_discovery.find_path_from_directory(root, ignore_file_name,
    syntax)``; checked on Airflow 3.3.2. If it moves: point
    at its new home; None makes the spec folder be read without ``.airflowignore`` support.
    """
    try:
        from airflow._shared.module_loading.file_discovery import find_path_from_directory
    except ImportError:  # another Airflow layout
        return None
    return find_path_from_directory


def airflowignore_rule(syntax: str) -> Any:
    """The ``.airflowignore`` rule class of ``syntax`` (``"regexp"`` or ``"glob"``).

    ``_RegexpIgnoreRule`` / ``_GlobIgnoreRule`` of ``airflow._shared.module_loading.file_discovery``
    (private; their ``compile(pattern, base_dir, definition_file)`` and ``match(path, rules)``
    are used); checked on Airflow 3.3.2. If they move: follow them, or copy the two small classes.
    """
    from airflow._shared.module_loading import file_discovery

    return file_discovery._RegexpIgnoreRule if syntax == "regexp" else file_discovery._GlobIgnoreRule


# --- The api-server (ui/app.py) -----------------------------------------------------------------


def get_auth_manager() -> Any:
    """The api-server's auth manager: ``airflow.api_fastapi.app.get_auth_manager()``; checked on
    Airflow 3.3.2. If it moves: follow it (its ``is_authorized_dag(method, access_entity,
    details, user)`` is the call the Models view makes)."""
    from airflow.api_fastapi.app import get_auth_manager as current

    return current()


def get_user_dependency() -> Callable[..., Any]:
    """The FastAPI dependency that authenticates a request (JWT header or ``_token`` cookie):
    ``airflow.api_fastapi.core_api.security.get_user``; checked on Airflow 3.3.2. The function
    itself is returned (not a wrapper) so ``app.dependency_overrides[get_user]`` works."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def dag_details(dag_id: str) -> Any:
    """``DagDetails(id=dag_id)`` of ``airflow.api_fastapi.auth.managers.models.resource_details``;
    checked on Airflow 3.3.2."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return DagDetails(id=dag_id)


def dag_xcom_entity() -> Any:
    """``DagAccessEntity.XCOM`` of ``airflow.api_fastapi.auth.managers.models.resource_details``;
    checked on Airflow 3.3.2."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    return DagAccessEntity.XCOM


@contextmanager
def _session() -> Iterator[Any]:
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session


def read_task_xcom(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    """The XCom ``key`` of one task instance (None when it pushed none), read from the metadata
    database as the api-server's own XCom routes read it.

    ``airflow.models.xcom.XComModel.get_many(...)`` / ``deserialize_value`` in
    ``airflow.utils.session.create_session()``; checked on Airflow 3.3.2. If they move: follow
    the api-server's ``GET .../xcomEntries/{key}`` route (``core_api/routes/public/xcom.py``).
    """
    from airflow.models.xcom import XComModel

    with _session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index, limit=1
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


# --- Task extra links (operators/links.py) ------------------------------------------------------


def xcom_backend() -> Any:
    """The configured XCom backend of a worker: ``airflow.sdk.execution_time.xcom.XCom`` (its
    ``get_value(ti_key=..., key=...)``); checked on Task SDK 1.3.2 (Airflow 3.3.2). If it
    moves: follow it (``airflow.sdk.BaseXCom`` is the public base class, not the configured one)."""
    from airflow.sdk.execution_time.xcom import XCom

    return XCom
