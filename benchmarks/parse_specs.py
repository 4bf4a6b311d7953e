"""Parse speed: N YAML specs through the factory vs. the same N DAGs written by hand in Python.

For each N this script writes two dags folders into a temp dir:

* ``factory/``: a copy of ``dags/mlops_specs.py`` and ``specs/*.yaml``, N variants of
  ``dags/specs/fraud_detector.yaml`` (own pipeline name, schedule, tags, retries, thresholds);
* ``hand/``: N plain Python DAG files, one per DAG, rendered from :data:`HAND_TEMPLATE`: the
  same DAG, TaskGroups, ``airflow_mlops.operators.*`` calls and ``task.output["key"]`` wiring,
  with the literal values (paths, thresholds, settings, doc) a person would type. The literals
  are read off the DAGs the loader builds, so the twin follows the factory as it evolves.

Before timing, every folder is parsed once (this also warms the bytecode and disk caches) and
the DAGs are compared with the hand-written ones: DAG settings, doc, task groups, operator
classes, every operator argument (XComArgs as task id + key), task settings and every edge must
be identical, or the benchmark stops.

Each measurement is a fresh ``python`` subprocess that times ``DagBag(dag_folder=...,
safe_mode=False)`` only (wall and CPU time), counts garbage-collection time, and lists the heavy
modules in ``sys.modules`` afterwards; the parent also times the whole process. By default the
probe does what the DAG processor does: ``gc.freeze()`` after importing Airflow, and ``.pyc``
files reused (kept under a private ``PYTHONPYCACHEPREFIX``); ``--gc normal --bytecode off`` gives
a plain fresh interpreter instead. The order of the sides rotates each round; medians of
``--repeat`` runs are reported.

The DAG processor applies ``[core] dagbag_import_timeout`` (default 30 s) per *file*; the
factory parses all N specs inside its one loader file, so that file's time is reported against
the limit. The factory side is timed as the DAG processor meets it almost always: specs unchanged since the
last parse, so each valid spec comes from the loader's parse cache (see
``airflow_mlops/spec/cache.py``, the YAML counterpart of the hand side's ``.pyc`` files).
``factory_cold`` times it with the cache off (``AIRFLOW_MLOPS_SPEC_CACHE=off``): every spec read,
parsed and validated, as after a change to each one. ``--profile``
times the factory's phases and lists cProfile's hottest functions.

Usage::

    .venv/bin/python benchmarks/parse_specs.py --sizes 10,50,200 --repeat 3 --out results.json
    .venv/bin/python benchmarks/parse_specs.py --sizes 200 --profile

Only the standard library is imported at module level: the probe subprocess runs this file too,
and must not load anything the DAG files themselves would not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "dags" / "specs" / "fraud_detector.yaml"
LOADER = ROOT / "dags" / "mlops_specs.py"

# Must not be imported while parsing DAGs (STYLE.md habit 2); the first eight are the list.
HEAVY = (
    "torch", "mlflow", "great_expectations", "alibi_detect", "pandas", "sklearn", "numpy", "boto3",
    "pyarrow", "safetensors", "model_signing", "kubernetes",
)  # fmt: skip
SCHEDULES = ("@daily", "@hourly", "0 3 * * *", "30 */6 * * 1-5", "@weekly", None)
FACTORY, HAND, COLD = "factory", "hand", "factory_cold"
GC_ENV = "MLOPS_PARSE_BENCH_GC"  # how run_probe learns the --gc mode


# --- generation ---------------------------------------------------------------------------------


def spec_variant(i: int, example: str) -> str:
    """The example spec's text with its own pipeline name, schedule, tags, thresholds and sizes.

    Edited as text, so every variant keeps the example's layout (comments, flow mappings): the
    YAML the factory parses is the YAML people write.
    """
    schedule = SCHEDULES[i % len(SCHEDULES)]
    edits = (
        (r"^pipeline: .*$", f"pipeline: model_{i:04d}"),
        # The example's `{time, events}` mapping, its new-data watch and its monitor are left out:
        # the benchmark compares the training DAG with a hand-written twin on time schedules.
        (r"^schedule:(?: .*|(?:\n  .*)+)$", f"schedule: {json.dumps(schedule) if schedule else 'null'}"),
        (r"^  # New batches.*\n  new_data:\n(?:    .*\n)+", ""),
        (r"\n# The fraud_detector__monitor DAG(?:.|\n)*\Z", "\n"),
        (r"^tags: \[(.*)\]$", rf"tags: [\1, shard_{i % 7}]"),
        (r"\bretries: \d+", f"retries: {i % 4}"),
        (r"\bmax_suspect_fraction: [\d.]+", f"max_suspect_fraction: {0.01 + (i % 5) * 0.005:.3f}"),
        (r"\bepochs: \d+", f"epochs: {5 + i % 20}"),
        (r"\bhidden_units: \[\d+", f"hidden_units: [{64 + 16 * (i % 3)}"),
        (r"\broc_auc: \{min: [\d.]+\}", f"roc_auc: {{min: {0.80 + (i % 10) * 0.01:.2f}}}"),
        (r"\bmax_regression: [\d.]+", f"max_regression: {0.01 + (i % 3) * 0.01:.2f}"),
        (r"^(\s+)model_name: .*$", rf"\1model_name: model-{i:04d}"),
    )
    text = example
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count != 1:
            raise AssertionError(
                f"{EXAMPLE_SPEC}: expected one match of {pattern!r}, found {count}; update spec_variant"
            )
    return text


def write_factory_folder(folder: Path, n: int) -> list[Path]:
    """``folder/mlops_specs.py`` (the repository's loader) plus ``folder/specs/model_NNNN.yaml`` x n."""
    example = EXAMPLE_SPEC.read_text(encoding="utf-8")
    specs = folder / "specs"
    specs.mkdir(parents=True)
    shutil.copy(LOADER, folder / "mlops_specs.py")
    paths = []
    for i in range(n):
        path = specs / f"model_{i:04d}.yaml"
        path.write_text(spec_variant(i, example), encoding="utf-8")
        paths.append(path)
    return paths


# One hand-written DAG file: the wiring (groups, operators, `task.output["key"]`, `>>`) is literal
# here; `{name}` fields are filled with Python literals (see render_hand_written).
HAND_TEMPLATE = """\
\"\"\"{pipeline}: training lifecycle, written by hand.\"\"\"

from __future__ import annotations

import datetime

from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable, TaskGroup

from airflow_mlops.operators.data import DataValidateOperator, PoisoningScreenOperator
from airflow_mlops.operators.model import ModelEvaluateOperator, ModelScanOperator, ModelSignOperator
from airflow_mlops.operators.registry import ModelPromoteOperator, ModelRegisterOperator
from airflow_mlops.operators.training import ModelFitOperator, ModelPackageOperator, TrainingPrepareOperator

with DAG(
{dag}) as dag:
    with TaskGroup("data", tooltip={data_tooltip}):
        validate = DataValidateOperator(
            task_id="validate",
{validate}        )
        screen = PoisoningScreenOperator(
            task_id="screen",
{screen}        )
    with TaskGroup("training", tooltip={training_tooltip}):
        prepare = TrainingPrepareOperator(
            task_id="prepare",
{prepare}        )
        fit = ModelFitOperator(
            task_id="fit",
{fit}        )
        train = ModelPackageOperator(
            task_id="package",
{train}        )
    with TaskGroup("gates", tooltip={gates_tooltip}):
        scan = ModelScanOperator(
            task_id="scan",
{scan}        )
        evaluate = ModelEvaluateOperator(
            task_id="evaluate",
{evaluate}        )
    with TaskGroup("release", tooltip={release_tooltip}):
        sign = ModelSignOperator(
            task_id="sign",
{sign}        )
        evaluate >> sign
        register = ModelRegisterOperator(
            task_id="register",
{register}        )
        ModelPromoteOperator(
            task_id="promote",
{promote}        )
"""

# Task id -> the variable the template binds it to (for `var.output["key"]`).
TEMPLATE_VARS = {
    "data.validate": "validate",
    "data.screen": "screen",
    "training.prepare": "prepare",
    "training.fit": "fit",
    "training.package": "train",
    "gates.scan": "scan",
    "gates.evaluate": "evaluate",
    "release.sign": "sign",
    "release.register": "register",
    "release.promote": "promote",
}
# BaseOperator settings a spec can set per task (TaskSettings); compared and rendered when set.
TASK_SETTINGS = (
    "owner", "retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay", "execution_timeout",
    "pool", "pool_slots", "queue", "priority_weight",
)  # fmt: skip


def init_parameters(cls: type) -> list[tuple[str, Any]]:
    """``(name, default)`` of the keyword-only ``__init__`` arguments of ``cls`` below BaseOperator."""
    from airflow.sdk import BaseOperator

    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is BaseOperator or not issubclass(klass, BaseOperator) or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if param.kind is param.KEYWORD_ONLY and name not in seen:
                seen.add(name)
                out.append((name, param.default))
    return out


class _Source(str):
    """Python source written into the hand-written file as is."""


def python_literal(value: Any) -> str:
    """Source text that evaluates to ``value`` in the hand-written file."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    if isinstance(value, _Source):
        return str(value)
    if isinstance(value, PlainXComArg):
        var = TEMPLATE_VARS[value.operator.task_id]
        return f"{var}.output" if value.key == "return_value" else f"{var}.output[{value.key!r}]"
    if value is None or isinstance(value, bool | int | float | str | dt.timedelta):
        return repr(value)  # a timedelta reads `datetime.timedelta(...)`: the template imports datetime
    if type(value).__name__ in ("CronDataIntervalTimetable", "DeltaDataIntervalTimetable"):
        return repr(value)  # `CronDataIntervalTimetable(expression='0 * * * *', timezone='UTC')`
    if isinstance(value, list | tuple):
        items = ", ".join(python_literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    raise NotImplementedError(f"the hand-written renderer cannot write {type(value).__name__}: {value!r}")


def _kwargs(pairs: list[tuple[str, Any]], indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}{name}={python_literal(value)},\n" for name, value in pairs)


def render_hand_written(dag: Any) -> str:
    """A hand-written Python DAG file that builds ``dag`` (one built by the factory).

    The literals (paths, thresholds, settings, doc) are the values the factory put on the DAG and
    its tasks, the way a person would type them; the wiring is :data:`HAND_TEMPLATE`'s. An
    argument equal to the operator's default is left out, as people do. The comparison in
    :func:`check_identical` then proves that both files build the same DAG.
    """
    from airflow.sdk import DAG, BaseOperator

    if getattr(dag, "deadline", None):
        raise NotImplementedError("the benchmark variants have no deadline")
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    time_schedules = (str, dt.timedelta, type(None), CronDataIntervalTimetable, DeltaDataIntervalTimetable)
    if not isinstance(dag.schedule, time_schedules):
        raise NotImplementedError(f"the benchmark variants use time schedules, not {dag.schedule!r}")
    with DAG("baseline", default_args=dict(dag.default_args), schedule=None):
        baseline = BaseOperator(task_id="baseline")  # what a task gets without per-task settings

    start = dag.start_date
    if start.utcoffset() != dt.timedelta(0):
        raise NotImplementedError("the benchmark variants start at a UTC date")
    start_src = _Source(
        f"datetime.datetime({start.year}, {start.month}, {start.day}, {start.hour}, {start.minute}, "
        f"{start.second}, tzinfo=datetime.UTC)"
    )
    dag_kwargs = [
        ("dag_id", dag.dag_id),
        ("description", dag.description),
        ("schedule", dag.schedule),
        ("start_date", start_src),
        ("catchup", dag.catchup),
        ("tags", sorted(dag.tags)),
        ("default_args", dict(dag.default_args)),
        ("doc_md", dag.doc_md),
        ("max_active_runs", dag.max_active_runs),
    ]
    if dag.dagrun_timeout is not None:
        dag_kwargs.append(("dagrun_timeout", dag.dagrun_timeout))
    dag_src = _kwargs(dag_kwargs, 4)

    blocks: dict[str, str] = {}
    unexpected = sorted(set(dag.task_dict) - set(TEMPLATE_VARS))
    if unexpected:
        raise NotImplementedError(f"tasks the template does not write: {unexpected}")
    for task_id, var in TEMPLATE_VARS.items():
        task = dag.get_task(task_id)
        pairs = []
        for name, default in init_parameters(type(task)):
            value = getattr(task, name)
            is_plain = value is None or isinstance(value, bool | int | float | str | list | dict | tuple)
            if is_plain and default is not inspect.Parameter.empty and value == default:
                continue
            pairs.append((name, value))
        for name in TASK_SETTINGS:
            if getattr(task, name, None) != getattr(baseline, name, None):
                pairs.append((name, getattr(task, name)))
        for event in (
            "on_execute_callback",
            "on_failure_callback",
            "on_retry_callback",
            "on_success_callback",
        ):
            if getattr(task, event, None):
                raise NotImplementedError(f"{task_id}: the benchmark variants have no {event}")
        blocks[var] = _kwargs(pairs, 12)
    tooltips = {
        f"{group}_tooltip": repr(dag.task_group.get_task_group_dict()[group].tooltip)
        for group in ("data", "training", "gates", "release")
    }
    pipeline = getattr(dag.get_task("data.validate"), "pipeline", dag.dag_id)
    return HAND_TEMPLATE.format(pipeline=pipeline, dag=dag_src, **tooltips, **blocks)


def build_with_loader(folder: Path) -> dict[str, Any]:
    """The DAGs the factory folder's loader builds, exactly as the DAG processor would run it."""
    import runpy

    from airflow.sdk import DAG

    from airflow_mlops.spec.cache import CACHE_ENV

    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = "off"  # this process's AIRFLOW_HOME is not the probes' private one
    try:
        namespace = runpy.run_path(str(folder / "mlops_specs.py"), run_name="mlops_specs_benchmark")
    finally:
        if saved is None:
            os.environ.pop(CACHE_ENV)
        else:
            os.environ[CACHE_ENV] = saved
    errors = namespace.get("_errors")
    if errors:
        raise AssertionError(f"the generated specs do not load: {errors}")
    return {v.dag_id: v for v in namespace.values() if isinstance(v, DAG)}


def write_hand_folder(folder: Path, dags: dict[str, Any]) -> list[Path]:
    """One hand-written ``.py`` per DAG, named after it."""
    folder.mkdir(parents=True)
    out = []
    for dag_id in sorted(dags):
        path = folder / f"{dag_id}.py"
        path.write_text(render_hand_written(dags[dag_id]), encoding="utf-8")
        out.append(path)
    return out


def generate(workdir: Path, n: int) -> dict[str, Path]:
    """Both dags folders for ``n`` DAGs under ``workdir``."""
    write_factory_folder(workdir / FACTORY, n)
    dags = build_with_loader(workdir / FACTORY)
    if len(dags) != n:
        raise AssertionError(f"the loader built {len(dags)} DAGs from {n} specs")
    write_hand_folder(workdir / HAND, dags)
    return {FACTORY: workdir / FACTORY, HAND: workdir / HAND}


# --- the probe: runs in a fresh subprocess --------------------------------------------------------


def _normalise(value: Any) -> Any:
    """A JSON-able, comparable form of an operator argument (XComArg -> its task id and key)."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(value, XComArg):
        return ["xcom", value.operator.task_id, getattr(value, "key", None)]  # type: ignore[attr-defined]
    if isinstance(value, dt.timedelta):
        return ["timedelta", value.total_seconds()]
    if isinstance(value, dt.datetime | dt.date):
        return ["datetime", value.isoformat()]
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_normalise(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _operator_arguments(task: Any) -> dict[str, Any]:
    """Every ``__init__`` argument of the task's class chain and its task settings, read back."""
    names = [name for name, _default in init_parameters(type(task))]
    names += [*TASK_SETTINGS, "multiple_outputs", "template_fields", "do_xcom_push", "trigger_rule"]
    out = {name: _normalise(getattr(task, name, "<missing>")) for name in names}
    for event in ("on_execute_callback", "on_failure_callback", "on_retry_callback", "on_success_callback"):
        out[event] = _normalise(getattr(task, event, None))
    return out


def dag_fingerprint(dag: Any) -> dict[str, Any]:
    """Everything that makes two DAGs the same DAG, in comparable form."""
    groups = {}
    for group_id, group in dag.task_group.get_task_group_dict().items():
        groups[str(group_id)] = {
            "tooltip": group.tooltip,
            "children": sorted(group.children),
        }
    return {
        "dag_id": dag.dag_id,
        "description": dag.description,
        "schedule": _normalise(dag.schedule),
        "timetable": type(dag.timetable).__name__,
        "start_date": _normalise(dag.start_date),
        "catchup": dag.catchup,
        "tags": sorted(dag.tags),
        "default_args": _normalise(dag.default_args),
        "doc_md": dag.doc_md,
        "max_active_runs": dag.max_active_runs,
        "task_groups": groups,
        "tasks": {
            task.task_id: {
                "class": f"{type(task).__module__}.{type(task).__qualname__}",
                "task_group": task.task_group.group_id if task.task_group else None,
                "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids),
                "arguments": _operator_arguments(task),
            }
            for task in sorted(dag.tasks, key=lambda t: t.task_id)
        },
    }


# Phases timed by wrapping functions with a perf_counter (``--profile``): (label, "module:qualname").
# Inclusive times; an indented label runs inside the one above it. A name that no longer exists
# (the factory is evolving) is skipped and reported as missing.
PHASES = (
    ("find spec files (rglob, read, apiVersion regex)", "airflow_mlops.factory.folder:find_spec_files"),
    ("parse cache file read", "airflow_mlops.spec.cache:SpecCache.__init__"),
    ("load a spec (read, cache or parse)", "airflow_mlops.factory.folder:SpecFolderLoader.load"),
    ("  folder defaults lookup", "airflow_mlops.spec.loader:find_folder_defaults"),
    ("  cache key (sha256)", "airflow_mlops.spec.cache:SpecCache.key"),
    ("  cache lookup (pydantic, re-checks)", "airflow_mlops.spec.cache:SpecCache.get"),
    ("    path checks", "airflow_mlops.spec.checks:check_paths"),
    ("    step checks", "airflow_mlops.spec.checks:check_steps"),
    ("  parse (YAML, pydantic, checks) on a miss", "airflow_mlops.spec.loader:load_spec_text"),
    ("    YAML -> data with line numbers", "airflow_mlops.spec.loader:parse_yaml"),
    ("    pydantic validation", "airflow_mlops.spec.loader:validate_data"),
    ("parse cache write", "airflow_mlops.spec.cache:SpecCache.save"),
    ("build_dags (DAG, TaskGroups, 8 operators, XComArgs)", "airflow_mlops.factory.builder:build_dags"),
    ("  doc_md text", "airflow_mlops.factory.builder:_doc_md"),
    ("  task settings merge", "airflow_mlops.factory.builder:task_settings"),
    ("  XComArg wiring task.output[key]", "airflow_mlops.factory.builder:_out"),
    ("DagBag.bag_dag (cycle check, templates, policies)", "airflow.dag_processing.dagbag:DagBag.bag_dag"),
    ("DAG.validate", "airflow.sdk.definitions.dag:DAG.validate"),
)
# What each side imports for its DAG files (timed before the fill in --profile runs).
HAND_IMPORTS = (
    "airflow_mlops.operators.data", "airflow_mlops.operators.model", "airflow_mlops.operators.registry",
    "airflow_mlops.operators.training",
)  # fmt: skip
FACTORY_IMPORTS = ("airflow_mlops.factory", "airflow_mlops.factory.importer", "airflow_mlops.spec.loader")


def _instrument(target: str, acc: list[float]) -> bool:
    """Wrap ``module:qualname`` with a timer everywhere it is bound; False if it does not exist."""
    import functools
    import importlib

    module_name, _, qualname = target.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
        *parents, name = qualname.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = getattr(owner, name)
    except (ImportError, AttributeError):
        return False

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            acc[0] += time.perf_counter() - t0
            acc[1] += 1

    setattr(owner, name, timed)
    if not parents:  # also where it was imported by name (`from x import f`)
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if namespace is not None and namespace.get(name) is original:
                namespace[name] = timed
    return True


def _timed_imports(names: tuple[str, ...]) -> float:
    import importlib

    t0 = time.perf_counter()
    for name in names:
        importlib.import_module(name)
    return time.perf_counter() - t0


def probe(
    folder: str, fingerprint: bool, profile_out: str | None, phases: bool, no_cache: bool, gc_freeze: bool
) -> None:
    """Fill a DagBag from ``folder`` and print one JSON line of timings (run in a fresh process).

    With ``gc_freeze`` the heap Airflow built on import is frozen first, as the DAG processor does
    (``DagFileProcessorManager.before_run`` calls ``gc.freeze()`` before it forks the per-file
    parsers): a full collection then walks only what the parse itself allocated.
    """
    import gc

    t_start = time.perf_counter()
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    t_imported = time.perf_counter()
    result: dict[str, Any] = {}
    if no_cache:  # every spec parsed from its YAML
        from airflow_mlops.spec.cache import CACHE_ENV

        os.environ[CACHE_ENV] = "off"
    gc_stats = {"s": 0.0, "collections": 0, "full": 0, "_t": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_stats["_t"] = time.perf_counter()
        else:
            gc_stats["s"] += time.perf_counter() - gc_stats["_t"]
            gc_stats["collections"] += 1
            gc_stats["full"] += info["generation"] == 2

    timers: dict[str, list[float]] = {}
    if phases:  # import up front (timed), then wrap the phase functions
        result["pydantic_loaded_by_airflow"] = "pydantic" in sys.modules
        result["yaml_loaded_by_airflow"] = "yaml" in sys.modules
        result["import_operators_s"] = _timed_imports(HAND_IMPORTS)
        result["import_factory_extra_s"] = _timed_imports(FACTORY_IMPORTS)
        for label, target in PHASES:
            acc = [0.0, 0]
            if _instrument(target, acc):
                timers[label] = acc
        result["phases_missing"] = [label for label, _ in PHASES if label not in timers]
    modules_before = set(sys.modules)
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if gc_freeze:
        gc.freeze()
    gc.callbacks.append(on_gc)
    c0, t0 = time.process_time(), time.perf_counter()
    bag = DagBag(dag_folder=folder, safe_mode=False)
    t1, c1 = time.perf_counter(), time.process_time()
    gc.callbacks.remove(on_gc)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)
    heavy = sorted(name for name in HEAVY if name in sys.modules)
    result.update(
        {
            "fill_s": t1 - t0,
            "fill_cpu_s": c1 - c0,
            "gc_s": gc_stats["s"],
            "gc_collections": gc_stats["collections"],
            "gc_full_collections": gc_stats["full"],
            "import_dagbag_s": t_imported - t_start,
            "dags": len(bag.dags),
            "tasks": sum(len(d.tasks) for d in bag.dags.values()),
            "errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
            "heavy": heavy,
            "new_modules": len(set(sys.modules) - modules_before),
            "files": len(bag.dagbag_stats),
            "slowest_file": bag.dagbag_stats[0].file if bag.dagbag_stats else None,
            "slowest_file_s": bag.dagbag_stats[0].duration.total_seconds() if bag.dagbag_stats else 0.0,
            "dagbag_import_timeout_s": conf.getfloat("core", "dagbag_import_timeout"),
        }
    )
    if timers:
        result["phases"] = {label: {"s": acc[0], "calls": int(acc[1])} for label, acc in timers.items()}
    if fingerprint:
        result["fingerprint"] = {dag_id: dag_fingerprint(bag.dags[dag_id]) for dag_id in sorted(bag.dags)}
    print(json.dumps(result))


# --- measuring -----------------------------------------------------------------------------------


def probe_env(workdir: Path, bytecode: str, gc_mode: str = "freeze") -> dict[str, str]:
    """The probes' environment: a private AIRFLOW_HOME, no examples, the default 30 s timeout.

    ``bytecode="cached"`` (the DAG processor's steady state: it re-parses unchanged files) lets
    Python write and reuse ``.pyc`` files, under a private ``PYTHONPYCACHEPREFIX`` so nothing is
    written into the repository or the venv; the untimed check run fills that cache for both
    sides. ``bytecode="off"`` sets ``PYTHONDONTWRITEBYTECODE=1``: every DAG file (and every module
    without a ``.pyc``) is compiled on every parse.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "PYTHONPYCACHEPREFIX"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (workdir / "airflow_home").mkdir(exist_ok=True)
    env.update(
        AIRFLOW_HOME=str(workdir / "airflow_home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="30",
        GX_ANALYTICS_ENABLED="False",
    )
    env[GC_ENV] = gc_mode
    if bytecode == "cached":
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_probe(
    folder: Path,
    env: dict[str, str],
    *,
    fingerprint: bool = False,
    profile_out: Path | None = None,
    phases: bool = False,
    no_cache: bool = False,
) -> dict[str, Any]:
    """One measurement in a fresh interpreter; adds the whole-process wall time."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", str(folder)]
    if env.get(GC_ENV) == "normal":
        cmd.append("--no-gc-freeze")
    if fingerprint:
        cmd.append("--fingerprint")
    if profile_out:
        cmd += ["--profile-out", str(profile_out)]
    if phases:
        cmd.append("--phases")
    if no_cache:
        cmd.append("--no-cache")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, timeout=600)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed on {folder} (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = process_s
    return result


def check_identical(results: dict[str, dict[str, Any]], n: int) -> None:
    """Every side must hold the same N DAGs as the hand-written folder, task for task."""
    for side, result in results.items():
        if result["errors"]:
            raise AssertionError(f"{side}: import errors: {result['errors']}")
        if result["dags"] != n:
            raise AssertionError(f"{side}: expected {n} DAGs, got {result['dags']}")
    hand = results[HAND]["fingerprint"]
    for side, result in results.items():
        other = result["fingerprint"]
        if sorted(other) != sorted(hand):
            raise AssertionError(
                f"{side}: dag ids differ from hand-written: {sorted(set(other) ^ set(hand))}"
            )
        for dag_id in hand:
            if other[dag_id] != hand[dag_id]:
                diff = _first_difference(other[dag_id], hand[dag_id], dag_id)
                raise AssertionError(f"DAG {dag_id} differs between {side} and hand-written: {diff}")


def _first_difference(a: Any, b: Any, path: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return _first_difference(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}")
    return f"{path}: {a!r} vs hand-written {b!r}"


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    last = runs[-1]
    return {
        "fill_s": med("fill_s"),
        "fill_min_s": min(r["fill_s"] for r in runs),
        "fill_cpu_s": med("fill_cpu_s"),
        "process_s": med("process_s"),
        "import_dagbag_s": med("import_dagbag_s"),
        "gc_s": med("gc_s"),
        "gc_full_collections": med("gc_full_collections"),
        "slowest_file": last["slowest_file"],
        "slowest_file_s": med("slowest_file_s"),
        "fill_runs_s": [round(r["fill_s"], 4) for r in runs],
        "process_runs_s": [round(r["process_s"], 4) for r in runs],
        "dags": last["dags"],
        "tasks": last["tasks"],
        "files": last["files"],
        "new_modules": last["new_modules"],
        "heavy": sorted({m for r in runs for m in r["heavy"]}),
        "dagbag_import_timeout_s": last["dagbag_import_timeout_s"],
    }


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure(n: int, repeat: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    folders = generate(workdir / f"n{n}", n)
    # side -> (folder, parse cache off)
    sides: dict[str, tuple[Path, bool]] = {
        FACTORY: (folders[FACTORY], False), HAND: (folders[HAND], False), COLD: (folders[FACTORY], True),
    }  # fmt: skip
    load_before = load_average()
    # Parse each folder once untimed: fills the parse cache and the bytecode/disk caches. Then
    # prove the DAGs identical: hand-written, factory from the cache, factory from the YAML.
    run_probe(folders[FACTORY], env)
    check = {
        side: run_probe(folder, env, fingerprint=True, no_cache=no_cache)
        for side, (folder, no_cache) in sides.items()
    }
    check_identical(check, n)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    names = list(sides)
    for i in range(repeat):
        for side in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order each round
            folder, no_cache = sides[side]
            runs[side].append(run_probe(folder, env, no_cache=no_cache))
    summary = {side: _summary(r) for side, r in runs.items()}
    factory, hand = summary[FACTORY], summary[HAND]
    out = {
        "n": n,
        **summary,
        "ratio": factory["fill_s"] / hand["fill_s"],
        "ratio_cpu": factory["fill_cpu_s"] / hand["fill_cpu_s"],
        "process_ratio": factory["process_s"] / hand["process_s"],
        "per_spec_ms": 1000 * factory["fill_s"] / n,
        "per_dag_ms": 1000 * hand["fill_s"] / n,
        "identical_structure": True,
        "load_average_1m": [load_before, load_average()],
    }
    out["ratio_cold"] = summary[COLD]["fill_s"] / hand["fill_s"]
    out["ratio_cold_cpu"] = summary[COLD]["fill_cpu_s"] / hand["fill_cpu_s"]
    return out


def marginal(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Cost of one more DAG: the slope between the smallest and largest N (fixed costs cancel)."""
    if len(results) < 2:
        return None
    lo, hi = results[0], results[-1]
    span = hi["n"] - lo["n"]
    out: dict[str, Any] = {"from_n": lo["n"], "to_n": hi["n"]}
    for side in (FACTORY, HAND, COLD):
        if side in hi:
            out[f"{side}_ms"] = 1000 * (hi[side]["fill_s"] - lo[side]["fill_s"]) / span
    out["ratio"] = out[f"{FACTORY}_ms"] / out[f"{HAND}_ms"]
    out["ratio_cold"] = out[f"{COLD}_ms"] / out[f"{HAND}_ms"]
    return out


# --- profile -------------------------------------------------------------------------------------


def profile(n: int, workdir: Path, env: dict[str, str], top: int, repeat: int) -> dict[str, Any]:
    """Where the time goes at ``n``: timed phases (median of ``repeat``) and cProfile's top functions.

    The phase timers add ~1 us per call, so their shares hold; cProfile slows pure-Python code
    (the YAML scanner) far more than C code, so its list only names the hot functions.
    """
    import io
    import pstats

    folders = generate(workdir / f"profile_n{n}", n)
    out: dict[str, Any] = {"n": n}
    for side, folder in folders.items():
        run_probe(folder, env)  # warm-up
        runs = [run_probe(folder, env, phases=True) for _ in range(repeat)]
        fill = statistics.median(r["fill_s"] for r in runs)
        labels = list(runs[0].get("phases", {}))
        phases = []
        for label in labels:
            s = statistics.median(r["phases"][label]["s"] for r in runs)
            calls = runs[0]["phases"][label]["calls"]
            if calls:
                phases.append({"phase": label, "s": s, "calls": calls, "share": s / fill})
        gc_s = statistics.median(r["gc_s"] for r in runs)
        phases.append(
            {
                "phase": "garbage collection (within the phases above)",
                "s": gc_s,
                "calls": runs[0]["gc_collections"],
                "share": gc_s / fill,
            }
        )
        stats_file = workdir / f"{side}.prof"
        run_probe(folder, env, profile_out=stats_file)
        buf = io.StringIO()
        pstats.Stats(str(stats_file), stream=buf).sort_stats("tottime").print_stats(top)
        first = runs[0]
        out[side] = {
            "fill_s": fill,
            "phases": phases,
            "phases_missing": first.get("phases_missing", []),
            "import_operators_s": statistics.median(r["import_operators_s"] for r in runs),
            "import_factory_extra_s": statistics.median(r["import_factory_extra_s"] for r in runs),
            "pydantic_loaded_by_airflow": first["pydantic_loaded_by_airflow"],
            "yaml_loaded_by_airflow": first["yaml_loaded_by_airflow"],
            "cprofile_top_tottime": buf.getvalue(),
        }
    return out


# --- report --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        if "model name" in info:
            cpu = (
                f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
            )
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        from importlib.metadata import version

        airflow_version = version("apache-airflow")
    except Exception:
        airflow_version = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "airflow": airflow_version,
        "platform": platform.platform(),
    }


def table(results: list[dict[str, Any]]) -> str:
    """The results as Markdown: wall-clock medians of the DagBag fill, then CPU time, GC, what-if."""
    lines = [
        "| N | factory s | hand-written s | ratio factory/hand | per-spec ms (factory) | per-DAG ms (hand) "
        "| factory loader file s (limit 30 s) | whole process s factory / hand | heavy modules factory / hand |",
        "|" + "---|" * 9,
    ]
    for r in results:
        f, h = r[FACTORY], r[HAND]
        lines.append(
            f"| {r['n']} | {f['fill_s']:.3f} | {h['fill_s']:.3f} | {r['ratio']:.2f}x | {r['per_spec_ms']:.1f} "
            f"| {r['per_dag_ms']:.1f} | {f['slowest_file_s']:.3f} | {f['process_s']:.2f} / {h['process_s']:.2f} "
            f"| {', '.join(f['heavy']) or 'none'} / {', '.join(h['heavy']) or 'none'} |"
        )

    head = "\n| N | CPU s factory / hand | ratio on CPU time | GC s factory / hand | load avg (1 min) |"
    head += " factory, cache off: s | ratio | ratio on CPU time |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        f, h = r[FACTORY], r[HAND]
        load = "-".join(f"{x:.1f}" for x in r["load_average_1m"] if x is not None)
        row = (
            f"| {r['n']} | {f['fill_cpu_s']:.3f} / {h['fill_cpu_s']:.3f} | {r['ratio_cpu']:.2f}x "
            f"| {f['gc_s']:.3f} / {h['gc_s']:.3f} | {load} |"
        )
        y = r[COLD]
        row += f" {y['fill_s']:.3f} | {r['ratio_cold']:.2f}x | {r['ratio_cold_cpu']:.2f}x |"
        lines.append(row)
    return "\n".join(lines)


def profile_text(prof: dict[str, Any]) -> str:
    lines = []
    for side in (FACTORY, HAND):
        p = prof[side]
        lines.append(
            f"\n== where the time goes: {side}, N={prof['n']}, fill {p['fill_s']:.3f}s (phase timers)"
        )
        for phase in p["phases"]:
            lines.append(
                f"  {phase['phase']:<56} {phase['s']:7.3f}s {phase['share']:6.1%}  calls={phase['calls']}"
            )
        if side == FACTORY:
            lines.append(
                f"  imports before the fill: operators {p['import_operators_s']:.3f}s, factory+spec on top "
                f"{p['import_factory_extra_s']:.3f}s (pydantic already loaded by Airflow: "
                f"{p['pydantic_loaded_by_airflow']}, yaml: {p['yaml_loaded_by_airflow']})"
            )
            if p["phases_missing"]:
                lines.append(f"  not found (factory changed?): {', '.join(p['phases_missing'])}")
        lines.append(f"-- cProfile, {side}, top by own time (profiling inflates pure-Python code):")
        lines.append(p["cprofile_top_tottime"].strip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,200", help="comma-separated numbers of DAGs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side and size; the median counts")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--profile", action="store_true", help="cProfile both sides at the largest size")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (path printed)")
    parser.add_argument(
        "--bytecode",
        choices=("cached", "off"),
        default="cached",
        help="cached: .pyc files are written (to a private prefix) and reused, as in a long-running "
        "DAG processor; off: PYTHONDONTWRITEBYTECODE=1, every DAG file is compiled on every parse",
    )
    parser.add_argument(
        "--gc",
        choices=("freeze", "normal"),
        default="freeze",
        help="freeze: gc.freeze() after importing Airflow, as the DAG processor does before forking "
        "its parsers; normal: a plain fresh interpreter (full collections walk all of Airflow)",
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-gc-freeze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fingerprint", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.probe:
        probe(
            args.probe, args.fingerprint, args.profile_out, args.phases, args.no_cache, not args.no_gc_freeze
        )
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="mlops-parse-bench-"))
    env = probe_env(workdir, args.bytecode, args.gc)
    report: dict[str, Any] = {
        "benchmark": "parse_specs",
        "date": dt.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "repeat": args.repeat,
        "bytecode": args.bytecode,
        "gc": args.gc,
        "results": [],
    }
    try:
        for n in sizes:
            result = measure(n, args.repeat, workdir, env)
            report["results"].append(result)
            print(
                f"N={n}: factory {result[FACTORY]['fill_s']:.3f}s, hand {result[HAND]['fill_s']:.3f}s, "
                f"ratio {result['ratio']:.2f}x",
                file=sys.stderr,
            )
        report["marginal_per_dag"] = marginal(report["results"])
        if args.profile:
            report["profile"] = profile(max(sizes), workdir, env, args.top, args.repeat)
    finally:
        if args.keep:
            print(f"generated folders kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(summary_text(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


def summary_text(report: dict[str, Any]) -> str:
    results = report["results"]
    lines = [table(results)]
    m = report.get("marginal_per_dag")
    if m:
        line = (
            f"\nmarginal cost of one more DAG (N {m['from_n']} -> {m['to_n']}): factory {m['factory_ms']:.1f} ms, "
            f"hand-written {m['hand_ms']:.1f} ms, ratio {m['ratio']:.2f}x"
        )
        line += f"; cache off {m[f'{COLD}_ms']:.1f} ms, ratio {m['ratio_cold']:.2f}x"
        lines.append(line)
    biggest = results[-1]
    verdicts = [f"N={r['n']} {r['ratio']:.2f}x {'met' if r['ratio'] <= 1.25 else 'NOT met'}" for r in results]
    if m:
        verdicts.append(f"marginal {m['ratio']:.2f}x {'met' if m['ratio'] <= 1.25 else 'NOT met'}")
    lines.append(
        f"target factory/hand <= 1.25x: {', '.join(verdicts)}; "
        f"factory loader file at N={biggest['n']}: {biggest[FACTORY]['slowest_file_s']:.2f}s of the "
        f"{biggest[FACTORY]['dagbag_import_timeout_s']:.0f}s dagbag_import_timeout"
    )
    heavy = sorted({m for r in results for m in r[FACTORY]["heavy"]})
    lines.append(f"heavy modules after parsing the factory folder: {', '.join(heavy) or 'none'}")
    if "profile" in report:
        lines.append(profile_text(report["profile"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
