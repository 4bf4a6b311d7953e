"""The template checker against Airflow's own renderer, and the committed GX signatures against GX."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pytest

from airflow_mlops.spec import expectations
from airflow_mlops.spec.templates import check_template

# Each is checked statically and rendered by Airflow's template environment (StrictUndefined):
# the checker must accept exactly the ones Airflow renders.
TEMPLATES = [
    "data/{{ ds }}/batch.parquet",
    "data/{{ ds_nodash }}/{{ ts_nodash }}/{{ ts_nodash_with_tz }}.csv",
    "{{ macros.ds_add(ds, -7) }}",
    "{{ macros.ds_format(ds, '%Y-%m-%d', '%Y/%m') }}",
    "{{ macros.datetime(2026, 1, 1).year }}",
    "{{ logical_date | ds }} {{ data_interval_end | ts_nodash }}",
    "{{ params.region }}-{{ run_id }}-{{ var.value.bucket }}",
    "{{ ds | replace('-', '/') | upper }}",
    "{% set day = ds %}{{ day }}",
    "{% for p in ['a', 'b'] %}{{ p }}{{ loop.index }}{% endfor %}",
    "{{ region if region is defined else 'all' }}",
    "{{ range(3) | list | length }}",
    "{{ dss }}",
    "{{ ds_nodahs }}",
    "{{ macros.ds_ad(ds, 1) }}",
    "{{ ds | dss }}",
    "{{ ds | uper }}",
    "{{ ds is strng }}",
    "{{ var.valu.bucket }}",
    "{{ execution_date }}",  # gone in Airflow 3
    "{{ next_ds }}",  # gone in Airflow 3
]
SYNTAX_ERRORS = ["{{ ds }", "{{ ds ", "{% if ds %}x", "{{ ds) }}", "{{ }}", "{% for %}"]


def airflow_render(text: str) -> str:
    """Render as an Airflow task would, with every context key set to something plausible."""
    from airflow.sdk.definitions._internal.templater import create_template_env
    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS
    from airflow.sdk.execution_time import macros

    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    context: dict[str, object] = {key: f"<{key}>" for key in KNOWN_CONTEXT_KEYS}
    context.update(
        ds="2026-03-01",
        ds_nodash="20260301",
        ts=when.isoformat(),
        ts_nodash="20260301T000000",
        ts_nodash_with_tz="20260301T000000+0000",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
        macros=macros,
        params={"region": "eu"},
        var={"value": {"bucket": "b"}, "json": {}},
        run_id="manual__1",
    )
    return create_template_env().from_string(text).render(**context)


@pytest.mark.parametrize("text", TEMPLATES)
def test_checker_agrees_with_airflows_renderer(text: str) -> None:
    import jinja2

    problems = check_template(text)
    try:
        airflow_render(text)
        renders = True
    except (jinja2.UndefinedError, jinja2.TemplateAssertionError):
        renders = False
    assert (not problems) == renders, problems


@pytest.mark.parametrize("text", SYNTAX_ERRORS)
def test_syntax_errors_are_the_ones_jinja_rejects(text: str) -> None:
    import jinja2

    with pytest.raises(jinja2.TemplateSyntaxError):
        airflow_render(text)
    (problem,) = check_template(text)
    assert problem.message.startswith("invalid template")


def test_interval_keys_are_refused_where_runs_have_no_interval() -> None:
    assert check_template("{{ ds }}") == ()
    (problem,) = check_template("{{ ds }}", no_interval=True)
    assert "undefined here" in problem.message
    assert check_template("{{ run_id }}/{{ dag_run.run_after | ds }}", no_interval=True) == ()


def test_known_names_come_from_airflow() -> None:
    from airflow.sdk.definitions._internal.templater import FILTERS
    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

    from airflow_mlops.spec.templates import INTERVAL_KEYS, context_names, filter_names, macro_names

    assert context_names() >= KNOWN_CONTEXT_KEYS and set(FILTERS) <= filter_names()
    assert INTERVAL_KEYS <= KNOWN_CONTEXT_KEYS
    assert {"ds_add", "ds_format", "datetime", "timedelta"} <= macro_names()
    assert "TYPE_CHECKING" not in macro_names() and "Any" not in macro_names()


def test_committed_gx_signatures_are_up_to_date() -> None:
    pytest.importorskip("great_expectations")
    fresh = expectations.render(expectations.generate())
    committed = expectations.SIGNATURES_FILE.read_text(encoding="utf-8")
    assert committed == fresh, "stale: run `python -m airflow_mlops.spec.expectations` and commit the file"


def test_signatures_cover_every_supported_expectation_and_agree_with_gx() -> None:
    gx = pytest.importorskip("great_expectations")
    from airflow_mlops.data.expectation_names import gx_class_name
    from airflow_mlops.spec.models import SUPPORTED_EXPECTATIONS

    assert set(expectations.signatures()["expectations"]) == set(SUPPORTED_EXPECTATIONS)
    required, optional = expectations.expectation_signature("expect_column_values_to_be_in_set") or ([], [])
    assert required == ["column", "value_set"] and "mostly" in optional
    cls = getattr(gx.expectations, gx_class_name("expect_column_values_to_be_between"))
    with pytest.raises(Exception, match="min"):  # GX itself refuses the misspelling the check refuses
        cls(column="a", min=0)
    with pytest.raises(Exception, match="value_set"):
        getattr(gx.expectations, gx_class_name("expect_column_values_to_be_in_set"))(column="a")


def test_validating_expectations_imports_no_great_expectations() -> None:
    code = textwrap.dedent(
        """
        import sys
        from airflow_mlops.spec.loader import load_spec_text
        load_spec_text('''apiVersion: mlops/v1
        pipeline: churn
        data: {source: 'data/{{ ds }}.parquet', target: churned}
        registry: {model_name: m}
        validation:
          expectations:
            - expect_column_values_to_be_between: {column: a, min_value: 0}
        ''')
        print("great_expectations" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"  # (Airflow may log a line first)
