"""Checks that need the whole spec (and its surroundings), run after the models validated it.

Each returns :class:`SpecIssue` s located at the exact key: task-graph problems (duplicate ids,
unknown ``after`` references, cycles), entrypoints that cannot be imported, and data paths
outside the allowed roots.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecIssue
from airflow_mlops.spec.models import MONITOR_REFERENCE_KEYWORDS, STAGES, PipelineSpec

# Built-in task ids of the training DAG, by stage.
STAGE_TASK_IDS: dict[str, str] = {
    "validate": "data.validate",
    "screen": "data.screen",
    "train": "training.package",
    "scan": "gates.scan",
    "evaluate": "gates.evaluate",
    "sign": "release.sign",
    "register": "release.register",
    "promote": "release.promote",
}
assert tuple(STAGE_TASK_IDS) == STAGES

Locate = Callable[[tuple[str | int, ...]], tuple[int | None, int | None]]


def _suggest(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_steps(spec: PipelineSpec, file: str, locate: Locate) -> list[SpecIssue]:
    """Duplicate ids, unknown references and cycles among ``steps``."""
    issues: list[SpecIssue] = []
    builtin = set(STAGE_TASK_IDS) | set(STAGE_TASK_IDS.values())
    seen: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        line, col = locate(("steps", index, "id"))
        if step.id in builtin:
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    f"steps[{index}].id",
                    f"step id {step.id!r} is a built-in stage or task of the DAG",
                    step.id,
                    "choose another id",
                )
            )
        elif step.id in seen:
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    f"steps[{index}].id",
                    f"duplicate step id {step.id!r}; steps[{seen[step.id]}] has it already",
                    step.id,
                    "every step needs its own id",
                )
            )
        else:
            seen[step.id] = index
    known = builtin | set(seen)
    for index, step in enumerate(spec.steps):
        for j, ref in enumerate(step.after):
            if ref not in known:
                line, col = locate(("steps", index, "after", j))
                issues.append(
                    SpecIssue(
                        file,
                        line,
                        col,
                        f"steps[{index}].after[{j}]",
                        f"unknown task {ref!r}{_suggest(ref, known)}",
                        None,
                        "use a stage (" + ", ".join(STAGES) + "), a task id such as "
                        "release.promote, or another step's id",
                    )
                )
    cycle = _find_cycle({s.id: [a for a in s.after if a in seen] for s in spec.steps})
    if cycle:
        index = seen[cycle[0]]
        line, col = locate(("steps", index, "after"))
        issues.append(
            SpecIssue(
                file,
                line,
                col,
                f"steps[{index}].after",
                "the steps form a cycle: " + " -> ".join([*cycle, cycle[0]]),
                None,
                "remove one of these `after` references",
            )
        )
    return issues


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``node -> [depends on]`` as a list of nodes, or None. Deterministic."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def resolve_entrypoint(path: str) -> Any:
    """Import ``module.attr`` or ``module:attr``; raise ImportError with a precise reason."""
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep:
        raise ImportError(f"{path!r} is not a dotted import path")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ImportError(f"module {module_name!r} is not installed")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise ImportError(f"module {module_name!r} has no {attr!r}{_suggest(attr, public)}")
    return getattr(module, attr)


def check_entrypoints(spec: PipelineSpec, file: str, locate: Locate) -> list[SpecIssue]:
    """Every operator / notifier / callback named in the spec can be imported and is the right kind."""
    from airflow.sdk import BaseNotifier, BaseOperator

    wanted: list[tuple[tuple[str | int, ...], str, type | None]] = []
    for i, step in enumerate(spec.steps):
        wanted.append((("steps", i, "operator"), step.operator, BaseOperator))
    for path, notify in _notifications(spec):
        for event in ("on_failure", "on_retry", "on_success"):
            for j, item in enumerate(getattr(notify, event)):
                wanted.append(((*path, "notify", event, j, "notifier"), item.notifier, BaseNotifier))
    if spec.deadline:
        wanted.append((("deadline", "callback"), spec.deadline.callback, None))
    issues = []
    for path, target, base in wanted:
        line, col = locate(path)
        dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        try:
            obj = resolve_entrypoint(target)
        except Exception as exc:
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    dotted,
                    f"cannot import {target!r}: {exc}",
                    None,
                    "install the package that provides it, or fix the import path",
                )
            )
            continue
        if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    dotted,
                    f"{target!r} is not an Airflow {base.__name__} subclass",
                    None,
                    None,
                )
            )
    return issues


def _notifications(spec: PipelineSpec) -> list[tuple[tuple[str | int, ...], Any]]:
    found: list[tuple[tuple[str | int, ...], Any]] = []
    if spec.defaults.notify:
        found.append((("defaults",), spec.defaults.notify))
    for stage, settings in spec.stages.items():
        if settings.notify:
            found.append((("stages", stage), settings.notify))
    for i, step in enumerate(spec.steps):
        if step.settings and step.settings.notify:
            found.append((("steps", i, "settings"), step.settings.notify))
    return found


def allowed_roots_from_env() -> list[str]:
    raw = os.environ.get("AIRFLOW_MLOPS_ALLOWED_ROOTS", "")
    return [r.strip() for r in raw.replace(os.pathsep, ",").split(",") if r.strip()]


def _static_prefix(value: str) -> str:
    """The part of a templated location before the first template expression."""
    return value.split("{{", 1)[0].split("{%", 1)[0]


def _within(location: str, root: str) -> bool:
    if root.startswith("s3://") or location.startswith("s3://"):
        return location.startswith(root.rstrip("/") + "/") or location == root
    loc = Path(os.path.normpath(location))
    base = Path(os.path.normpath(os.path.expanduser(root)))
    return loc == base or base in loc.parents


def check_paths(
    spec: PipelineSpec, file: str, locate: Locate, *, base: Path | None, allowed_roots: list[str]
) -> list[SpecIssue]:
    """Data and artifact locations must lie under an allowed root.

    Local paths are checked after resolving ``..`` (relative paths are relative to the spec's
    folder); ``s3://`` URIs are checked only when an ``s3://`` root is configured. Templated
    locations are checked on their fixed prefix.
    """
    if not allowed_roots:
        return []
    s3_roots = [r for r in allowed_roots if r.startswith("s3://")]
    issues = []
    monitoring = spec.monitoring
    locations: list[tuple[tuple[str, ...], str | None]] = [
        (("data", "source"), spec.data.source),
        (("data", "reference"), spec.data.reference),
        (("data", "event_source"), spec.data.event_source),
        (("data", "new_data", "location"), spec.data.new_data.location if spec.data.new_data else None),
        (("artifacts", "root"), spec.artifacts.root),
        (("monitoring", "source"), monitoring.source if monitoring else None),
    ]
    if monitoring is not None and monitoring.reference not in MONITOR_REFERENCE_KEYWORDS:
        locations.append((("monitoring", "reference"), monitoring.reference))
    for path, value in locations:
        if value is None:
            continue
        prefix = _static_prefix(value)
        if "://" in prefix and not prefix.startswith("file://"):
            if not prefix.startswith("s3://") or not s3_roots:
                continue
            location = prefix
        else:
            local = prefix[len("file://") :] if prefix.startswith("file://") else prefix
            local = os.path.expanduser(local)
            location = local if os.path.isabs(local) or base is None else str(base / local)
        if not any(_within(location, root) for root in allowed_roots):
            line, col = locate(path)
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    ".".join(path),
                    f"{value!r} is outside the allowed roots",
                    None,
                    "allowed: "
                    + ", ".join(allowed_roots)
                    + " (set AIRFLOW_MLOPS_ALLOWED_ROOTS or `allowed_roots` in the folder's "
                    "mlops-defaults.yaml)",
                )
            )
    return issues
