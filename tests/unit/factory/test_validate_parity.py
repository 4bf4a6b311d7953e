"""`spec validate` and the DAG loader agree on every spec: one passes exactly what the other builds.

Validation runs the loader's own steps (parse, validate, check, build the DAGs), so the corpus
below holds specs that used to pass validation and then yield no DAG (a sync deadline callback,
a callable given as a string, a credential in a pod's environment, an operator that refuses its
arguments when built), besides hostile and plain broken ones, and good ones of each kind.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from airflow_mlops.cli.spec import validate as _validate
from airflow_mlops.factory.folder import load_dags_folder

BASE = """\
apiVersion: mlops/v1
pipeline: {name}
data:
  source: data/train.parquet
  target: y
registry:
  model_name: {name}
"""
CB = "tests.unit.factory.parity_callbacks"
PY = "airflow.providers.standard.operators.python.PythonOperator"
BASH = "airflow.providers.standard.operators.bash.BashOperator"
PICKY = "tests.unit.spec.corpus_operators.PickyOperator"
K8S = "artifacts: {root: s3://bucket/mlops}\ntraining:\n  backend: kubernetes\n  image: repo/trainer:1\n"

# name -> (YAML added to the base spec, whether the spec builds its DAGs)
CORPUS: dict[str, tuple[str, bool]] = {
    "plain": ("", True),
    "deadline_async": (f"deadline: {{after: 2h, callback: {CB}.late_async}}\n", True),
    "deadline_sync_fn_async_mode": (f"deadline: {{after: 2h, callback: {CB}.late_sync}}\n", False),
    "deadline_sync_mode": (f"deadline: {{after: 2h, callback: {CB}.late_sync, mode: sync}}\n", True),
    "deadline_not_callable": (f"deadline: {{after: 2h, callback: {CB}.NOT_CALLABLE, mode: sync}}\n", False),
    "deadline_notifier": (
        "deadline: {after: 2h, callback: tests.unit.spec.notifiers.RecordingNotifier}\n",
        True,
    ),
    "python_callable_string": (
        f"steps:\n  - id: hello\n    operator: {PY}\n    args: {{python_callable: {CB}.late_sync}}\n",
        False,
    ),
    "bash_step": (
        f"steps:\n  - id: hello\n    operator: {BASH}\n    args: {{bash_command: echo hi}}\n",
        True,
    ),
    "picky_ok": (f"steps:\n  - id: p\n    operator: {PICKY}\n    args: {{level: 2}}\n", True),
    "picky_refuses_at_build": (f"steps:\n  - id: p\n    operator: {PICKY}\n    args: {{level: 5}}\n", False),
    "env_credential": (K8S + "  kubernetes:\n    env: {MY_API_TOKEN: abc}\n", False),
    "env_private_key": (K8S + "  kubernetes:\n    env: {private_key_path: /k}\n", False),
    "env_key_by_name": (K8S + "  kubernetes:\n    env: {S3_KEY: abc}\n", False),
    "env_aws_key_by_value": (K8S + "  kubernetes:\n    env: {STORE: AKIAIOSFODNN7EXAMPLE}\n", False),
    "env_uri_with_password": (K8S + "  kubernetes:\n    env: {DSN: 'postgresql://u:pw@db/x'}\n", False),
    "s3_root_outside_the_roots": ("artifacts: {root: s3://other/mlops}\n", False),
    "s3_source_outside_the_roots": ("artifacts: {root: s3://bucket/mlops/x}\n", True),
    "env_plain": (K8S + "  kubernetes:\n    env: {AWS_ENDPOINT_URL: 'http://minio:9000'}\n", True),
    "kubernetes_local_root": (K8S.replace("s3://bucket/mlops", "artifacts") + "\n", False),
    "tag": ("description: !!binary aGVsbG8=\n", False),
    "deep": ("x: " + "[" * 50_000 + "]" * 50_000 + "\n", False),
    "deep_block": (
        "x:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(200)) + " " * 201 + "b: 1\n",
        False,
    ),
    "huge_duration": ("defaults: {execution_timeout: 99999999999999d}\n", False),
    "huge_int": ("max_active_runs: 99999999999999999999999\n", False),
    "far_date": ("start_date: 9999-12-31\n", False),
    "unknown_key": ("descripton: typo\n", False),
    "brackets_in_strings": ("description: '" + "[{" * 3000 + "'\n# ]]]]\n", True),
    # merges hidden where nothing constructs them (a complex key) once overflowed the stack
    "merge_chain_in_keys": (
        "? &m0 {k0: 0}\n: 1\n"
        + "".join(f"? &m{i} {{<<: *m{i - 1}, k{i}: {i}}}\n: 1\n" for i in range(1, 3000)),
        False,
    ),
    # each mapping merging the one before twice: 2**40 keys once flattened
    "merge_doubling": (
        "? &m0 {k: 0}\n: 1\n"
        + "".join(f"? &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}\n: 1\n" for i in range(1, 40)),
        False,
    ),
    "merge_reused_by_alias": (
        "defaults: &d {<<: {retries: 1}, retries: 2}\nstages: {train: *d, evaluate: *d}\n",
        True,
    ),
    "merge_of_itself": ("defaults: &d {<<: *d, retries: 2}\n", False),
    "base_60_integer": ("description: 1" + ":0" * 100_000 + "\n", False),
    "escape_past_unicode": ('description: "\\UFFFFFFFF"\n', False),
    "template_nested_deep": ("artifacts: {root: 'x/{{ " + "(" * 300 + "ds" + ")" * 300 + " }}'}\n", False),
    "template_long_chain": ("artifacts: {root: 'x/{{ ds" + " | upper" * 2000 + " }}'}\n", False),
    "template_nested_ok": ('artifacts: {root: \'x/{{ ((ds)) | replace("-", "/") }}\'}\n', True),
    "many_schedule_events": (
        "schedule: {events: [" + ", ".join(f"s3://b/k{i}" for i in range(40)) + "]}\n",
        False,
    ),
}


def _write(folder: Path, name: str, extra: str) -> Path:
    path = folder / f"{name}.yaml"
    text = BASE.format(name=name) + extra
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("dags")
    (folder / "mlops_specs.py").write_text("# calls load_dags_folder( for spec validate\n", encoding="utf-8")
    (folder / "data").mkdir()
    # the folder's roots: itself and the pods' bucket (an S3 location needs an s3:// root)
    (folder / "mlops-defaults.yaml").write_text(
        f"apiVersion: mlops/v1\nkind: Defaults\nallowed_roots: [{folder}, 's3://bucket/mlops']\n",
        encoding="utf-8",
    )
    paths = {name: _write(folder, name, extra) for name, (extra, _) in CORPUS.items()}
    wide = BASE.format(name="utf16") + "description: café\n"
    (folder / "utf16.yaml").write_bytes(codecs.BOM_UTF16_LE + wide.encode("utf-16-le"))
    (folder / "utf16_no_bom.yaml").write_bytes(wide.replace("utf16", "utf16_no_bom").encode("utf-16-be"))
    (folder / "latin1.yaml").write_bytes(BASE.format(name="latin1").encode() + b"description: caf\xe9\n")
    paths.update({n: folder / f"{n}.yaml" for n in ("utf16", "utf16_no_bom", "latin1")})
    return folder, paths


EXPECTED = {**{n: ok for n, (_, ok) in CORPUS.items()}, "utf16": True, "utf16_no_bom": True, "latin1": False}


def test_validate_passes_exactly_the_specs_the_loader_builds(
    corpus: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, paths = corpus
    dags, errors = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=None)
    built = {name: f"{name}__train" in dags for name in paths}
    assert built == EXPECTED  # the corpus means what it says
    for name, path in paths.items():
        capsys.readouterr()
        verdict = _validate([str(path)], None, dags_folder=str(folder)) == 0
        out = capsys.readouterr()
        assert verdict == built[name], f"{name}: validate {'passed' if verdict else 'refused'}:\n{out.err}"
        if not verdict:  # the same message, word for word
            loader_error = errors[str(path)]
            assert str(loader_error) in out.err, f"{name}:\n{loader_error}\n---\n{out.err}"


def test_validating_the_folder_agrees_too(
    corpus: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, paths = corpus
    assert _validate([str(folder)], None, dags_folder=str(folder)) == 1
    out = capsys.readouterr().out
    passed = {line.split(":")[0] for line in out.splitlines() if ": ok (pipeline" in line}
    assert passed == {str(paths[n]) for n, ok in EXPECTED.items() if ok}


def test_a_pipeline_name_taken_by_an_earlier_spec_fails_in_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two specs with one `pipeline`: the loader keeps the first in path order and refuses the
    other at its `pipeline:` line; validate says the same of each file, alone or together."""
    (tmp_path / "mlops_specs.py").write_text("# calls load_dags_folder(\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    first = _write(tmp_path, "a_first", "")
    second = tmp_path / "b_second.yaml"
    second.write_text(BASE.format(name="a_first"), encoding="utf-8")
    dags, errors = load_dags_folder(tmp_path, default_allowed_roots=[tmp_path], cache_dir=None)
    assert sorted(dags) == ["a_first__train"] and set(errors) == {str(second)}
    (issue,) = errors[str(second)].issues
    assert (issue.line, issue.path) == (2, "pipeline") and "already defined by" in issue.message
    for files in ([second], [second, first], [first, second], [tmp_path]):
        capsys.readouterr()
        assert _validate([str(f) for f in files], None) == 1
        err = capsys.readouterr().err
        assert "b_second.yaml:2:1: pipeline: DAG id 'a_first__train' is already defined by" in err
        assert "a_first.yaml" not in err.split("already defined by")[0]
    assert _validate([str(first)], None) == 0
    assert _validate([str(first), str(first)], None) == 0  # a file named twice is no clash
