"""Allowed roots from the dags folder's side: a defaults file narrows the deployment's roots but
cannot widen them, the spec-time check judges the whole path, and the built tasks carry the roots
they check again when they run."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.allowed_roots import ENV_VAR
from airflow_mlops.factory.folder import load_dags_folder

SPEC = """\
apiVersion: mlops/v1
pipeline: churn
data:
  source: {source}
  target: churned
registry:
  model_name: churn-model
"""


@pytest.fixture
def dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(ENV_VAR, raising=False)
    folder = tmp_path / "dags"
    (folder / "specs").mkdir(parents=True)
    (tmp_path / "data" / "team").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return folder


def write(dags: Path, source: str, roots: list[str] | None = None) -> Path:
    spec = dags / "specs" / "churn.yaml"
    spec.write_text(SPEC.format(source=source))
    if roots is not None:
        (dags / "specs" / "mlops-defaults.yaml").write_text(
            "apiVersion: mlops/v1\nkind: Defaults\nallowed_roots:\n" + "".join(f"  - {r}\n" for r in roots)
        )
    return spec


def load(dags: Path) -> tuple[dict, dict]:
    return load_dags_folder(dags, default_allowed_roots=[dags], cache_dir=None)


def test_a_defaults_file_may_narrow_the_variable(dags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dags.parent / "data"
    monkeypatch.setenv(ENV_VAR, str(data))
    write(dags, f"{data}/team/{{{{ ds }}}}.csv", roots=[str(data / "team")])
    built, errors = load(dags)
    assert not errors
    validate = built["churn__train"].get_task("data.validate")
    assert validate.allowed_roots == [str((data / "team").resolve())]
    # every lifecycle task carries them, so the monitor's and trainer's reads are checked too
    assert built["churn__train"].get_task("data.screen").allowed_roots == validate.allowed_roots


@pytest.mark.parametrize("widening", ["../../elsewhere", "../../data-x", "/", "s3://bucket/data"])
def test_a_defaults_file_cannot_widen_the_variable(
    dags: Path, monkeypatch: pytest.MonkeyPatch, widening: str
) -> None:
    data = dags.parent / "data"
    monkeypatch.setenv(ENV_VAR, str(data))
    spec = write(dags, f"{data}/team/x.csv", roots=[str(data / "team"), widening])
    built, errors = load(dags)
    assert "churn__train" not in built
    text = str(errors[str(spec)])
    assert "mlops-defaults.yaml" in text and "allowed_roots[1]" in text and "widens" in text
    assert repr(widening) in text and str(data) in text


def test_a_defaults_link_that_leads_out_cannot_widen(dags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dags.parent / "data"
    (data / "team" / "out").symlink_to(dags.parent / "elsewhere", target_is_directory=True)
    monkeypatch.setenv(ENV_VAR, str(data))
    spec = write(dags, f"{data}/team/out/x.csv", roots=[str(data / "team" / "out")])
    _, errors = load(dags)
    assert "widens" in str(errors[str(spec)])


def test_without_the_variable_the_defaults_file_decides(dags: Path) -> None:
    elsewhere = dags.parent / "elsewhere"
    write(dags, f"{elsewhere}/x.csv", roots=[str(elsewhere)])
    built, errors = load(dags)
    assert not errors
    assert built["churn__train"].get_task("data.validate").allowed_roots == [str(elsewhere.resolve())]


@pytest.mark.parametrize(
    "source",
    [
        "../../data/{{ ds }}/../../../outside/file.csv",
        "/{{ ds }}/../../etc/passwd",
        "../../data/team/{% if true %}x{% endif %}/../../../../outside.csv",
        "file://{data}/%2e%2e/elsewhere/x.csv",
        "{data}/../elsewhere/x.csv",
        "{data}-evil/x.csv",
    ],
)
def test_the_spec_time_check_judges_the_whole_path(
    dags: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dags.parent / "data"
    monkeypatch.setenv(ENV_VAR, str(data))
    spec = write(dags, source.replace("{data}", str(data)))
    _, errors = load(dags)
    assert "outside the allowed roots" in str(errors[str(spec)])


def test_the_spec_time_check_follows_links(dags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dags.parent / "data"
    (data / "team" / "out").symlink_to(dags.parent / "elsewhere", target_is_directory=True)
    monkeypatch.setenv(ENV_VAR, str(data))
    spec = write(dags, f"{data}/team/out/{{{{ ds }}}}.csv")
    _, errors = load(dags)
    assert "outside the allowed roots" in str(errors[str(spec)])
    assert str((dags.parent / "elsewhere").resolve()) in str(errors[str(spec)])


def test_the_new_data_watcher_carries_the_roots(dags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dags.parent / "data"
    monkeypatch.setenv(ENV_VAR, str(data))
    text = SPEC.format(source=f"{data}/team/x.csv").replace(
        "  target: churned\n",
        f"  target: churned\n  new_data:\n    location: {data}/team\n    pattern: '*.csv'\n",
    )
    (dags / "specs" / "churn.yaml").write_text(text + "schedule:\n  events: [new_data]\n")
    built, errors = load(dags)
    assert not errors, errors
    dag = built["churn__train"]
    [watcher] = dag.timetable.asset_condition.watchers
    assert watcher.trigger.serialize()[1]["allowed_roots"] == [str(data.resolve())]


def test_spec_validate_refuses_a_widening_defaults_file_as_the_loader_does(
    dags: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_mlops.cli import main

    data = dags.parent / "data"
    monkeypatch.setenv(ENV_VAR, str(data))
    spec = write(dags, f"{data}/team/x.csv", roots=[str(data / "team"), "../../elsewhere"])
    assert main(["spec", "validate", str(spec), "--dags-folder", str(dags)]) == 1
    assert "widens" in capsys.readouterr().err
    # the same folder narrowed properly validates
    write(dags, f"{data}/team/x.csv", roots=[str(data / "team")])
    assert main(["spec", "validate", str(spec), "--dags-folder", str(dags)]) == 0
