"""What the tasks actually read stays under the allowed roots: the rendered source, event URIs and
refs, references, the monitor's inputs and the artifact root, checked when the task runs."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.allowed_roots import ENV_VAR
from airflow_mlops.artifacts import ArtifactStore, sha256_file
from airflow_mlops.exceptions import DataError, OutsideAllowedRootsError
from airflow_mlops.operators.data import DataValidateOperator, PoisoningScreenOperator

T0 = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)


class _Events(dict):
    def items(self):  # type: ignore[override]
        return [(SimpleNamespace(uri=k), v) for k, v in super().items()]


def events(*extras: dict[str, Any]) -> _Events:
    out = _Events()
    for i, extra in enumerate(extras):
        ev = SimpleNamespace(
            asset=SimpleNamespace(uri="x-mlops://p/new_data"),
            extra=extra,
            timestamp=T0 + dt.timedelta(minutes=i),
        )
        out.setdefault(ev.asset.uri, []).append(ev)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "data" / "2026-01-03").mkdir(parents=True)
    outside.mkdir()
    frame = pd.DataFrame({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
    frame.to_csv(root / "data" / "2026-01-03" / "file.csv", index=False)
    frame.to_csv(outside / "file.csv", index=False)
    frame.to_parquet(outside / "secret.parquet")
    return {"root": root, "outside": outside, "tmp": tmp_path}


def fresh(tree: dict[str, Path]) -> Path:
    """A new scratch folder (a task's scratch is used once)."""
    return Path(tempfile.mkdtemp(dir=tree["tmp"]))


def validate(tree: dict[str, Path], source: str, **kwargs: Any) -> DataValidateOperator:
    from airflow.sdk import DAG

    with DAG("p__train", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
        return DataValidateOperator(
            task_id="validate",
            pipeline="p",
            artifact_root=str(tree["root"] / "store"),
            source=source,
            allowed_roots=[str(tree["root"])],
            **kwargs,
        )


def scheduled(ds: str = "2026-01-03") -> dict[str, Any]:
    return {
        "logical_date": T0,
        "ds": ds,
        "triggering_asset_events": _Events(),
        "run_id": "scheduled__x",
        "dag": SimpleNamespace(dag_id="p__train"),
    }


def test_a_rendered_source_inside_the_roots_is_read(tree: dict[str, Path]) -> None:
    df, source = validate(tree, f"{tree['root']}/data/{{{{ ds }}}}/file.csv")._read_batch(
        scheduled(), fresh(tree)
    )
    assert len(df) == 4 and source.endswith("2026-01-03/file.csv")


def test_dot_dot_after_the_template_is_refused_when_the_task_runs(tree: dict[str, Path]) -> None:
    op = validate(tree, f"{tree['root']}/data/{{{{ ds }}}}/../../../outside/file.csv")
    with pytest.raises(OutsideAllowedRootsError, match=r"data\.source .*outside/file\.csv.*allowed roots"):
        op._read_batch(scheduled(), fresh(tree))


def test_dot_dot_inside_a_rendered_value_is_refused(tree: dict[str, Path]) -> None:
    op = validate(tree, f"{tree['root']}/data/{{{{ ds }}}}.csv")
    with pytest.raises(OutsideAllowedRootsError):
        op._read_batch(scheduled(ds="../../outside/file"), tree["tmp"])


def test_a_symlink_inside_a_root_leading_out_is_refused(tree: dict[str, Path]) -> None:
    (tree["root"] / "data" / "2026-01-04").symlink_to(tree["outside"], target_is_directory=True)
    op = validate(tree, f"{tree['root']}/data/{{{{ ds }}}}/file.csv")
    with pytest.raises(OutsideAllowedRootsError, match=str(tree["outside"].resolve())):
        op._read_batch(scheduled(ds="2026-01-04"), tree["tmp"])


def test_the_refusal_fails_the_task_without_retry(tree: dict[str, Path]) -> None:
    op = validate(tree, f"{tree['root']}/data/{{{{ ds }}}}/../../../outside/file.csv")
    with pytest.raises(AirflowFailException) as info:
        op.execute(scheduled())
    assert isinstance(info.value, OutsideAllowedRootsError)
    assert not (tree["root"] / "store").exists()  # nothing was snapshotted


@pytest.mark.parametrize(
    "uri",
    [
        "{outside}/file.csv",
        "file://{outside}/file.csv",
        "file://{root}/data/%2e%2e/%2e%2e/outside/file.csv",
        "file://{root}/data/%2E%2E/..%2F..%2Foutside/file.csv",
        "{root}/data/../../outside/file.csv",
        "../outside/file.csv",  # relative: where the worker would open it
        "file://otherhost{root}/data/2026-01-03/file.csv",
    ],
)
def test_event_uris_outside_the_roots_are_refused(
    tree: dict[str, Path], uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree["root"])
    uri = uri.format(root=tree["root"], outside=tree["outside"])
    context = {"logical_date": None, "triggering_asset_events": events({"data": [uri]})}
    with pytest.raises(OutsideAllowedRootsError):
        validate(tree, "unused.csv")._read_batch(context, fresh(tree))
    watcher = {"logical_date": None, "triggering_asset_events": events({"payload": {"data": [uri]}})}
    with pytest.raises(OutsideAllowedRootsError):
        validate(tree, "unused.csv")._read_batch(watcher, fresh(tree))


def test_event_uris_inside_the_roots_are_read(tree: dict[str, Path]) -> None:
    inside = tree["root"] / "data" / "2026-01-03" / "file.csv"
    for uri in (str(inside), f"file://{inside}", f"file://{str(inside).replace('/data/', '/%64ata/')}"):
        context = {"logical_date": None, "triggering_asset_events": events({"data": [uri]})}
        df, _ = validate(tree, "unused.csv")._read_batch(context, fresh(tree))
        assert len(df) == 4


def test_an_event_ref_is_read_only_from_the_store_or_the_roots(tree: dict[str, Path]) -> None:
    secret = tree["outside"] / "secret.parquet"
    forged = {
        "uri": str(secret),
        "sha256": sha256_file(secret),  # whoever posts the event writes the digest too
        "size": secret.stat().st_size,
        "media_type": "application/vnd.apache.parquet",
    }
    context = {
        "logical_date": None,
        "triggering_asset_events": events({"data": [str(secret)], "data_refs": [forged]}),
    }
    with pytest.raises(OutsideAllowedRootsError, match="data ref"):
        validate(tree, "unused.csv")._read_batch(context, fresh(tree))
    # A ref into this pipeline's artifact store is read (and verified), wherever the store is.
    store = ArtifactStore(str(tree["tmp"] / "default-store"))
    ref = store.put_file(secret, "p/r/monitor/window.parquet").to_dict()
    context = {
        "logical_date": None,
        "triggering_asset_events": events({"data": [ref["uri"]], "data_refs": [ref]}),
    }
    op = validate(tree, "unused.csv")
    op.artifact_root = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", str(tree["tmp"] / "default-store"))
        df, _ = op._read_batch(context, fresh(tree))
    assert len(df) == 4


def test_a_reference_outside_the_roots_is_refused(tree: dict[str, Path]) -> None:
    source = f"{tree['root']}/data/{{{{ ds }}}}/file.csv"
    op = validate(tree, source, reference=str(tree["outside"] / "file.csv"))
    with pytest.raises(AirflowFailException, match=r"data\.reference"):
        op.execute(scheduled())
    store = ArtifactStore(str(tree["root"] / "store"))
    ref = store.put_file(tree["outside"] / "secret.parquet", "p/r/validate/batch.parquet")
    screen = PoisoningScreenOperator(
        task_id="screen",
        pipeline="p",
        artifact_root=str(tree["root"] / "store"),
        data=ref.to_dict(),
        target="y",
        checks=["duplicates"],
        reference=f"file://{tree['root']}/%2e%2e/outside/secret.parquet",
        allowed_roots=[str(tree["root"])],
    )
    with pytest.raises(AirflowFailException, match=r"data\.reference"):
        screen.execute({"run_id": "r", "dag": SimpleNamespace(dag_id="p__train")})


def test_an_artifact_root_outside_the_roots_is_refused(tree: dict[str, Path]) -> None:
    op = validate(tree, "unused.csv")
    op.artifact_root = str(tree["outside"] / "store")
    with pytest.raises(OutsideAllowedRootsError, match=r"artifacts\.root"):
        op.artifact_store()


def test_the_deployment_variable_holds_even_without_task_roots(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    op = validate(tree, str(tree["outside"] / "file.csv"))
    op.allowed_roots = None  # a hand-written DAG that names none
    monkeypatch.setenv(ENV_VAR, str(tree["root"]))
    with pytest.raises(OutsideAllowedRootsError):
        op._read_batch(scheduled(), fresh(tree))
    monkeypatch.delenv(ENV_VAR)
    df, _ = op._read_batch(scheduled(), fresh(tree))  # no roots anywhere: not restricted
    assert len(df) == 4


def test_monitor_inputs_go_through_the_same_check(tree: dict[str, Path]) -> None:
    from airflow_mlops.operators.monitor import ChampionScoreOperator

    op = ChampionScoreOperator(
        task_id="score",
        pipeline="p",
        source=str(tree["outside"] / "file.csv"),
        target="y",
        model_name="m",
        allowed_roots=[str(tree["root"])],
    )
    with pytest.raises(OutsideAllowedRootsError, match=r"monitoring\.source"):
        op.fetch_source(op.source, tree["tmp"], "monitoring.source")
    inside = tree["root"] / "data" / "2026-01-03" / "file.csv"
    assert op.fetch_source(f"file://{inside}", tree["tmp"]) == inside.resolve()


def test_a_bad_table_from_an_event_fails_finally(tree: dict[str, Path]) -> None:
    bad = tree["root"] / "dup.csv"
    bad.write_text("x,x\n1,2\n")
    context = {"logical_date": None, "triggering_asset_events": events({"data": [str(bad)]})}
    with pytest.raises(DataError, match="duplicated"):
        validate(tree, "unused.csv")._read_batch(context, fresh(tree))
