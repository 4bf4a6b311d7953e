"""The parse cache: a hit gives the same spec and DAG as a parse, and anything that matters is a miss."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.factory import build_dags
from airflow_mlops.factory.folder import SpecFolderLoader, load_dags_folder
from airflow_mlops.spec.cache import CACHE_ENV, SpecCache, default_cache_dir

ROOT = Path(__file__).resolve().parents[3]
EMPTY_OP = "airflow.providers.standard.operators.empty.EmptyOperator"
NOTIFIER = "tests.unit.spec.notifiers.RecordingNotifier"

BASE = """\
apiVersion: mlops/v1
pipeline: {name}
data:
  source: data/{{{{ ds }}}}.parquet
  target: churned
registry:
  model_name: {name}-model
"""

# Specs that use every part of the language whose values go through the cache.
RICH_EXTRA = textwrap.dedent(f"""\
    schedule: {{time: '0 3 * * 1-5', events: [drift, 's3://bucket/incoming/']}}
    start_date: 2026-01-01
    catchup: true
    tags: [churn, tabular]
    owner: ml-platform
    deadline: {{after: 2h, callback: {NOTIFIER}}}
    defaults:
      retries: 4
      retry_delay: 90s
      execution_timeout: 1h
      queue: cpu
      notify: {{on_failure: [{{notifier: {NOTIFIER}, args: {{channel: ml-alerts}}}}]}}
    stages:
      train: {{queue: gpu, execution_timeout: 3h, pool_slots: 2}}
      promote: {{retries: 0}}
    training:
      params: {{epochs: 3, lr: 0.01, hidden_units: [8, 4]}}
    evaluation:
      metrics: {{roc_auc: {{min: 0.8}}}}
      compare_to_champion: {{roc_auc: {{max_regression: 0.02}}}}
    steps:
      - {{id: announce, operator: {EMPTY_OP}, after: [promote], settings: {{queue: io}}}}
    """)


def write_folder(tmp_path: Path, specs: dict[str, str], defaults: str | None = None) -> Path:
    folder = tmp_path / "dags"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name, text in specs.items():
        (folder / f"{name}.yaml").write_text(text)
    if defaults is not None:
        (folder / "mlops-defaults.yaml").write_text(defaults)
    return folder


def load(folder: Path, cache_dir: Path | None) -> tuple[dict, dict, SpecCache]:
    """One folder load, as the loader file does it; returns the cache to read its counters."""
    cache = SpecCache(folder, cache_dir)
    loader = SpecFolderLoader(default_allowed_roots=[str(folder)], cache=cache)
    specs, dags = {}, {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "mlops-defaults.yaml":
            continue
        specs[path.stem] = loader.load(path)
        dags.update(build_dags(specs[path.stem], spec_path=path))
    cache.save()
    return specs, dags, cache


def _callbacks(value) -> list:
    items = value if isinstance(value, list) else [value] if value else []
    return [(type(c).__qualname__, getattr(c, "channel", None)) for c in items]


def shape(dag) -> dict:
    """What a DAG's tasks carry that comes from the spec."""
    out = {
        "schedule": repr(dag.schedule),
        "tags": sorted(dag.tags),
        "doc": dag.doc_md,
        "start": dag.start_date,
    }
    for task in dag.tasks:
        out[task.task_id] = (
            task.retries, task.retry_delay, task.execution_timeout, task.queue, task.pool_slots,
            sorted(task.upstream_task_ids), _callbacks(task.on_failure_callback),
            {k: getattr(task, k, None) for k in ("bounds", "compare_to_champion", "hyperparameters", "source")},
        )  # fmt: skip
    return out


def test_a_hit_gives_the_same_spec_and_dag_as_a_parse(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        {"rich": BASE.format(name="rich") + RICH_EXTRA, "example": BASE.format(name="plain")},
        defaults="apiVersion: mlops/v1\nkind: Defaults\ndefaults: {retries: 7, pool: shared}\ntags: [team-a]\n",
    )
    cache_dir = tmp_path / "cache"
    parsed, parsed_dags, first = load(folder, cache_dir)
    assert (first.hits, first.misses) == (0, 2)
    assert len(list(cache_dir.glob("specs-*.json"))) == 1

    cached, cached_dags, second = load(folder, cache_dir)
    assert (second.hits, second.misses) == (2, 0)
    for name in parsed:
        assert cached[name] == parsed[name]
        assert cached[name].model_dump(exclude_unset=True) == parsed[name].model_dump(exclude_unset=True)
    assert sorted(cached_dags) == sorted(parsed_dags) == ["plain__train", "rich__train"]
    for dag_id in parsed_dags:
        assert shape(cached_dags[dag_id]) == shape(parsed_dags[dag_id])
    # The folder defaults really reached the cached specs, and the spec's own keys still win.
    rich = cached_dags["rich__train"]
    assert rich.get_task("data.validate").retries == 4 and rich.get_task("data.validate").pool == "shared"
    assert "team-a" in rich.tags and rich.get_task("training.fit").queue == "gpu"


@pytest.mark.parametrize("change", ["spec", "defaults", "env_roots"])
def test_what_the_result_depends_on_is_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    defaults = "apiVersion: mlops/v1\nkind: Defaults\ndefaults: {retries: 7}\n"
    folder = write_folder(tmp_path, {"a": BASE.format(name="a")}, defaults=defaults)
    cache_dir = tmp_path / "cache"
    load(folder, cache_dir)
    if change == "spec":
        (folder / "a.yaml").write_text(BASE.format(name="a") + "defaults: {retries: 1}\n")
    elif change == "defaults":
        (folder / "mlops-defaults.yaml").write_text(defaults.replace("7", "2"))
    else:
        monkeypatch.setenv("AIRFLOW_MLOPS_ALLOWED_ROOTS", str(tmp_path))  # other roots than the default
    specs, _, cache = load(folder, cache_dir)
    assert (cache.hits, cache.misses) == (0, 1)
    expected = {"spec": 1, "defaults": 2, "env_roots": 7}[change]
    assert specs["a"].defaults.retries == expected


def test_the_code_fingerprint_covers_every_module_a_parse_loads() -> None:
    """The loader and the models are several modules (YAML, messages, files, folder defaults, the
    models' sections), and they read vocabulary from other packages (metrics, tasks, expectation
    names): every module of the package a full parse loads is in the key."""
    import subprocess
    import sys

    from airflow_mlops.spec import cache as cache_module

    names = {entry[0] for entry in cache_module._code_fingerprint()[-1]}
    root = Path(cache_module.__file__).parents[1]
    probe = (
        "import sys; from airflow_mlops.spec.loader import load_spec; import airflow_mlops.spec.templates, "
        "airflow_mlops.spec.expectations, airflow_mlops.spec.estimators; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('airflow_mlops') and getattr(m, '__file__', None)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = {Path(f).resolve().relative_to(root).as_posix() for f in out.split()}
    assert {"spec/loader.py", "spec/sections/training.py", "metrics.py", "tasks.py"} <= loaded, loaded
    assert loaded <= names, loaded - names
    assert {"spec/yaml_positions.py", "spec/messages.py", "spec/files.py", "spec/folder_defaults.py"} <= names
    assert {"spec/gx_expectations.json", "spec/known_estimators.json"} <= names


def test_broken_specs_are_never_cached_and_keep_their_located_error(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path, {"good": BASE.format(name="good"), "bad": BASE.format(name="bad") + "scheduel: 1\n"}
    )
    cache_dir = tmp_path / "cache"
    for _ in range(2):
        dags, errors = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=cache_dir)
        assert sorted(dags) == ["good__train"]
        (error,) = errors.values()
        assert error.issues[0].line == 8 and "did you mean 'schedule'" in str(error)
    stored = json.loads(next(cache_dir.glob("specs-*.json")).read_text())
    assert len(stored["entries"]) == 1  # only the good spec


def test_an_entry_whose_operator_no_longer_imports_is_reparsed_with_its_line(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path, {"a": BASE.format(name="a") + f"steps:\n  - {{id: s, operator: {EMPTY_OP}}}\n"}
    )
    cache_dir = tmp_path / "cache"
    load(folder, cache_dir)
    cache_file = next(cache_dir.glob("specs-*.json"))
    stored = json.loads(cache_file.read_text())
    (entry,) = stored["entries"].values()
    entry["steps"][0]["operator"] = "no_such_package.Operator"  # as if the package were uninstalled
    cache_file.write_text(json.dumps(stored))

    cache = SpecCache(folder, cache_dir)
    key = next(iter(stored["entries"]))
    assert cache.get(key, base=folder, allowed_roots=[str(folder)]) is None
    assert cache.misses == 1


def test_an_entry_pointing_outside_the_allowed_roots_is_not_used(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, {"a": BASE.format(name="a")})
    cache_dir = tmp_path / "cache"
    load(folder, cache_dir)
    cache_file = next(cache_dir.glob("specs-*.json"))
    stored = json.loads(cache_file.read_text())
    ((key, entry),) = stored["entries"].items()
    entry["data"]["source"] = "/etc/{{ ds }}.parquet"
    cache_file.write_text(json.dumps(stored))
    cache = SpecCache(folder, cache_dir)
    assert cache.get(key, base=folder, allowed_roots=[str(folder)]) is None
    # The loader then parses the file, which is fine.
    specs, _, cache = load(folder, cache_dir)
    assert specs["a"].data.source == "data/{{ ds }}.parquet" and cache.misses == 1


def test_a_damaged_cache_file_costs_a_parse_and_is_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write_folder(tmp_path, {"a": BASE.format(name="a")})
    cache_dir = tmp_path / "cache"
    load(folder, cache_dir)
    cache_file = next(cache_dir.glob("specs-*.json"))
    cache_file.write_text('{"entries": {')
    specs, _, cache = load(folder, cache_dir)
    assert cache.misses == 1 and specs["a"].pipeline == "a"
    assert "ignoring the spec cache" in caplog.text
    assert len(json.loads(cache_file.read_text())["entries"]) == 1


def test_entries_of_deleted_specs_are_dropped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, {"a": BASE.format(name="a"), "b": BASE.format(name="b")})
    cache_dir = tmp_path / "cache"
    load(folder, cache_dir)
    (folder / "b.yaml").unlink()
    load(folder, cache_dir)
    assert len(json.loads(next(cache_dir.glob("specs-*.json")).read_text())["entries"]) == 1


def test_a_cache_path_that_is_a_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_folder(tmp_path, {"a": BASE.format(name="a")})
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    _, dags, _ = load(folder, blocker / "cache")
    assert "a__train" in dags and "could not write the spec cache" in caplog.text


def test_cache_location_and_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir() == tmp_path / "home" / "cache" / "airflow-mlops"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_dir() is None

    folder = write_folder(tmp_path, {"a": BASE.format(name="a")})
    dags, errors = load_dags_folder(folder, default_allowed_roots=[folder])
    assert "a__train" in dags and not errors
    assert not (tmp_path / "home" / "cache").exists() and not (tmp_path / "elsewhere").exists()


def test_the_example_spec_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    shutil.copytree(ROOT / "dags" / "specs", folder / "specs")
    (folder / "data").mkdir()
    first, errors = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=tmp_path / "c")
    assert not errors
    second, _ = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=tmp_path / "c")
    assert shape(first["fraud_detector__train"]) == shape(second["fraud_detector__train"])


def test_a_broken_spec_is_an_error_even_with_a_cache(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, {"a": "apiVersion: mlops/v1\npipeline: a\n"})
    with pytest.raises(SpecError, match="data"):
        load(folder, tmp_path / "cache")
