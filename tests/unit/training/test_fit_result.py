"""The fit step's interface: the store root a job records, the trainer's arguments for a job, and
the trainer's result read back from a dict, its JSON or log lines ending in the result marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import ArtifactError, TrainingError
from airflow_mlops.training.fit_result import parse_fit_result, store_root_uri, trainer_arguments
from airflow_mlops.training.job import RESULT_MARKER

REF = ArtifactRef(
    uri="s3://bucket/p/run/train/job.json",
    sha256="ab" * 32,
    size=123,
    media_type="application/json",
    producer="prepare",
    metadata={"b": 1, "a": 2},
)
WEIGHTS = {"uri": "s3://bucket/p/run/train/weights", "sha256": "cd" * 32, "size": 9, "media_type": "dir"}
RESULT = {"format_version": 1, "weights": WEIGHTS, "metrics": {"val_roc_auc": 0.9}}


# --- store_root_uri -------------------------------------------------------------------------------


def test_an_s3_store_root_has_no_trailing_slash() -> None:
    assert store_root_uri(ArtifactStore("s3://bucket/prefix/")) == "s3://bucket/prefix"
    assert store_root_uri(ArtifactStore("s3://bucket")) == "s3://bucket"


def test_a_local_store_root_is_its_absolute_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "store").mkdir()
    monkeypatch.chdir(tmp_path)

    root = store_root_uri(ArtifactStore("store/"))

    assert Path(root).is_absolute()
    assert Path(root).resolve() == (tmp_path / "store").resolve()
    assert not root.endswith("/")


# --- trainer_arguments ----------------------------------------------------------------------------


def test_the_job_ref_is_passed_as_compact_sorted_json() -> None:
    args = trainer_arguments(REF)

    assert args[0] == "--job" and len(args) == 2
    assert json.loads(args[1]) == REF.to_dict()
    assert args[1] == json.dumps(REF.to_dict(), sort_keys=True, separators=(",", ":"))
    assert " " not in args[1]


def test_a_ref_its_dict_and_its_json_give_the_same_arguments() -> None:
    expected = trainer_arguments(REF)
    assert trainer_arguments(REF.to_dict()) == expected
    assert trainer_arguments(json.dumps(REF.to_dict())) == expected


def test_the_result_file_and_the_printed_result_are_asked_for_when_wanted() -> None:
    assert trainer_arguments(REF, result="/airflow/xcom/return.json")[2:] == [
        "--result",
        "/airflow/xcom/return.json",
    ]
    assert trainer_arguments(REF, print_result=True)[2:] == ["--print-result"]
    assert trainer_arguments(REF, result="r.json", print_result=True)[2:] == [
        "--result",
        "r.json",
        "--print-result",
    ]
    assert trainer_arguments(REF, result="")[2:] == []  # an empty path asks for nothing


def test_a_job_that_is_not_a_ref_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not an artifact reference"):
        trainer_arguments({"uri": "s3://x"})


# --- parse_fit_result -----------------------------------------------------------------------------


def test_a_result_dict_is_read_and_copied() -> None:
    parsed = parse_fit_result(RESULT)

    assert parsed == RESULT
    assert parsed["weights"] is not RESULT["weights"]  # the caller's dicts are not shared
    assert parsed["metrics"] is not RESULT["metrics"]


def test_only_the_result_keys_are_kept_and_missing_metrics_read_as_none() -> None:
    parsed = parse_fit_result({**RESULT, "metrics": None, "extra": "dropped"})
    assert parsed == {"format_version": 1, "weights": WEIGHTS, "metrics": {}}
    assert parse_fit_result({"format_version": 1, "weights": WEIGHTS})["metrics"] == {}


def test_the_results_json_is_read() -> None:
    assert parse_fit_result(json.dumps(RESULT)) == RESULT
    assert parse_fit_result("\n\n" + json.dumps(RESULT) + "\n  \n") == RESULT  # blank lines around it


def test_log_lines_are_read_from_the_last_result_marker() -> None:
    old = {**RESULT, "metrics": {"val_roc_auc": 0.1}}
    log = "\n".join(
        [
            "epoch 1/2 train_loss=0.5",
            "2024-01-01 INFO " + RESULT_MARKER + json.dumps(old),
            "2024-01-01 INFO " + RESULT_MARKER + json.dumps(RESULT),
            "a line the container printed after the result",
        ]
    )
    assert parse_fit_result(log) == RESULT


def test_a_list_of_log_lines_is_read_like_the_text() -> None:
    lines = ["device: cpu", RESULT_MARKER + json.dumps(RESULT)]
    assert parse_fit_result(lines) == RESULT
    assert parse_fit_result(tuple(lines)) == RESULT


def test_without_a_marker_the_last_line_is_the_result() -> None:
    assert parse_fit_result(["some log", json.dumps(RESULT)]) == RESULT


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("epoch 1/2 train_loss=0.5\ndone", "returned no trainer result (last line 'done')"),
        ("", "returned no trainer result (last line '')"),
        ([], "returned no trainer result (last line '')"),
        (RESULT_MARKER + "{broken", "returned no trainer result (last line '{broken')"),
    ],
    ids=["no-json", "empty", "no-lines", "broken-json"],
)
def test_output_without_a_result_is_refused_with_its_last_line(value: object, message: str) -> None:
    with pytest.raises(TrainingError) as info:
        parse_fit_result(value, where="the container of task fit")
    assert str(info.value).startswith("the container of task fit ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        {**RESULT, "format_version": 2},
        {"format_version": 1, "metrics": {}},
        ["a", "list"],
        None,
        42,
    ],
    ids=["other-version", "no-weights", "list-json", "none", "number"],
)
def test_anything_but_a_version_1_result_is_refused(value: object) -> None:
    if isinstance(value, list):
        value = json.dumps(value)  # valid JSON, but not an object
    with pytest.raises(
        TrainingError, match=r"the fit step returned .*not a trainer result \(format_version 1\)"
    ):
        parse_fit_result(value)


def test_a_long_bad_output_is_cut_in_the_message() -> None:
    with pytest.raises(TrainingError) as info:
        parse_fit_result("x" * 5000)
    assert len(str(info.value)) < 300
