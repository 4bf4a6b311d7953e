"""Checks that need the whole spec (and its surroundings), run after the models validated it.

Each returns :class:`SpecIssue` s located at the exact key: task-graph problems (duplicate ids,
unknown ``after`` references, cycles), entrypoints that cannot be imported, and data paths
outside the allowed roots.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecIssue
from airflow_mlops.spec.models import MONITOR_REFERENCE_KEYWORDS, STAGES, PipelineSpec
from airflow_mlops.spec.sections.base import STAGE_TASK_IDS

# Built-in task ids of the training DAG, by stage.

Locate = Callable[[tuple[str | int, ...]], tuple[int | None, int | None]]


def _suggest(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def closest_argument(name: str, accepted: Iterable[str]) -> str | None:
    """The accepted argument ``name`` most likely meant: a close spelling, else the one it begins
    (``min`` -> ``min_value``)."""
    choices = list(accepted)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    return next((c for c in choices if len(name) >= 3 and c.startswith(name)), None)


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
    """A cycle in ``node -> [depends on]`` as a list of nodes (each waits for the next), or None.

    Deterministic: nodes are fed in sorted order and the cycle starts at its smallest id.
    """
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for node in sorted(edges):
        sorter.add(node, *sorted(edges[node]))
    try:
        sorter.prepare()
    except CycleError as exc:
        # graphlib lists the cycle in run order, first node repeated last: [a, c, b, a] means
        # a runs before c before b before a. Reversed, each node waits for the next.
        cycle = list(reversed(exc.args[1][:-1]))
        start = cycle.index(min(cycle))
        return cycle[start:] + cycle[:start]
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
    """Every operator / notifier / callback named in the spec can be imported and is the right kind,
    and the arguments given to operators and notifiers are ones they accept."""
    from airflow.sdk import BaseNotifier, BaseOperator

    Wanted = tuple[tuple[str | int, ...], str, type | None, dict[str, Any] | None]
    wanted: list[Wanted] = []
    for i, step in enumerate(spec.steps):
        wanted.append((("steps", i, "operator"), step.operator, BaseOperator, step.args))
    for path, notify in _notifications(spec):
        for event in ("on_failure", "on_retry", "on_success"):
            for j, item in enumerate(getattr(notify, event)):
                wanted.append(
                    ((*path, "notify", event, j, "notifier"), item.notifier, BaseNotifier, item.args)
                )
    if spec.deadline:
        wanted.append((("deadline", "callback"), spec.deadline.callback, None, None))
    issues = []
    if spec.deadline:
        issues += _check_deadline_callback(spec, file, locate)
    for path, target, base, args in wanted:
        line, col = locate(path)
        dotted = _dotted(path)
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
            continue
        if args is not None and isinstance(obj, type):
            issues += _check_arguments(obj, args, path[:-1], file, locate, operator=base is BaseOperator)
    return issues


def _check_deadline_callback(spec: PipelineSpec, file: str, locate: Locate) -> list[SpecIssue]:
    """The deadline callback is what Airflow's callback of its mode accepts: awaitable for `async`
    (it runs in the triggerer), callable for `sync`. An import failure is reported elsewhere."""
    assert spec.deadline is not None
    deadline = spec.deadline
    try:
        obj = resolve_entrypoint(deadline.callback)
    except Exception:
        return []
    if deadline.mode == "async":
        ok = inspect.iscoroutinefunction(obj) or hasattr(obj, "__await__")
        wanted, hint = (
            "an awaitable (an `async def` function or a notifier class)",
            "make it `async def`, or set `deadline.mode: sync` to run it on an executor",
        )
    else:
        ok = callable(obj)
        wanted, hint = "a callable", "name a function or a notifier class"
    if ok:
        return []
    line, col = locate(("deadline", "callback"))
    return [
        SpecIssue(
            file,
            line,
            col,
            "deadline.callback",
            f"{deadline.callback!r} is not {wanted}, which {'an' if deadline.mode == 'async' else 'a'} "
            f"`{deadline.mode}` deadline callback must be",
            None,
            hint,
        )
    ]


_CALLABLE_ANNOTATION = re.compile(r"\b(Callable|Callback|TaskStateChangeCallback\w*)\b")


@lru_cache(maxsize=512)
def callable_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments of ``cls(...)`` that take only Python callables (by annotation,
    e.g. ``python_callable: Callable``): nothing a YAML value can be."""
    found: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        for p in params:
            text = p.annotation if isinstance(p.annotation, str) else repr(p.annotation)
            if (
                p.annotation is not p.empty
                and _CALLABLE_ANNOTATION.search(text)
                and not re.search(r"\bstr\b", text)
            ):
                found.add(p.name)
    return frozenset(found)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")


# Set by the factory on every step: not for `args`.
FACTORY_ARGUMENTS = {"task_id": "steps[].id", "dag": None, "task_group": None}


@lru_cache(maxsize=512)
def accepted_arguments(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """``(accepted, required, open)``: the keyword arguments ``cls(...)`` takes, statically.

    Walks the ``__init__`` of every class in the MRO, as the arguments travel through
    ``**kwargs`` to ``super().__init__``; a signature without ``**kwargs`` ends the walk. Airflow's
    ``BaseOperator`` takes ``**kwargs`` but raises on any it does not know ("Invalid arguments
    were passed"), so it ends the walk too, as does ``object``. ``open`` is True when some class
    takes any keyword (the walk never ended). ``required``: arguments without a default of the
    class's own ``__init__`` (Airflow checks those when the task is built).
    """
    from airflow.sdk import BaseOperator

    accepted: dict[str, None] = {}
    required: list[str] | None = None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return tuple(accepted), tuple(required or ()), False
        try:
            params = list(inspect.signature(init).parameters.values())[1:]  # without self
        except (TypeError, ValueError):  # a signature Python cannot read: accept anything
            return tuple(accepted), tuple(required or ()), True
        accepted.update(dict.fromkeys(p.name for p in params if p.kind in keyword))
        if required is None:
            required = [p.name for p in params if p.kind in keyword and p.default is p.empty]
        if klass is BaseOperator or not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return tuple(accepted), tuple(required), False
    return tuple(accepted), tuple(required or ()), True


def _own_arguments(cls: type, accepted: tuple[str, ...]) -> list[str]:
    """The arguments ``cls`` adds over Airflow's BaseOperator / BaseNotifier (for messages)."""
    from airflow.sdk import BaseNotifier, BaseOperator

    base = next((b for b in (BaseOperator, BaseNotifier) if issubclass(cls, b)), None)
    inherited = set(accepted_arguments(base)[0]) if base is not None and base is not cls else set()
    return [a for a in accepted if a not in inherited]


def _check_arguments(
    cls: type,
    args: dict[str, Any],
    path: tuple[str | int, ...],
    file: str,
    locate: Locate,
    *,
    operator: bool,
) -> list[SpecIssue]:
    """Unknown, reserved and missing keyword arguments of an operator (step) or notifier."""
    accepted, required, open_ = accepted_arguments(cls)
    own = _own_arguments(cls, accepted)
    name = cls.__name__
    listing = ", ".join(own) if own else "none of its own"
    if operator:
        listing += "; and BaseOperator's task arguments (retries, pool, queue, ...: better in `settings`)"
    issues = []
    meant: set[str] = set()  # required arguments that a misspelt one stands for
    for key in args:
        key_path = (*path, "args", key)
        if operator and key in FACTORY_ARGUMENTS:
            where = FACTORY_ARGUMENTS[key]
            message = f"{key!r} is set by the factory" + (f" from `{where}`" if where else "")
            hint = f"remove it from args{f'; set `{where}`' if where else ''}"
        elif key in callable_arguments(cls) and args[key] is not None:
            message = (
                f"{name}'s {key!r} takes a Python callable, and a spec can only give it "
                f"{'a string' if isinstance(args[key], str) else 'data'}, which {name} refuses"
            )
            hint = (
                "use an operator that takes what YAML can hold (e.g. BashOperator's `bash_command`, "
                "or an operator class of your own that imports the function), or build this "
                "task in a Python DAG"
            )
        elif not open_ and key not in accepted:
            close = closest_argument(key, accepted)
            suggestion = f"; did you mean {close!r}?" if close else ""
            meant.add(close or "")
            message, hint = f"{name} has no argument {key!r}{suggestion}", f"arguments of {name}: {listing}"
        else:
            continue
        line, col = locate(key_path)
        issues.append(SpecIssue(file, line, col, _dotted(key_path), message, None, hint))
    missing = [r for r in required if r not in args and r not in FACTORY_ARGUMENTS and r not in meant]
    if missing:
        line, col = locate((*path, "args"))  # the step itself when it has no `args`
        shown = ", ".join(f"`{m}: ...`" for m in missing)
        issues.append(
            SpecIssue(
                file,
                line,
                col,
                _dotted((*path, "args")),
                f"{name} needs the argument(s) {', '.join(map(repr, missing))}",
                None,
                f"add {shown} under args",
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
    from airflow_mlops.allowed_roots import roots_from_env

    return roots_from_env()


_TEMPLATE = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def _placeholder(value: str) -> str:
    """``value`` with each template expression replaced by one plain segment character, so the
    path around them (``../`` after a ``{{ ds }}``) is judged too, not only the text before."""
    return _TEMPLATE.sub("x", value)


def check_paths(
    spec: PipelineSpec, file: str, locate: Locate, *, base: Path | None, allowed_roots: list[str]
) -> list[SpecIssue]:
    """Data and artifact locations must lie under an allowed root: an early error.

    Uses :func:`airflow_mlops.allowed_roots.ensure_within_roots` (relative paths are relative
    to the spec's folder, ``..`` and symbolic links resolved, ``file://`` URIs decoded; ``s3://``
    URIs are checked only when an ``s3://`` root is configured). A templated location is checked
    with every expression standing for one plain segment (``a/{{ ds }}/../../x`` is judged as
    ``a/x/../../x``). What a template renders to is only known when the task runs: the tasks
    check the rendered path again, and that check is the guarantee.
    """
    from airflow_mlops.allowed_roots import OutsideAllowedRootsError, ensure_within_roots

    if not allowed_roots:
        return []
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
        try:
            ensure_within_roots(_placeholder(value), allowed_roots, what=".".join(path), base=base)
        except OutsideAllowedRootsError as exc:
            line, col = locate(path)
            issues.append(
                SpecIssue(
                    file,
                    line,
                    col,
                    ".".join(path),
                    f"{value!r} is outside the allowed roots" + _resolved_note(str(exc)),
                    None,
                    "allowed: "
                    + ", ".join(allowed_roots)
                    + " (set AIRFLOW_MLOPS_ALLOWED_ROOTS or `allowed_roots` in the folder's "
                    "mlops-defaults.yaml; the defaults file can only narrow the variable)",
                )
            )
    return issues


def _resolved_note(message: str) -> str:
    """`` (resolved: ...)`` or the reason from an :class:`OutsideAllowedRootsError` message."""
    found = re.search(r"\(resolved: [^)]*\)", message)
    if found:
        return " " + found.group(0)
    if "outside the allowed roots" in message:
        return ""
    return f": {message}"


def check_content(spec: PipelineSpec, file: str, locate: Locate, *, imports: bool = True) -> list[SpecIssue]:
    """The checks that depend on the spec's text: templates and expectation arguments.

    Run when a spec is parsed, not on a parse-cache hit (the cache key covers the text and
    this code). ``imports``: also check the templated arguments of steps and notifiers (their
    classes are imported to read their ``template_fields``).
    """
    return check_templates(spec, file, locate, imports=imports) + check_expectations(spec, file, locate)


def _strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside ``value`` (nested lists and mappings, as Airflow renders them)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _templated_values(
    spec: PipelineSpec, *, imports: bool = True
) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """``(path, text, no_interval)`` of every value Airflow renders as a template."""
    data = spec.data
    yield ("data", "source"), data.source, False
    if data.event_source is not None:
        yield ("data", "event_source"), data.event_source, True
    if data.reference is not None:
        yield ("data", "reference"), data.reference, False
    if spec.artifacts.root is not None:
        yield ("artifacts", "root"), spec.artifacts.root, False
    if spec.monitoring is not None:
        yield ("monitoring", "source"), spec.monitoring.source, False
        if spec.monitoring.reference not in MONITOR_REFERENCE_KEYWORDS:
            yield ("monitoring", "reference"), spec.monitoring.reference, False
    for i, item in enumerate(spec.validation.expectations):  # a template field of the validate task
        for path, text in _strings(item, ("validation", "expectations", i)):
            yield path, text, False
    if not imports:
        return
    owners: list[tuple[tuple[str | int, ...], str, dict[str, Any]]] = [
        (("steps", i), step.operator, step.args) for i, step in enumerate(spec.steps)
    ]
    for path, notify in _notifications(spec):
        for event in ("on_failure", "on_retry", "on_success"):
            for j, item in enumerate(getattr(notify, event)):
                owners.append(((*path, "notify", event, j), item.notifier, item.args))
    for path, target, args in owners:
        if not args:
            continue
        try:
            cls = resolve_entrypoint(target)
        except Exception:  # check_entrypoints reports it
            continue
        fields = getattr(cls, "template_fields", ())
        extensions = tuple(getattr(cls, "template_ext", ()) or ())
        for key in args:
            if key not in fields:
                continue
            for value_path, text in _strings(args[key], (*path, "args", key)):
                # A value ending in a template extension (`.sh`, `.sql`) names a template file.
                if not (extensions and text.endswith(extensions)):
                    yield value_path, text, False


def check_templates(
    spec: PipelineSpec, file: str, locate: Locate, *, imports: bool = True
) -> list[SpecIssue]:
    """Jinja syntax, unknown variables, macros, filters and tests in templated values."""
    from airflow_mlops.spec.templates import check_template

    issues = []
    for path, text, no_interval in _templated_values(spec, imports=imports):
        problems = check_template(text, no_interval=no_interval)
        if not problems:
            continue
        line, col = locate(path)
        issues += [SpecIssue(file, line, col, _dotted(path), p.message, text, p.hint) for p in problems]
    return issues


def check_expectations(spec: PipelineSpec, file: str, locate: Locate) -> list[SpecIssue]:
    """Great Expectations arguments: unknown (with did-you-mean), reserved and missing ones.

    Signatures come from the committed ``gx_expectations.json`` (GX itself is never imported here).
    """
    if not spec.validation.expectations:
        return []
    from airflow_mlops.spec.expectations import RESERVED_ARGUMENTS, example, expectation_signature

    issues = []
    for i, item in enumerate(spec.validation.expectations):
        for name, kwargs in item.items():
            found = expectation_signature(name)
            if found is None:  # not a supported expectation: the model reports it
                continue
            required, optional = found
            path: tuple[str | int, ...] = ("validation", "expectations", i, name)
            accepted = [*required, *optional]
            meant: set[str] = set()
            for arg in kwargs:
                line, col = locate((*path, arg))
                if arg in RESERVED_ARGUMENTS:
                    issues.append(
                        SpecIssue(
                            file,
                            line,
                            col,
                            _dotted((*path, arg)),
                            f"{arg!r} is reserved: the validation stage sets it",
                            None,
                            "remove it",
                        )
                    )
                elif arg not in accepted:
                    close = closest_argument(arg, accepted)
                    meant.add(close or "")
                    issues.append(
                        SpecIssue(
                            file,
                            line,
                            col,
                            _dotted((*path, arg)),
                            f"{name} has no argument {arg!r}"
                            + (f"; did you mean {close!r}?" if close else ""),
                            None,
                            f"arguments of {name}: "
                            + ", ".join([*(f"{r} (required)" for r in required), *optional]),
                        )
                    )
            missing = [r for r in required if r not in kwargs and r not in meant]
            if missing:
                line, col = locate(path)
                issues.append(
                    SpecIssue(
                        file,
                        line,
                        col,
                        _dotted(path),
                        f"{name} needs the argument(s) {', '.join(map(repr, missing))}",
                        None,
                        f"write `{example(name)}`",
                    )
                )
    return issues
