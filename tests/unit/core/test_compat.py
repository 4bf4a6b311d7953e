"""Airflow's internals are reached through ``airflow_mlops.compat`` only, and resolve here.

Each accessor is resolved on the installed Airflow: a new Airflow that moves one fails here,
under the accessor's name. The AST walk keeps every other module off Airflow's internals.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import compat

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "airflow_mlops"

#: Airflow modules (and their submodules) that only compat.py may import.
INTERNAL = (
    "airflow.dag_processing",
    "airflow.models",
    "airflow.utils",
    "airflow._shared",
    "airflow.api_fastapi",
    "airflow.sdk.execution_time",
    "airflow.sdk.definitions._internal",
    "airflow.sdk.definitions.context",
    "airflow.sdk.plugins_manager",
    "airflow.triggers.shared_stream",
)
#: Modules outside this check's owner that still import an internal directly: each entry is
#: the exact set still allowed, to be emptied when the module routes through compat.


def _is_internal(module: str) -> bool:
    if not (module == "airflow" or module.startswith("airflow.")):
        return False
    if any(part.startswith("_") for part in module.split(".")):
        return True
    return any(module == m or module.startswith(m + ".") for m in INTERNAL)


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement names (module level, in functions, under TYPE_CHECKING),
    with ``from a import b`` also counted as ``a.b`` (``b`` may be a submodule)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def _calls_getframe(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("_getframe", "currentframe"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module in ("sys", "inspect"):
            lines += [node.lineno for a in node.names if a.name in ("_getframe", "currentframe")]
    return lines


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "compat.py" or p.parent != PACKAGE)


def test_no_module_but_compat_imports_airflow_internals() -> None:
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if _is_internal(module):
                found.append(f"{rel}:{line}: {module}")
    assert found == [], "import Airflow internals through airflow_mlops.compat:\n" + "\n".join(found)


def test_no_module_but_compat_walks_the_stack() -> None:
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{line}"
        for path in _modules()
        for line in _calls_getframe(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert found == [], "walk Airflow's stack through airflow_mlops.compat.find_on_stack:\n" + "\n".join(
        found
    )


def test_the_ast_walk_sees_function_level_and_type_checking_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from airflow.models.xcom import XComModel\n"
        "def f():\n    import airflow._shared.module_loading\n    from airflow.sdk import macros\n"
        "    return sys._getframe(1)\n"
    )
    internal = [m for _, m in _imports(tree) if _is_internal(m)]
    assert "airflow.models.xcom" in internal and "airflow._shared.module_loading" in internal
    assert not _is_internal("airflow.sdk") and not _is_internal("airflow.triggers.base")
    assert _is_internal("airflow.sdk.definitions._internal.templater")
    assert _calls_getframe(tree) == [7]


# --- each accessor resolves on the installed Airflow ---------------------------------------------


def _resolve(name: str, get: Callable[[], Any]) -> Any:
    try:
        return get()
    except Exception as exc:  # the accessor's name first: the line to fix in compat.py
        pytest.fail(f"airflow_mlops.compat.{name} no longer resolves on this Airflow: {exc!r}")


@pytest.mark.parametrize("name", sorted(compat.LAZY_CLASSES))
def test_lazy_class_resolves(name: str) -> None:
    value = _resolve(name, lambda: getattr(compat, name))
    assert inspect.isclass(value) and value.__name__ == name, name
    assert value.__module__.startswith(compat.LAZY_CLASSES[name]), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = compat.NoSuchThing  # type: ignore[attr-defined]


def test_template_names() -> None:
    keys = _resolve("template_context_keys", compat.template_context_keys)
    filters = _resolve("template_filter_names", compat.template_filter_names)
    assert isinstance(keys, frozenset) and {"ds", "ti", "dag_run", "params"} <= keys
    assert isinstance(filters, frozenset) and {"ds", "ts"} <= filters


def test_integrate_macros_plugins() -> None:
    assert _resolve("integrate_macros_plugins", compat.integrate_macros_plugins) is None


def test_dag_importer_registry() -> None:
    registry = _resolve("dag_importer_registry", compat.dag_importer_registry)
    assert callable(registry.get_importer) and callable(registry.register)
    assert registry.get_importer("dag.py") is not None


def test_dag_bag_class() -> None:
    bag = _resolve("dag_bag_class", compat.dag_bag_class)
    assert inspect.isclass(bag) and bag.__name__ == "DagBag"
    assert "file_last_changed" in inspect.getsource(bag.__init__)


def test_find_on_stack() -> None:
    class Marker:
        pass

    def inner() -> Any:
        return compat.find_on_stack("target", Marker)

    target = Marker()
    assert inner() is target
    assert compat.find_on_stack("target", int) is None


def test_airflowignore_walk_and_rules(tmp_path: Path) -> None:
    walk = _resolve("walk_dag_folder", compat.walk_dag_folder)
    assert callable(walk)
    (tmp_path / "keep.yaml").write_text("a: 1\n")
    (tmp_path / "skip.yaml").write_text("a: 1\n")
    (tmp_path / ".airflowignore").write_text("skip.yaml\n")
    found = {Path(p).name for p in walk(tmp_path, ".airflowignore", "glob")}
    assert "keep.yaml" in found and "skip.yaml" not in found
    for syntax in ("glob", "regexp"):
        rule = _resolve("airflowignore_rule", lambda syntax=syntax: compat.airflowignore_rule(syntax))
        compiled = rule.compile("skip", tmp_path, tmp_path / ".airflowignore")
        assert compiled is not None and callable(rule.match), syntax


def test_api_server_accessors() -> None:
    get_user = _resolve("get_user_dependency", compat.get_user_dependency)
    assert callable(get_user) and get_user.__name__ == "get_user"
    details = _resolve("dag_details", lambda: compat.dag_details("p__train"))
    assert type(details).__name__ == "DagDetails" and details.id == "p__train"
    entity = _resolve("dag_xcom_entity", compat.dag_xcom_entity)
    assert type(entity).__name__ == "DagAccessEntity" and entity.name == "XCOM"
    from airflow.api_fastapi import app as api_app  # the accessor's target, for a cheap check

    assert callable(api_app.get_auth_manager), "get_auth_manager"


def test_read_task_xcom_parts() -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    assert callable(XComModel.get_many) and callable(XComModel.deserialize_value), "read_task_xcom"
    assert callable(create_session), "read_task_xcom"
    assert list(inspect.signature(compat.read_task_xcom).parameters) == [
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        "key",
    ]


def test_xcom_backend() -> None:
    xcom = _resolve("xcom_backend", compat.xcom_backend)
    assert inspect.isclass(xcom) and callable(xcom.get_value)


def test_importing_compat_imports_no_airflow_module() -> None:
    probe = (
        "import sys, airflow_mlops; before = set(sys.modules); import airflow_mlops.compat; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'airflow'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
