"""A corpus of specs with one ordinary mistake each, and of valid but unusual specs.

Every malformed spec must be refused by both ``airflow-mlops spec validate`` and the dags-folder
loader, at the same file, line and key, with the fix in the message; given several files, the
bad one first, the others are still checked. Every valid one must pass both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_mlops import cli
from airflow_mlops.exceptions import SpecError
from airflow_mlops.factory.folder import find_dags_folder, find_spec_files, load_dags_folder
from airflow_mlops.spec.loader import is_spec_document, load_spec_text

ROOT = Path(__file__).resolve().parents[3]
LOADER = (ROOT / "dags" / "mlops_specs.py").read_text()

BASE_LINES = [
    "apiVersion: mlops/v1",  # 1
    "pipeline: {name}",  # 2
    "description: Churn model",  # 3
    'schedule: "@daily"',  # 4
    "start_date: 2026-01-01",  # 5
    "tags: [churn]",  # 6
    "defaults: {{retries: 1}}",  # 7
    "data:",  # 8
    "  source: ../data/{{{{ ds }}}}.parquet",  # 9
    "  target: churned",  # 10
    "registry:",  # 11
    "  model_name: churn-model",  # 12
]


def spec_text(name: str, line: int | None = None, replacement: str | None = None) -> str:
    """The base spec named ``name``, with line ``line`` (1-based) replaced (None: removed)."""
    lines = [text.format(name=name) for text in BASE_LINES]
    if line is not None:
        if replacement is None:
            del lines[line - 1]
        else:
            lines[line - 1] = replacement
    return "\n".join(lines) + "\n"


# name, line to change, its new text (None: delete it), then what must be reported:
# line, key path, a fragment of the message or hint.
MALFORMED = [
    ("month_13", 5, "start_date: 2026-13-01", 5, "start_date", "YYYY-MM-DD"),
    ("february_30", 5, "start_date: 2026-02-30", 5, "start_date", "day is out of range"),
    ("quoted_bad_date", 5, 'start_date: "2026-13-01"', 5, "start_date", "YYYY-MM-DD"),
    ("date_with_time", 5, "start_date: 2026-01-01T10:30:00", 5, "start_date", "no time of day"),
    ("date_as_number", 5, "start_date: 20260101", 5, "start_date", "YYYY-MM-DD"),
    ("bad_duration", 7, "defaults: {retries: 1, retry_delay: 5x}", 7, "defaults.retry_delay", "'5m'"),
    (
        "misspelt_event",
        4,
        "schedule: {time: '@daily', events: [drift, drfit]}",
        4,
        "schedule.events[1]",
        "did you mean 'drift'",
    ),
    ("event_without_scheme", 4, "schedule: {events: [bucket/incoming]}", 4, "schedule.events[0]", "s3://"),
    ("reserved_scheme", 4, "schedule: {events: ['airflow://x']}", 4, "schedule.events[0]", "reserved"),
    (
        "unclosed_quote",
        3,
        'description: "Churn model',
        3,
        "description",
        "close the quote that opens on line 3",
    ),
    ("unclosed_bracket", 6, "tags: [churn, tabular", 6, "tags", "close the `[` opened on line 6"),
    ("unclosed_brace", 7, "defaults: {retries: 1", 7, "defaults", "close the `{` opened on line 7"),
    ("cron_hour_24", 4, 'schedule: "0 24 * * *"', 4, "schedule", "hour: '24'"),
    ("cron_month_name", 4, "schedule: {time: '0 0 * foo *'}", 4, "schedule.time", "month: 'foo'"),
    ("cron_never_runs", 4, 'schedule: "0 0 30 2 *"', 4, "schedule", "never matches"),
    ("cron_six_fields", 4, 'schedule: "0 0 * * * *"', 4, "schedule", "5 fields"),
    (
        "outside_dags_folder",
        9,
        "  source: ../../elsewhere/x.parquet",
        9,
        "data.source",
        "outside the allowed roots",
    ),
    ("no_api_version", 1, None, 1, "apiVersion", "add `apiVersion: mlops/v1`"),
]
IDS = [case[0] for case in MALFORMED]


@pytest.fixture(autouse=True)
def _no_env_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_MLOPS_ALLOWED_ROOTS", raising=False)


def dags_folder(tmp_path: Path, specs: dict[str, str | bytes]) -> Path:
    """``tmp_path/dags`` with the loader file and ``specs/<name>.yaml`` for each spec."""
    dags = tmp_path / "dags"
    (dags / "specs").mkdir(parents=True, exist_ok=True)
    (dags / "mlops_specs.py").write_text(LOADER)
    for name, text in specs.items():
        target = dags / "specs" / f"{name}.yaml"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return dags


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["spec", "validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("name", "line", "new", "want_line", "want_path", "fragment"), MALFORMED, ids=IDS)
def test_malformed_spec_is_refused_by_the_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    line: int,
    new: str | None,
    want_line: int,
    want_path: str,
    fragment: str,
) -> None:
    dags = dags_folder(tmp_path, {name: spec_text(name, line, new), "good": spec_text("good")})
    bad, good = dags / "specs" / f"{name}.yaml", dags / "specs" / "good.yaml"
    code, out, err = validate(capsys, str(bad), str(good))
    assert code == 1
    assert "Traceback" not in err
    assert f"{good}: ok (pipeline good)" in out  # the file after the bad one was checked
    located = [row for row in err.splitlines() if row.startswith(f"{bad}:{want_line}:")]
    assert located, err
    assert any(f": {want_path}: " in row for row in located), err
    assert fragment in err


@pytest.mark.parametrize(("name", "line", "new", "want_line", "want_path", "fragment"), MALFORMED, ids=IDS)
def test_malformed_spec_is_refused_by_the_loader(
    tmp_path: Path, name: str, line: int, new: str | None, want_line: int, want_path: str, fragment: str
) -> None:
    dags = dags_folder(tmp_path, {name: spec_text(name, line, new), "good": spec_text("good")})
    built, errors = load_dags_folder(dags, default_allowed_roots=[dags], cache_dir=None)
    assert sorted(built) == ["good__train"]
    bad = str(dags / "specs" / f"{name}.yaml")
    assert list(errors) == [bad]
    issue = errors[bad].issues[0]
    assert (issue.line, issue.path) == (want_line, want_path), str(errors[bad])
    assert fragment in str(errors[bad])


def test_yaml_error_keeps_both_of_pyyamls_places() -> None:
    """An unclosed quote is only found at the end of the file: reported where it opens, with the
    line PyYAML gave up on and PyYAML's own words."""
    text = spec_text("q", 3, 'description: "Churn model').replace('"@daily"', "'@daily'")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "q.yaml")
    (issue,) = info.value.issues
    last = len(text.splitlines()) + 1
    assert (issue.line, issue.column, issue.path) == (3, 14, "description")
    assert "while scanning a quoted scalar (line 3, column 14)" in issue.message
    assert f"found unexpected end of stream (line {last}, column 1)" in issue.message
    assert issue.value == '"Churn model'


def test_unclosed_quote_that_runs_on_to_the_next_quote_is_reported_where_it_opens() -> None:
    """With another quote further down, PyYAML stops there (line 4) with no context at all."""
    with pytest.raises(SpecError) as info:
        load_spec_text(spec_text("q", 3, 'description: "Churn model'), "q.yaml")
    (issue,) = info.value.issues
    assert (issue.line, issue.column, issue.path) == (3, 14, "description")
    assert "(line 4, column 12)" in issue.message  # where PyYAML gave up, in its words
    assert "close the quote that opens on line 3" in (issue.hint or "")


def test_yaml_error_inside_a_list_item_names_its_index() -> None:
    text = spec_text("s") + (
        "steps:\n"
        "  - id: first\n"
        "    operator: airflow.providers.standard.operators.empty.EmptyOperator\n"
        "  - id: second\n"
        "    operator: airflow.providers.standard.operators.bash.BashOperator\n"
        '    args: {bash_command: "echo hi}\n'
    )
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    (issue,) = info.value.issues
    assert issue.line == 18
    assert issue.path.startswith("steps[1].args")


def test_an_unexpected_error_is_a_located_message_and_the_next_file_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.spec import loader

    dags = dags_folder(tmp_path, {"first": spec_text("first"), "second": spec_text("second")})
    real = loader.load_spec_text

    def flaky(text, file, **kwargs):
        if Path(file).name == "first.yaml":
            raise RuntimeError("boom")
        return real(text, file, **kwargs)

    monkeypatch.setattr(loader, "load_spec_text", flaky)
    first, second = dags / "specs" / "first.yaml", dags / "specs" / "second.yaml"
    code, out, err = validate(capsys, str(first), str(second))
    assert code == 1
    assert f"{first}: <document>: unexpected error while validating this spec: RuntimeError: boom" in err
    assert f"{second}: ok (pipeline second)" in out


# --- allowed roots: the CLI and the loader agree ---------------------------------------------


def test_the_cli_finds_the_dags_folder_the_loader_restricts_to(tmp_path: Path) -> None:
    dags = dags_folder(tmp_path, {"a": spec_text("a")})
    (dags / "specs" / "deeper").mkdir()
    assert find_dags_folder(dags / "specs" / "a.yaml") == dags.resolve()
    assert find_dags_folder(dags / "specs" / "deeper" / "x.yaml") == dags.resolve()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".git").mkdir()  # a repository root ends the search
    assert find_dags_folder(tmp_path / "elsewhere" / "x.yaml") is None


@pytest.mark.parametrize(("source", "accepted"), [("../data/x.parquet", True), ("../../x.parquet", False)])
def test_cli_and_loader_agree_on_the_default_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, accepted: bool
) -> None:
    dags = dags_folder(tmp_path, {"a": spec_text("a", 9, f"  source: {source}")})
    code, _, err = validate(capsys, str(dags / "specs" / "a.yaml"))
    built, errors = load_dags_folder(dags, default_allowed_roots=[dags], cache_dir=None)
    assert (code == 0) is accepted, err
    assert (not errors) is accepted
    assert bool(built) is accepted


def test_relative_allowed_root_is_resolved_against_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dags = dags_folder(tmp_path, {"a": spec_text("a")})  # reads dags/data/...
    spec = str(dags / "specs" / "a.yaml")
    monkeypatch.chdir(tmp_path)
    assert validate(capsys, spec, "--allowed-root", "dags")[0] == 0
    code, _, err = validate(capsys, spec, "--allowed-root", "dags/specs")
    assert code == 1
    assert f"allowed: {dags.resolve() / 'specs'}" in err  # resolved, absolute


def test_dags_folder_option_and_the_note_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / ".git").mkdir()
    (lone / "a.yaml").write_text(spec_text("a", 9, "  source: ../../x.parquet"))
    code, _, err = validate(capsys, str(lone / "a.yaml"))
    assert code == 0 and "no dags folder found" in err
    code, _, err = validate(capsys, str(lone / "a.yaml"), "--dags-folder", str(lone))
    assert code == 1 and "outside the allowed roots" in err


# --- what is a spec -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "is_spec"),
    [
        ("apiVersion: mlops/v1\npipeline: a\n", True),
        ('{"apiVersion": "mlops/v1", "pipeline": "a"}\n', True),
        ("pipeline: a\ndata: {source: x, target: y}\n", True),  # no apiVersion: reported
        ("pipeline: a\nregistry: {model_name: m}\n", True),
        ("apiVersion: mlop/v1\npipeline: a\ndata: {}\n", True),  # a wrong apiVersion: reported
        ("apiVersion: mlops/v1\nkind: Defaults\n", True),  # (the defaults file is skipped by name)
        ("kind: Pipeline\npipeline: a\ndata: {}\n", False),  # another tool's manifest
        ("services: {a: {image: x}}\n", False),
        ("pipeline: a\n", False),
        ("just: yaml\n# pipeline: x\n# data: y\n", False),
    ],
)
def test_which_files_are_specs(text: str, is_spec: bool) -> None:
    assert is_spec_document(text) is is_spec


def test_spec_without_api_version_is_reported_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dags = dags_folder(tmp_path, {"noversion": spec_text("noversion", 1, None), "good": spec_text("good")})
    (dags / "specs" / "mlops-defaults.yaml").write_text("apiVersion: mlops/v1\nkind: Defaults\nowner: team\n")
    (dags / "specs" / "notes.yaml").write_text("just: yaml\n")
    (dags / "compose.yaml").write_text("services: {a: {image: x}}\n")
    found = [p.name for p in find_spec_files(dags)]
    assert found == ["good.yaml", "noversion.yaml"]
    code, out, err = validate(capsys, str(dags))
    assert code == 1
    assert f"{dags / 'specs' / 'noversion.yaml'}:1:1: apiVersion:" in err
    assert "add `apiVersion: mlops/v1`" in err
    assert "notes.yaml" not in err + out and "compose.yaml" not in err + out
    assert "ok (pipeline good)" in out


# --- a broken spec never yields a partial set of DAGs ---------------------------------------

PICKY_STEP = (
    "steps:\n"
    "  - id: picky\n"
    "    operator: tests.unit.spec.corpus_operators.PickyOperator\n"
    "    after: [promote]\n"
    "    args: {level: 5}\n"
)
MONITORING = (
    'monitoring:\n  source: ../data/live/{{ ds }}.parquet\n  schedule: "@daily"\n  reference: champion\n'
)


def test_a_spec_whose_step_fails_to_build_yields_no_dag_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = spec_text("broken") + MONITORING + PICKY_STEP
    dags = dags_folder(tmp_path, {"broken": broken, "good": spec_text("good") + MONITORING})
    built, errors = load_dags_folder(dags, default_allowed_roots=[dags], cache_dir=None)
    assert sorted(built) == ["good__monitor", "good__train"]
    (issue,) = errors[str(dags / "specs" / "broken.yaml")].issues
    step_line = broken.splitlines().index("    args: {level: 5}") + 1
    assert (issue.line, issue.path) == (step_line, "steps[0].args")
    assert "level must be at most 3" in issue.message
    # `spec render` says the same, without a traceback
    assert cli.main(["spec", "render", str(dags / "specs" / "broken.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"broken.yaml:{step_line}:" in err and "Traceback" not in err


DAGBAG_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": sorted(bag.import_errors)}))
"""


def test_a_spec_whose_step_fails_to_build_yields_no_dag_in_airflow(tmp_path: Path) -> None:
    """Under Airflow's DAG bag, a DAG left half-built by a failing step would still be collected
    through the DAG context's auto-registration; the factory's DAGs are never auto-registered."""
    dags = dags_folder(
        tmp_path,
        {"broken": spec_text("broken") + MONITORING + PICKY_STEP, "good": spec_text("good") + MONITORING},
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_MLOPS_SPEC_CACHE": "off",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", DAGBAG_PROBE, str(dags)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["good__monitor", "good__train"]
    assert any(e.endswith("broken.yaml") for e in result["errors"]), result


# --- valid but unusual specs ------------------------------------------------------------------

VALID = {
    "flow_style": (
        '{"apiVersion": "mlops/v1", "pipeline": "flow_style", "start_date": "2026-03-01", '
        '"data": {"source": "../data/x.parquet", "target": "y"}, "registry": {"model_name": "m"}}\n'
    ),
    "anchors": (
        "apiVersion: mlops/v1\n"
        "pipeline: anchors\n"
        "defaults: &common {retries: 3, retry_delay: 2m}\n"
        "stages:\n"
        "  train: {<<: *common, retries: 1}\n"
        "  scan: *common\n"
        "data: {source: ../data/x.parquet, target: y}\n"
        "registry: {model_name: m}\n"
    ),
    "quoted_date": spec_text("quoted_date", 5, 'start_date: "2026-02-28"'),
    "weekday_cron": spec_text("weekday_cron", 4, 'schedule: "0 9 * * MON-FRI"'),
    "asset_uris": spec_text(
        "asset_uris",
        4,
        "schedule: {time: '@daily', events: [drift, 's3://bucket/in/', 'x-team://features/ready']}",
    ),
    "comments": (
        "# a spec with comments everywhere\n"
        "apiVersion: mlops/v1   # the language\n"
        "pipeline: comments # the name\n"
        "# between keys\n"
        "data:\n"
        "  # inside a mapping\n"
        "  source: ../data/x.parquet  # the data\n"
        "  target: y\n"
        "registry: {model_name: m}  # flow, then a comment\n"
        "# at the end\n"
    ),
    "unicode": spec_text("unicode", 3, "description: Modèle de churn — 顧客離脱 ✓"),
}
CRLF = spec_text("crlf").replace("\n", "\r\n").encode()


@pytest.mark.parametrize("name", [*VALID, "crlf"])
def test_unusual_valid_spec_passes_the_cli_and_the_loader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text = CRLF if name == "crlf" else VALID[name]
    dags = dags_folder(tmp_path, {name: text})
    path = dags / "specs" / f"{name}.yaml"
    code, out, err = validate(capsys, str(path))
    assert code == 0, err
    assert f"ok (pipeline {name})" in out
    built, errors = load_dags_folder(dags, default_allowed_roots=[dags], cache_dir=None)
    assert not errors, {k: str(v) for k, v in errors.items()}
    assert f"{name}__train" in built
    # the values are what PyYAML itself reads from the file
    plain = yaml.safe_load(path.read_bytes().decode())
    dag = built[f"{name}__train"]
    start = plain.get("start_date", dt.date(2026, 1, 1))
    start = dt.date.fromisoformat(start) if isinstance(start, str) else start
    assert dag.start_date.date() == start
    if "description" in plain:
        assert dag.description == plain["description"]
    if name == "anchors":
        assert dag.get_task("training.fit").retries == 1
        assert dag.get_task("gates.scan").retries == plain["defaults"]["retries"]
