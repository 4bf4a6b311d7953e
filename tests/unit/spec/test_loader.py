from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.loader import load_spec, load_spec_text
from tests.unit.spec.test_language_features import BASE as MINIMAL

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def errors_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_text(textwrap.dedent(text), "spec.yaml")
    return info.value


def test_example_spec_loads() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.pipeline == "fraud_detector"
    assert spec.train_dag_id == "fraud_detector__train"
    assert spec.evaluation.metrics["roc_auc"].min == 0.8
    assert spec.data.features and "amount" in spec.data.features


def test_minimal_spec_gets_safe_defaults() -> None:
    spec = load_spec_text(MINIMAL)
    assert spec.validation.on_failure == "fail"
    assert spec.poisoning.max_suspect_fraction == 0.02
    assert spec.registry.alias == "champion"
    assert spec.schedule is None
    assert spec.defaults.model_fields_set == set()  # built-in task settings apply (see the factory)


def test_misspelt_key_names_line_column_and_suggestion() -> None:
    err = errors_of(MINIMAL.replace("  target: churned", "  target: churned\n  formt: csv"))
    (issue,) = err.issues
    assert (issue.line, issue.column) == (6, 3)
    assert issue.path == "data.formt"
    assert "did you mean 'format'" in issue.message
    assert "spec.yaml:6:3" in str(err)


def test_bad_enum_value_suggests_the_close_one() -> None:
    err = errors_of(MINIMAL + "validation:\n  on_failure: wrn\n")
    (issue,) = err.issues
    assert issue.path == "validation.on_failure"
    assert issue.line == 9
    assert "did you mean 'warn'" in issue.message
    assert "fail, warn" in (issue.hint or "")


def test_wrong_type_reports_value() -> None:
    err = errors_of(MINIMAL + "training:\n  params: {epochs: many}\n")
    (issue,) = err.issues
    assert issue.path == "training.params.epochs"
    assert issue.value == "many"
    assert issue.line == 9


def test_missing_required_field() -> None:
    err = errors_of(MINIMAL.replace("  target: churned\n", ""))
    assert any(i.path == "data.target" and "missing" in i.message for i in err.issues)


def test_duplicate_key_is_an_error_not_silently_overwritten() -> None:
    err = errors_of(MINIMAL + "pipeline: other\n")
    (issue,) = err.issues
    assert "duplicate key 'pipeline'" in issue.message
    assert "line 2" in issue.message
    assert issue.line == 8


def test_invalid_yaml_points_at_the_line() -> None:
    err = errors_of("apiVersion: mlops/v1\npipeline: [unclosed\ndata: {}\n")
    assert err.issues[0].message.startswith("invalid YAML")
    assert err.issues[0].line is not None


def test_invalid_cron_names_the_field() -> None:
    err = errors_of(MINIMAL + "schedule: '61 * * * *'\n")
    (issue,) = err.issues
    assert issue.path == "schedule"
    assert "minute" in issue.message and "61" in issue.message


def test_schedule_preset_typo() -> None:
    err = errors_of(MINIMAL + "schedule: '@dayly'\n")
    assert "did you mean '@daily'" in err.issues[0].message


def test_unknown_expectation_is_located_at_its_item() -> None:
    err = errors_of(
        MINIMAL + "validation:\n  expectations:\n    - expect_column_values_to_not_be_nul: {column: a}\n"
    )
    (issue,) = err.issues
    assert issue.line == 10
    assert "did you mean 'expect_column_values_to_not_be_null'" in issue.message


def test_unknown_metric_name() -> None:
    err = errors_of(MINIMAL + "evaluation:\n  metrics: {roc_acu: {min: 0.8}}\n")
    (issue,) = err.issues
    assert issue.path == "evaluation.metrics.roc_acu"
    assert "did you mean 'roc_auc'" in issue.message


def test_all_problems_reported_at_once() -> None:
    err = errors_of(MINIMAL.replace("churn-model", "churn-model\n  aliass: x") + "ownr: me\n")
    assert {i.path for i in err.issues} == {"registry.aliass", "ownr"}


def test_target_in_features_rejected() -> None:
    err = errors_of(MINIMAL.replace("  target: churned", "  target: churned\n  features: [a, churned]"))
    assert "must not be listed in features" in err.issues[0].message


def test_pipeline_identifier_hint() -> None:
    err = errors_of(MINIMAL.replace("pipeline: churn", "pipeline: Churn-Model"))
    assert "lowercase" in (err.issues[0].hint or "")


def test_yaml_tags_cannot_construct_python_objects() -> None:
    err = errors_of("!!python/object/apply:os.system ['echo hi']\n")
    assert "'!!python/object/apply:os.system' is not allowed" in err.issues[0].message
    assert (err.issues[0].line, err.issues[0].column) == (1, 1)


def test_empty_and_non_mapping_documents() -> None:
    assert "empty" in errors_of("").issues[0].message
    assert "mapping" in errors_of("- a\n- b\n").issues[0].message


def test_libyaml_and_pure_python_parsers_agree_on_data_and_positions() -> None:
    import yaml

    from airflow_mlops.spec import yaml_positions

    if yaml_positions._FAST_LOADER is None:
        pytest.skip("PyYAML built without libyaml")
    text = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text()
    fast = yaml_positions._parse_with(yaml_positions._FAST_LOADER, text, "f.yaml")
    slow = yaml_positions._parse_with(yaml.SafeLoader, text, "f.yaml")
    assert fast[0] == slow[0]
    assert fast[1].marks == slow[1].marks and fast[1].key_marks == slow[1].key_marks
    assert len(fast[1].marks) > 20


def test_bad_yaml_message_comes_from_the_pure_python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml rejects the file first; the message users read is PyYAML's, with its marks."""

    from airflow_mlops.spec import yaml_positions

    calls: list[str] = []
    real = yaml_positions._parse_with

    def spy(cls: type, text: str, file: str) -> object:
        calls.append(cls.__name__)
        return real(cls, text, file)

    monkeypatch.setattr(yaml_positions, "_parse_with", spy)
    with pytest.raises(SpecError) as err:
        yaml_positions.parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    issue = err.value.issues[0]
    assert issue.message.startswith("invalid YAML") and issue.line is not None
    if yaml_positions._FAST_LOADER is not None:
        assert calls == [yaml_positions._FAST_LOADER.__name__, yaml_positions._PySafeLoader.__name__]


def test_yaml_merge_keys_may_be_overridden_but_own_duplicates_may_not() -> None:
    from airflow_mlops.spec.loader import parse_yaml

    text = textwrap.dedent("""\
        base: &base {retries: 2, queue: cpu}
        other: &other {queue: io, pool: p}
        stage:
          <<: [*base, *other]
          queue: gpu
        """)
    data, located = parse_yaml(text, "m.yaml")
    # Own key beats the merged ones; of the merged maps the first listed wins (YAML merge rules).
    assert data["stage"] == {"retries": 2, "queue": "gpu", "pool": "p"}
    assert located.key_marks[("stage", "queue")] == (5, 3)

    with pytest.raises(SpecError) as err:
        parse_yaml(text + "  queue: again\n", "m.yaml")
    (issue,) = err.value.issues
    assert (issue.line, issue.path) == (6, "stage.queue") and "first given on line 5" in issue.message


def test_the_repository_compose_file_parses_with_the_spec_yaml_reader() -> None:
    """A real file with anchors and overriding merges (docker-compose.yaml) is not flagged."""
    from airflow_mlops.spec.loader import parse_yaml

    data, _ = parse_yaml((ROOT / "docker-compose.yaml").read_text(), "docker-compose.yaml")
    init = data["services"]["airflow-init"]
    # The service's own depends_on replaced the anchor's (which names airflow-init itself).
    assert next(iter(init["depends_on"])) == "postgres" and "airflow-init" not in init["depends_on"]
    assert init["command"][1] == "db"
    worker = data["services"]["airflow-worker"]  # a list merge: <<: [*airflow-env, *signing-env]
    assert {"AIRFLOW__SECRETS__BACKEND", "AIRFLOW__CORE__EXECUTOR"} <= set(worker["environment"])


def test_an_alias_bomb_is_refused_not_expanded() -> None:
    """Nested aliases would expand to 10**9 values; the reader stops at its limit, at the place."""
    from airflow_mlops.spec.loader import MAX_VALUES, parse_yaml

    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    with pytest.raises(SpecError) as err:
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    (issue,) = err.value.issues
    assert f"more than {MAX_VALUES:,} values" in issue.message and "alias" in (issue.hint or "")
    assert issue.line is not None and issue.path.startswith("l")
