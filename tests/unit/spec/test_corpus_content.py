"""A corpus of specs with one content mistake each: templates, Great Expectations arguments, step
and notifier arguments, nested keys and shapes, step cycles. Every message is asserted on its
line, key path and a fragment of the fix, through the loader, the CLI and the dags-folder loader;
and a corpus of valid unusual specs must pass all three.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_mlops import cli
from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.loader import load_spec_text
from tests.unit.spec.test_language_features import BASE

BASH = "airflow.providers.standard.operators.bash.BashOperator"
EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
SMTP = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"


def with_data(extra: str) -> str:
    return BASE.replace("  target: churned\n", "  target: churned\n" + extra)


@dataclass(frozen=True)
class Bad:
    """A spec with one mistake: the key path, the line of ``marker``, and fragments of the message."""

    id: str
    text: str
    path: str
    marker: str  # text on the line the issue must point at (its first occurrence)
    message: str  # fragment of the message
    fix: str  # fragment of the hint (the fix), or of the message when it carries the fix

    @property
    def line(self) -> int:
        return next(n for n, line in enumerate(self.text.splitlines(), 1) if self.marker in line)


BAD: list[Bad] = [
    # --- templates --------------------------------------------------------------------------
    Bad(
        "template-unclosed",
        BASE.replace("{{ ds }}", "{{ ds }"),
        "data.source",
        "source:",
        "invalid template: unexpected '}'",
        "close every `{{` with `}}`",
    ),
    Bad(
        "template-unclosed-end",
        BASE.replace("{{ ds }}", "{{ ds "),
        "data.source",
        "source:",
        "invalid template",
        "close every `{{`",
    ),
    Bad(
        "template-unclosed-block",
        BASE.replace("{{ ds }}", "{% if ds %}x"),
        "data.source",
        "source:",
        "invalid template",
        "`{%` with `%}`",
    ),
    Bad(
        "template-missing-open-brace",
        BASE.replace("{{ ds }}", "{ ds }}"),
        "data.source",
        "source:",
        "missing '{'",
        "`{{ name }}`",
    ),
    Bad(
        "template-unknown-variable",
        BASE.replace("{{ ds }}", "{{ dss }}"),
        "data.source",
        "source:",
        "unknown template variable 'dss'; did you mean 'ds'?",
        "ds_nodash",
    ),
    Bad(
        "template-unknown-variable-nodash",
        BASE.replace("{{ ds }}", "{{ ds_nodahs }}"),
        "data.source",
        "source:",
        "did you mean 'ds_nodash'?",
        "Airflow's template variables",
    ),
    Bad(
        "template-unknown-filter",
        BASE.replace("{{ ds }}", "{{ logical_date | ds_nodsh }}"),
        "data.source",
        "source:",
        "unknown template filter 'ds_nodsh'; did you mean 'ds_nodash'?",
        "Airflow's ds, ds_nodash, ts",
    ),
    Bad(
        "template-unknown-macro",
        BASE.replace("{{ ds }}", "{{ macros.ds_ad(ds, -1) }}"),
        "data.source",
        "source:",
        "unknown macro 'macros.ds_ad'; did you mean 'ds_add'?",
        "macros.ds_format",
    ),
    Bad(
        "template-unknown-var-accessor",
        BASE.replace("{{ ds }}", "{{ var.valu.bucket }}"),
        "data.source",
        "source:",
        "'var.valu' is not defined; did you mean 'value'?",
        "{{ var.value.<name> }}",
    ),
    Bad(
        "template-unknown-test",
        BASE.replace("{{ ds }}", "{{ 'a' if ds is definedd else 'b' }}"),
        "data.source",
        "source:",
        "unknown template test 'definedd'; did you mean 'defined'?",
        "tests:",
    ),
    Bad(
        "template-event-source-has-no-interval",
        with_data("  event_source: data/events/{{ ds }}.parquet\n"),
        "data.event_source",
        "event_source:",
        "{{ ds }} is undefined here",
        "{{ run_id }}",
    ),
    Bad(
        "template-monitoring-source",
        BASE + "monitoring:\n  source: live/{{ ts_nodahs }}.parquet\n",
        "monitoring.source",
        "live/",
        "did you mean 'ts_nodash'?",
        "Airflow's template variables",
    ),
    Bad(
        "template-artifacts-root",
        BASE + "artifacts:\n  root: out/{{ ds }\n",
        "artifacts.root",
        "root:",
        "invalid template",
        "close every",
    ),
    Bad(
        "template-step-argument",
        BASE
        + f"steps:\n  - id: report\n    operator: {BASH}\n    args:\n      bash_command: echo {{{{ dss }}}}\n",
        "steps[0].args.bash_command",
        "bash_command:",
        "unknown template variable 'dss'",
        "Airflow's template variables",
    ),
    Bad(
        "template-step-argument-nested",
        BASE
        + f"steps:\n  - id: report\n    operator: {BASH}\n    args:\n      bash_command: echo\n"
        + "      env:\n        DAY: '{{ ds | upperr }}'\n",
        "steps[0].args.env.DAY",
        "DAY:",
        "unknown template filter 'upperr'; did you mean 'upper'?",
        "Jinja's built-ins",
    ),
    Bad(
        "template-notifier-argument",
        BASE
        + f"defaults:\n  notify:\n    on_failure:\n      - notifier: {SMTP}\n"
        + "        args: {to: ops@example.com, subject: 'failed {{ dag_run.run_id }'}\n",
        "defaults.notify.on_failure[0].args.subject",
        "args:",
        "invalid template",
        "close every",
    ),
    Bad(
        "template-expectation-argument",
        BASE
        + "validation:\n  expectations:\n"
        + "    - expect_table_row_count_to_be_between: {min_value: '{{ var.value.min_rows }'}\n",
        "validation.expectations[0].expect_table_row_count_to_be_between.min_value",
        "min_value",
        "invalid template",
        "close every",
    ),
    # --- Great Expectations arguments ---------------------------------------------------------
    Bad(
        "gx-misspelt-argument",
        BASE
        + "validation:\n  expectations:\n    - expect_column_values_to_be_between: {column: a, min: 0}\n",
        "validation.expectations[0].expect_column_values_to_be_between.min",
        "expect_column_values_to_be_between",
        "has no argument 'min'; did you mean 'min_value'?",
        "min_value, max_value",
    ),
    Bad(
        "gx-misspelt-argument-block",
        BASE
        + "validation:\n  expectations:\n    - expect_column_values_to_match_regex:\n"
        + "        column: email\n        regx: '@'\n",
        "validation.expectations[0].expect_column_values_to_match_regex.regx",
        "regx:",
        "did you mean 'regex'?",
        "column (required)",
    ),
    Bad(
        "gx-missing-required",
        BASE + "validation:\n  expectations:\n    - expect_column_values_to_be_in_set: {column: a}\n",
        "validation.expectations[0].expect_column_values_to_be_in_set",
        "expect_column_values_to_be_in_set",
        "needs the argument(s) 'value_set'",
        "{column: ..., value_set: [...]}",
    ),
    Bad(
        "gx-missing-column",
        BASE + "validation:\n  expectations:\n    - expect_column_values_to_be_unique: {mostly: 0.9}\n",
        "validation.expectations[0].expect_column_values_to_be_unique",
        "expect_column_values_to_be_unique",
        "needs the argument(s) 'column'",
        "expect_column_values_to_be_unique: {column: ...}",
    ),
    Bad(
        "gx-reserved-argument",
        BASE + "validation:\n  expectations:\n    - expect_column_to_exist: {column: a, meta: {x: 1}}\n",
        "validation.expectations[0].expect_column_to_exist.meta",
        "expect_column_to_exist",
        "'meta' is reserved",
        "remove it",
    ),
    Bad(
        "gx-arguments-not-a-mapping",
        BASE + "validation:\n  expectations:\n    - expect_column_to_exist: amount\n",
        "validation.expectations[0].expect_column_to_exist",
        "expect_column_to_exist",
        "a mapping (key: value) is expected here",
        "expect_column_to_exist: {column: amount}",
    ),
    # --- step and notifier arguments -----------------------------------------------------------
    Bad(
        "step-misspelt-argument",
        BASE + f"steps:\n  - id: report\n    operator: {BASH}\n    args:\n      bash_comand: echo hi\n",
        "steps[0].args.bash_comand",
        "bash_comand:",
        "BashOperator has no argument 'bash_comand'; did you mean 'bash_command'?",
        "arguments of BashOperator: bash_command, env",
    ),
    Bad(
        "step-misspelt-base-argument",
        BASE + f"steps:\n  - id: report\n    operator: {EMPTY}\n    args: {{retires: 3}}\n",
        "steps[0].args.retires",
        "args:",
        "EmptyOperator has no argument 'retires'; did you mean 'retries'?",
        "BaseOperator's task arguments",
    ),
    Bad(
        "step-missing-required-argument",
        BASE + f"steps:\n  - id: report\n    operator: {BASH}\n    after: [promote]\n",
        "steps[0].args",
        "- id: report",
        "BashOperator needs the argument(s) 'bash_command'",
        "add `bash_command: ...` under args",
    ),
    Bad(
        "step-task-id-in-args",
        BASE + f"steps:\n  - id: report\n    operator: {EMPTY}\n    args: {{task_id: other}}\n",
        "steps[0].args.task_id",
        "args:",
        "'task_id' is set by the factory from `steps[].id`",
        "remove it from args",
    ),
    Bad(
        "notifier-misspelt-argument",
        BASE
        + f"defaults:\n  notify:\n    on_failure:\n      - notifier: {SMTP}\n"
        + "        args:\n          to: ops@example.com\n          subjct: failed\n",
        "defaults.notify.on_failure[0].args.subjct",
        "subjct:",
        "SmtpNotifier has no argument 'subjct'; did you mean 'subject'?",
        "arguments of SmtpNotifier: to, from_email, subject",
    ),
    Bad(
        "notifier-missing-required-argument",
        BASE + f"stages:\n  promote:\n    notify:\n      on_success:\n        - notifier: {SMTP}\n",
        "stages.promote.notify.on_success[0].args",
        "- notifier:",
        "SmtpNotifier needs the argument(s) 'to'",
        "add `to: ...` under args",
    ),
    # --- nested unknown keys: did-you-mean and the allowed keys ------------------------------
    Bad(
        "stage-setting-misspelt",
        BASE + "stages:\n  train:\n    retires: 3\n",
        "stages.train.retires",
        "retires:",
        "unknown key 'retires'; did you mean 'retries'?",
        "allowed keys here: retries, retry_delay",
    ),
    Bad(
        "step-setting-misspelt",
        BASE + f"steps:\n  - id: report\n    operator: {EMPTY}\n    settings: {{queu: io}}\n",
        "steps[0].settings.queu",
        "settings:",
        "did you mean 'queue'?",
        "allowed keys here: retries",
    ),
    Bad(
        "metric-bound-misspelt",
        BASE + "evaluation:\n  metrics:\n    roc_auc: {mn: 0.8}\n",
        "evaluation.metrics.roc_auc.mn",
        "roc_auc:",
        "unknown key 'mn'; did you mean 'min'?",
        "allowed keys here: min, max",
    ),
    Bad(
        "champion-comparison-misspelt",
        BASE + "evaluation:\n  compare_to_champion:\n    f1: {max_regresion: 0.01}\n",
        "evaluation.compare_to_champion.f1.max_regresion",
        "f1:",
        "did you mean 'max_regression'?",
        "allowed keys here: max_regression",
    ),
    Bad(
        "notifier-hook-misspelt",
        BASE + "defaults:\n  notify:\n    on_failur: []\n",
        "defaults.notify.on_failur",
        "on_failur:",
        "did you mean 'on_failure'?",
        "allowed keys here: on_failure, on_retry, on_success",
    ),
    Bad(
        "notifier-key-misspelt",
        BASE + f"defaults:\n  notify:\n    on_failure:\n      - notifer: {SMTP}\n",
        "defaults.notify.on_failure[0].notifer",
        "notifer:",
        "did you mean 'notifier'?",
        "allowed keys here: notifier, args",
    ),
    Bad(
        "binned-slice-misspelt",
        BASE
        + "evaluation:\n  fairness:\n    slices:\n      - {colum: age, bins: [30, 60]}\n"
        + "    metrics: {recall: {max_gap: 0.1}}\n",
        "evaluation.fairness.slices[0].colum",
        "colum",
        "did you mean 'column'?",
        "allowed keys here: column, bins",
    ),
    Bad(
        "rollout-gate-misspelt",
        BASE.replace(
            "  model_name: churn-model\n",
            "  model_name: churn-model\n  rollout:\n    strategy: shadow\n    gate: {min_row: 10}\n",
        )
        + "monitoring:\n  source: live/{{ ds }}.parquet\n",
        "registry.rollout.gate.min_row",
        "gate:",
        "did you mean 'min_rows'?",
        "allowed keys here: min_rows, min_agreement",
    ),
    # --- wrong shapes: what to write instead ----------------------------------------------------
    Bad(
        "metric-bound-is-a-number",
        BASE + "evaluation:\n  metrics:\n    roc_auc: 0.5\n",
        "evaluation.metrics.roc_auc",
        "roc_auc:",
        "a mapping (key: value) is expected here",
        "write `roc_auc: {min: 0.5}`",
    ),
    Bad(
        "champion-comparison-is-a-number",
        BASE + "evaluation:\n  compare_to_champion:\n    roc_auc: 0.02\n",
        "evaluation.compare_to_champion.roc_auc",
        "roc_auc:",
        "a mapping (key: value) is expected here",
        "write `roc_auc: {max_regression: 0.02}`",
    ),
    Bad(
        "performance-bound-is-a-number",
        BASE + "monitoring:\n  source: live/{{ ds }}.parquet\n  performance:\n    roc_auc: 0.05\n",
        "monitoring.performance.roc_auc",
        "roc_auc:",
        "a mapping (key: value) is expected here",
        "write `roc_auc: {max_drop: 0.05}`",
    ),
    Bad(
        "metrics-is-a-number",
        BASE + "evaluation:\n  metrics: 0.5\n",
        "evaluation.metrics",
        "metrics:",
        "a mapping (key: value) is expected here",
        "write `metrics: {roc_auc: {min: 0.5}}`",
    ),
    Bad(
        "data-is-a-string",
        BASE.replace("data:\n  source: data/{{ ds }}.parquet\n  target: churned\n", "data: data.parquet\n"),
        "data",
        "data:",
        "a mapping (key: value) is expected here",
        "write `data: {source: ..., target: ...}`",
    ),
    Bad(
        "steps-is-a-mapping",
        BASE + f"steps:\n  id: report\n  operator: {EMPTY}\n",
        "steps",
        "steps:",
        "a list is expected here",
        "write `steps: [{id: ..., operator: ...}]`",
    ),
    # --- step order --------------------------------------------------------------------------
    Bad(
        "steps-cycle",
        BASE
        + f"steps:\n  - {{id: a, operator: {EMPTY}, after: [b]}}\n  - {{id: b, operator: {EMPTY}, after: [c]}}\n"
        + f"  - {{id: c, operator: {EMPTY}, after: [a]}}\n",
        "steps[0].after",
        "id: a,",
        "the steps form a cycle: a -> b -> c -> a",
        "remove one of these `after` references",
    ),
]


GOOD: dict[str, str] = {
    "macros-and-filters": BASE.replace(
        "{{ ds }}",
        "{{ macros.ds_add(ds, -1) }}/{{ data_interval_start | ds_nodash }}/{{ ts | replace(':', '') }}",
    ),
    "ds-nodash-params-var": BASE.replace(
        "{{ ds }}", "{{ ds_nodash }}/{{ params.region }}/{{ var.value.bucket }}"
    )
    + "artifacts:\n  root: \"{{ var.json.paths.root | default('out') }}\"\n",
    "jinja-statements": BASE.replace(
        "{{ ds }}", "{% set day = ds %}{% for p in ['a'] %}{{ p }}{{ loop.index }}{% endfor %}{{ day }}"
    ),
    "guarded-name": BASE.replace("{{ ds }}", "{{ region if region is defined else 'all' }}"),
    "event-source-without-interval": with_data(
        "  event_source: data/events/{{ run_id }}-{{ dag_run.run_after | ds }}.parquet\n"
    ),
    "expectations-with-optional-arguments": BASE
    + "validation:\n  expectations:\n"
    + "    - expect_column_values_to_be_between: {column: a, min_value: 0, strict_max: true, mostly: 0.95}\n"
    + "    - expect_column_values_to_be_in_set: {column: b, value_set: [x, y], result_format: COMPLETE}\n"
    + "    - expect_table_row_count_to_be_between: {min_value: '{{ var.value.min_rows }}'}\n"
    + "    - expect_column_values_to_be_of_type: {column: a, type_: float64}\n"
    + "    - expect_compound_columns_to_be_unique: {column_list: [a, b], ignore_row_if: any_value_is_missing}\n",
    "steps-with-templated-arguments": BASE
    + f"steps:\n  - id: report\n    operator: {BASH}\n    after: [promote]\n"
    + "    args:\n      bash_command: echo {{ ds }} {{ ti.try_number }} {{ macros.ds_format(ds, '%Y-%m-%d', '%d') }}\n"
    + "      env: {DAY: '{{ ds_nodash }}'}\n      retries: 1\n"
    + f"  - {{id: done, operator: {EMPTY}, after: [report, release.register]}}\n",
    "step-script-file-is-not-a-template": BASE
    + f"steps:\n  - id: script\n    operator: {BASH}\n    args: {{bash_command: 'scripts/{{{{ x }}.sh'}}\n",
    "non-templated-argument-with-braces": BASE
    + f"steps:\n  - id: report\n    operator: {BASH}\n"
    + "    args: {bash_command: echo, output_encoding: '{{ not a template'}\n",
    "notifier-with-templated-arguments": BASE
    + f"defaults:\n  notify:\n    on_failure:\n      - notifier: {SMTP}\n"
    + "        args: {to: ops@example.com, subject: 'failed {{ dag_run.run_id }} on {{ ds }}'}\n",
}


def issues_of(text: str) -> list:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "spec.yaml")
    return info.value.issues


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_loader_locates_each_mistake(case: Bad) -> None:
    issues = issues_of(case.text)
    assert len(issues) == 1, [i.format() for i in issues]
    (issue,) = issues
    assert issue.path == case.path
    assert issue.line == case.line, issue.format()
    assert case.message in issue.message, issue.format()
    assert case.fix in (issue.hint or "") + issue.message, issue.format()


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_cli_reports_each_mistake(case: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(case.text)
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    assert cli.main(["spec", "validate", str(bad), str(good)]) == 1
    out = capsys.readouterr()
    assert f"{bad}:{case.line}:" in out.err and f": {case.path}: " in out.err, out.err
    assert case.message in out.err and case.fix in out.err, out.err
    assert "ok (pipeline churn)" in out.out  # the file after the broken one is still checked


@pytest.mark.parametrize("name", GOOD)
def test_valid_unusual_specs_pass(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_spec_text(GOOD[name], "spec.yaml")
    assert spec.pipeline == "churn"
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD[name])
    assert cli.main(["spec", "validate", str(path)]) == 0, capsys.readouterr().err


def test_dags_folder_loader_rejects_the_corpus_and_builds_the_valid_ones(tmp_path: Path) -> None:
    from airflow_mlops.factory.folder import load_dags_folder

    folder = tmp_path / "dags"
    folder.mkdir()
    chosen = [c for c in BAD if c.id.startswith(("template-", "gx-", "step-", "notifier-"))]
    for n, case in enumerate(chosen):
        (folder / f"bad_{n:02d}.yaml").write_text(
            case.text.replace("pipeline: churn", f"pipeline: bad_{n:02d}")
        )
    for n, text in enumerate(GOOD.values()):
        (folder / f"good_{n:02d}.yaml").write_text(text.replace("pipeline: churn", f"pipeline: good_{n:02d}"))
    dags, errors = load_dags_folder(folder, default_allowed_roots=[tmp_path], cache_dir=None)
    assert {d.split("__")[0] for d in dags} == {f"good_{n:02d}" for n in range(len(GOOD))}
    assert sorted(Path(p).name for p in errors) == [f"bad_{n:02d}.yaml" for n in range(len(chosen))]
    for n, case in enumerate(chosen):
        (issue,) = errors[str(folder / f"bad_{n:02d}.yaml")].issues
        assert (issue.path, issue.line) == (case.path, case.line), issue.format()


def test_step_arguments_follow_airflow_at_build_time() -> None:
    """The static check agrees with what Airflow does when the operator is built."""
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.empty import EmptyOperator

    from airflow_mlops.spec.checks import accepted_arguments

    accepted, required, open_ = accepted_arguments(BashOperator)
    assert not open_ and required == ("bash_command",)
    assert {"bash_command", "env", "retries", "pool", "owner"} <= set(accepted)
    assert set(inspect.signature(BashOperator.__init__).parameters) - {"self", "kwargs"} <= set(accepted)
    with pytest.raises(TypeError, match="Invalid arguments"):
        EmptyOperator(task_id="t", retires=3)
    with pytest.raises(TypeError, match="bash_command"):
        BashOperator(task_id="t")
    EmptyOperator(task_id="t", retries=3)  # accepted statically and by Airflow


def test_a_custom_operator_gets_its_own_and_base_operator_arguments() -> None:
    from airflow.sdk import BaseOperator

    from airflow_mlops.spec.checks import accepted_arguments

    class ExportOperator(BaseOperator):
        def __init__(self, *, table: str, limit: int = 10, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.table = table

    accepted, required, open_ = accepted_arguments(ExportOperator)
    assert (required, open_) == (("table",), False)
    assert {"table", "limit", "retries", "queue"} <= set(accepted) and "tabel" not in accepted
    with pytest.raises(TypeError, match="Invalid arguments"):  # Airflow agrees
        ExportOperator(task_id="t", table="x", tabel="y")


def test_render_of_a_misspelt_step_argument_gives_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in BAD if c.id == "step-misspelt-argument")
    path = tmp_path / "spec.yaml"
    path.write_text(case.text)
    assert cli.main(["spec", "render", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{case.line}:" in err and "did you mean 'bash_command'" in err
    assert "Traceback" not in err
