"""The shape of the package, from its import graph (docs/architecture.md draws it).

Every import counts, module-level or inside a function (a lazy import is still a dependency);
only imports under ``if TYPE_CHECKING:`` are left out. The rules:

- no import cycle between modules;
- packages import only the packages below them (``LAYERS``): the spec language and the factory on
  top, then operators (and the sensor and trigger), then hooks, the Airflow door (``compat``) and
  the domain packages, which never import Airflow, an operator, the factory or the spec;
- no module imports another package's ``_private`` name;
- operator modules are small, each ``execute`` fits a screen, and a module over 800 lines is
  named, with the reason it is one piece, in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "airflow_mlops"

# Leaf modules every package may use: errors, the vocabulary (labels, tasks, metrics), the artifact
# store and small utilities.
BASE = frozenset(
    {
        "exceptions",
        "digests",
        "redaction",
        "progress",
        "allowed_roots",
        "connections",
        "urls",
        "labels",
        "tasks",
        "metrics",
        "artifacts",
    }
)
DOMAIN = frozenset({"reports", "data", "security", "training", "registry", "drift", "retrain"})
# What each part of the package may import besides itself and BASE.
LAYERS: dict[str, frozenset[str]] = {
    "reports": frozenset(),
    # Retrain guardrails and reasons: standard library only, so any domain package may record why.
    "retrain": frozenset(),
    "data": frozenset({"reports"}),
    "security": frozenset({"retrain"}),
    "training": frozenset({"data", "security"}),
    "registry": frozenset({"reports", "data", "security", "training", "retrain"}),
    "drift": frozenset({"reports", "data", "training", "registry", "retrain"}),
    "compat": frozenset(),
    "hooks": frozenset({"security"}),
    # the federated run's trigger: the Flower CLI's parsing (training) and the SuperLink's connection
    "triggers": frozenset({"data", "compat", "training", "hooks"}),
    "sensors": frozenset({"data", "triggers", "compat"}),
    "operators": DOMAIN | {"hooks", "triggers", "compat"},
    "spec": frozenset({"data", "training", "compat"}),
    "factory": DOMAIN | {"spec", "operators", "sensors", "triggers", "hooks", "compat"},
    "ui": DOMAIN | {"hooks", "compat"},
    "cli": DOMAIN | {"spec", "factory", "hooks"},
    "provider_info": frozenset({"__init__"}),
}
MAX_OPERATOR_MODULE_LINES = 250
MAX_EXECUTE_LINES = 50  # a screen
MAX_MODULE_LINES = 800


def part(module: str) -> str:
    """``airflow_mlops.registry.gates`` -> ``registry``; ``airflow_mlops.metrics`` -> ``metrics``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@cache
def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        out[name] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports(module: str) -> Iterator[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` of every project import of ``module``."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub, None, node.lineno) if sub in modules() else (base, alias.name, node.lineno)


def project_target(name: str) -> str | None:
    """The project module an import resolves to (its nearest existing parent), or None."""
    while name and name not in modules():
        if "." not in name:
            return None
        name = name.rpartition(".")[0]
    return name or None


@cache
def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for module in modules():
        for target, _, _ in imports(module):
            resolved = project_target(target)
            if resolved is not None and resolved != module:
                edges[module].add(resolved)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_is_read_from_the_whole_package() -> None:
    assert len(modules()) > 150
    assert "airflow_mlops.registry.gates" in graph()["airflow_mlops.registry.evaluation"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(m) for m in modules()} - BASE - {"__init__"}
    assert parts == set(LAYERS), sorted(parts ^ set(LAYERS))


def upward(edges: dict[str, set[str]]) -> list[str]:
    """The imports of ``edges`` that go to a part of the package their layer may not import."""
    found = []
    for module, targets in edges.items():
        mine = part(module)
        if mine in BASE or mine == "__init__":
            allowed = BASE | {"__init__"}
        else:
            allowed = LAYERS[mine] | BASE | {mine, "__init__"}
        found += [f"{module} -> {t}" for t in sorted(targets) if part(t) not in allowed]
    return found


def test_packages_import_only_the_layers_below_them() -> None:
    assert upward(graph()) == []


def test_the_base_modules_form_no_cycle_and_import_no_package() -> None:
    for module, targets in graph().items():
        if part(module) in BASE:
            assert {part(t) for t in targets} <= BASE | {"__init__"}, (module, targets)


@pytest.mark.parametrize("layer", sorted(DOMAIN | BASE | {"compat"}))
def test_the_domain_never_imports_airflow_an_operator_or_the_factory(layer: str) -> None:
    """The domain packages, the vocabulary and reports run in the trainer, in tests and in
    serving without Airflow; compat imports Airflow only inside its accessors."""
    found = []
    for module in modules():
        if part(module) != layer:
            continue
        for target, _, line in imports(module):
            if layer != "compat" and (target == "airflow" or target.startswith("airflow.")):
                found.append(f"{module}:{line} imports {target}")
    assert found == []


def test_no_module_imports_a_private_name_of_another_package() -> None:
    found = []
    for module in modules():
        for target, name, line in imports(module):
            resolved = project_target(target)
            if resolved is None or name is None or not name.startswith("_") or name.startswith("__"):
                continue
            if part(resolved) != part(module):
                found.append(f"{module}:{line} imports {name} from {resolved}")
    assert found == []


def test_the_rules_catch_what_they_are_for() -> None:
    """An operator imported by the data package, or a base module importing a domain package, is
    seen as upward; the factory importing the spec is not."""
    edges = {
        "airflow_mlops.data.validation": {"airflow_mlops.operators.base", "airflow_mlops.labels"},
        "airflow_mlops.tasks": {"airflow_mlops.data.validation"},
        "airflow_mlops.factory.builder": {"airflow_mlops.spec.models"},
    }
    assert upward(edges) == [
        "airflow_mlops.data.validation -> airflow_mlops.operators.base",
        "airflow_mlops.tasks -> airflow_mlops.data.validation",
    ]


def test_operator_modules_are_small_and_each_execute_fits_a_screen() -> None:
    """An operator is an adapter: argument handling, fetching and storing, one domain call."""
    too_long = []
    for module, path in modules().items():
        if part(module) != "operators":
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_OPERATOR_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("execute"):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_EXECUTE_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []


def test_a_module_over_800_lines_is_named_in_the_architecture_notes() -> None:
    notes = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    one_piece = notes.split("**Modules that stay one piece**", 1)[1].split("\n\n", 1)[0]
    unexplained = [
        f"{path.relative_to(PACKAGE).as_posix()}: {n} lines"
        for path in modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
        and f"`{path.relative_to(PACKAGE).as_posix()}`" not in one_piece
    ]
    assert unexplained == []


# Domain and base modules whose tests need no module of their own: generated tables, constants and
# re-exports (their users' tests cover them).
NO_OWN_TESTS: dict[str, str] = {
    "connections.py": "constants",
    "urls.py": "a constant",
    "data/expectation_names.py": "a name table (its validation runs in test_validation.py)",
    "data/screen_defaults.py": "constants",
    "reports/style.py": "the stylesheet text",
    "reports/templates.py": "template text (rendered in test_page.py)",
    "training/model.py": "re-exports for models packaged by the first release",
    "security/scanning/model_formats.py": "a table",
    "security/scanning/sklearn_globals.py": "generated allowlist (test_generate.py checks it is current)",
    "security/scanning/torch_globals.py": "generated allowlist (test_generate.py checks it is current)",
    "security/scanning/xgboost_globals.py": "generated allowlist (test_generate.py checks it is current)",
    "security/scanning/lightgbm_globals.py": "generated allowlist (test_generate.py checks it is current)",
}


def test_each_domain_module_has_its_own_test_module() -> None:
    """Tests mirror the tree: ``airflow_mlops/<package>/<module>.py`` is tested in
    ``tests/unit/<package>/test_<module>.py`` (a subpackage's modules one folder down; a base
    module's in ``tests/unit/core/``). A name two packages share may carry the package as a
    prefix (``test_drift_figures.py``), and a big module's tests may be split
    (``test_<module>_<part>.py``)."""
    tests = ROOT / "tests" / "unit"
    missing = []
    for module, path in modules().items():
        layer = part(module)
        if path.name in ("__init__.py", "__main__.py") or (layer not in DOMAIN and layer not in BASE):
            continue
        rel = path.relative_to(PACKAGE)
        if rel.as_posix() in NO_OWN_TESTS:
            continue
        folder = tests / "core" if layer in BASE else tests.joinpath(*rel.parts[:-1])
        stem, parent = rel.stem, rel.parts[-2] if len(rel.parts) > 1 else ""
        names = [f"test_{stem}.py", f"test_{parent}_{stem}.py"]
        found = folder.is_dir() and any(
            f.name in names or f.name.startswith(f"test_{stem}_") for f in folder.glob("test_*.py")
        )
        if not found:
            missing.append(f"{rel.as_posix()}: has no test module")
    assert missing == [], (
        "each domain module is tested in tests/unit/<package>/test_<module>.py (or says why not in "
        "NO_OWN_TESTS)"
    )


def test_no_own_tests_names_only_existing_modules() -> None:
    known = {path.relative_to(PACKAGE).as_posix() for path in modules().values()}
    assert set(NO_OWN_TESTS) <= known, sorted(set(NO_OWN_TESTS) - known)
