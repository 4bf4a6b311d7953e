"""Specs written to break the loader: each is one located SpecIssue, never a crash or a skip.

A deeply nested file used to overflow libyaml's C stack (SIGSEGV: the DAG processor died, no
import error, no other spec's DAG); the folder-level tests therefore run in a subprocess.
"""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec import loader
from airflow_mlops.spec.loader import MAX_DEPTH, MAX_SPEC_BYTES, load_spec_text, parse_yaml, read_spec_text
from tests.unit.spec.test_language_features import BASE as MINIMAL

MINIMAL_LINES = MINIMAL.count("\n")


def parse_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "spec.yaml")
    return info.value


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_text(textwrap.dedent(text), "spec.yaml", check_imports=False)
    return info.value


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and the CPU seconds this process spent on it: a blow-up (quadratic, a hang)
    costs CPU whatever else the machine runs, while wall time also counts the waits for a core a
    busy machine imposes (a 2 s bound once failed at 2.01 s wall under load)."""
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


# --- nesting --------------------------------------------------------------------------------

N = 20_000  # far past the limit, and past where libyaml's own composer overflowed the C stack


def _block_mapping(depth: int) -> str:
    return "x:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(depth)) + " " * (depth + 1) + "b: 1\n"


def _block_sequence(depth: int) -> str:
    return "x:\n" + "".join(" " * i + "-\n" for i in range(depth)) + " " * depth + "1\n"


NESTED = {
    "flow sequences": "x: " + "[" * N + "]" * N + "\n",
    "flow mappings": "x: " + "{a: " * N + "1" + "}" * N + "\n",
    "flow, unclosed": "x: " + "[" * N + "\n",
    "flow, mixed": "x: " + "[{a: " * (N // 2) + "1" + "}]" * (N // 2) + "\n",
    "block mappings": _block_mapping(300),
    "block sequences": _block_sequence(300),
    "compact sequences": "x:\n" + "- " * N + "1\n",
    "block then flow": _block_mapping(40).replace("b: 1", "b: " + "[" * 40 + "]" * 40),
}


@pytest.mark.parametrize("text", NESTED.values(), ids=NESTED.keys())
def test_deep_nesting_is_one_located_issue_naming_the_limit(text: str) -> None:
    err, seconds = timed(parse_error, MINIMAL + text)
    (issue,) = err.issues
    assert f"deeper than {MAX_DEPTH} levels" in issue.message
    assert issue.line is not None and issue.line > MINIMAL_LINES
    assert seconds < 2  # refused after reading just past the limit, not after a quadratic scan


def test_deep_json_is_refused_too() -> None:
    (issue,) = parse_error('{"apiVersion": "mlops/v1", "x": ' + "[" * N + "]" * N + "}\n").issues
    assert f"deeper than {MAX_DEPTH} levels" in issue.message and issue.line == 1


def test_the_limit_itself_is_allowed() -> None:
    ok = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"  # the document is level 1
    data, _ = parse_yaml(MINIMAL + ok, "spec.yaml")
    assert isinstance(data["x"], list)
    parse_error(MINIMAL + ok.replace("[", "[[", 1).replace("]", "]]", 1))


def test_the_line_of_the_too_deep_value_is_named() -> None:
    text = MINIMAL + "description: fine\nx: " + "[" * (MAX_DEPTH + 5) + "\n"
    (issue,) = parse_error(text).issues
    assert issue.line == MINIMAL_LINES + 2
    assert issue.column == 4 + MAX_DEPTH - 1


BRACKETS_THAT_DO_NOT_NEST = {
    "double-quoted": 'description: "' + "[{" * 5000 + '"\n',
    "single-quoted": "description: '" + "[{" * 5000 + "'\n",
    "comment": "# " + "[" * 5000 + "\n",
    "comment after a value": "owner: me  # " + "{" * 5000 + "\n",
    "plain scalar": "description: a" + "[" * 5000 + "\n",
    "block scalar": "description: |\n  " + "[" * 5000 + "\n  " + "{" * 5000 + "\n",
    "quoted in a flow list": "tags: [" + ", ".join(['"[[[[[["'] * 500) + "]\n",
    "multi-line quoted": 'description: "' + "[\n  " * 2000 + '"\n',
}


@pytest.mark.parametrize("extra", BRACKETS_THAT_DO_NOT_NEST.values(), ids=BRACKETS_THAT_DO_NOT_NEST.keys())
def test_brackets_in_strings_and_comments_do_not_count(extra: str) -> None:
    spec = load_spec_text(MINIMAL + extra, "spec.yaml", check_imports=False)
    assert spec.pipeline == "churn"


def test_aliases_cannot_nest_past_the_limit() -> None:
    """Each alias is a copy: 32 levels referring to 32 levels are 64 levels deep."""
    half = MAX_DEPTH // 2 + 1
    text = MINIMAL + "a: &a " + "[" * half + "]" * half + "\nb: " + "[" * half + "*a" + "]" * half + "\n"
    (issue,) = parse_error(text).issues
    assert f"deeper than {MAX_DEPTH} levels" in issue.message and "alias" in issue.message


# --- size and expansion ---------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "description: " + "x" * (4 * MAX_SPEC_BYTES) + "\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        read_spec_text(path)
    (issue,) = info.value.issues
    assert f"at most {MAX_SPEC_BYTES:,} bytes" in issue.message and issue.line == MINIMAL_LINES + 1
    assert f"{path.stat().st_size:,} bytes" in issue.message
    (issue,) = parse_error(MINIMAL + "#" * MAX_SPEC_BYTES).issues  # text given directly
    assert "at most" in issue.message


def test_a_long_line_under_the_limit_parses() -> None:
    text = MINIMAL + "description: " + "x" * (MAX_SPEC_BYTES - 1000) + "\n"
    spec, seconds = timed(load_spec_text, text, "spec.yaml")
    assert len(spec.description or "") == MAX_SPEC_BYTES - 1000
    assert seconds < 2


def test_billion_laughs_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (issue,) = parse_error(MINIMAL + "\n".join(lines) + "\n").issues
    assert "more than 20,000 values" in issue.message


def test_merge_keys_cannot_multiply_a_mapping() -> None:
    keys = "{" + ", ".join(f"k{i}: {i}" for i in range(2000)) + "}"
    text = MINIMAL + f"base: &b {keys}\nboom: {{<<: [" + ", ".join(["*b"] * 50) + "]}\n"
    err, seconds = timed(parse_error, text)
    assert any("more than 20,000" in i.message for i in err.issues)
    assert seconds < 2


def test_a_chain_of_merges_stays_linear() -> None:
    lines = ["m0: &m0 {k0: 0}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, 3000)]
    err, seconds = timed(parse_error, MINIMAL + "\n".join(lines) + "\n")
    assert "more than 20,000" in err.issues[0].message
    assert seconds < 2


# --- tags -----------------------------------------------------------------------------------

TAGS = {
    "binary": ("description: !!binary aGVsbG8=\n", "!!binary", "description"),
    "python object": (
        "description: !!python/object/apply:os.system ['id']\n",
        "!!python/object/apply:os.system",
        "description",
    ),
    "python name": ("description: !!python/name:os.system\n", "!!python/name:os.system", "description"),
    "str": ("description: !!str 5\n", "!!str", "description"),
    "custom": ("description: !custom x\n", "!custom", "description"),
    "non-specific": ("description: ! x\n", "!", "description"),
    "verbatim": ("description: !<tag:example.com,2000:x> y\n", "tag:example.com,2000:x", "description"),
    "on a mapping": ("defaults: !!map {retries: 1}\n", "!!map", "defaults"),
    "on a list": ("tags: !!seq [a]\n", "!!seq", "tags"),
    "set": ("tags: !!set {a: null}\n", "!!set", "tags"),
    "on a key": ("!!str owner: me\n", "!!str", ""),
    "under an alias": ("x: &x !!binary aGVsbG8=\ny: *x\n", "!!binary", "x"),
}


@pytest.mark.parametrize(("extra", "tag", "path"), TAGS.values(), ids=TAGS.keys())
def test_every_explicit_tag_is_refused_at_its_place(extra: str, tag: str, path: str) -> None:
    err = parse_error(MINIMAL + extra)
    issue = err.issues[0]
    assert f"YAML tag {tag!r} is not allowed" in issue.message
    assert issue.line == MINIMAL_LINES + 1 and issue.path == path
    assert issue.hint and "remove" in issue.hint


def test_quoted_values_are_still_plain_strings() -> None:
    data, _ = parse_yaml(MINIMAL + "description: '!!binary aGVsbG8='\nowner: \"!x\"\n", "spec.yaml")
    assert data["description"] == "!!binary aGVsbG8=" and data["owner"] == "!x"


# --- numbers, durations, dates --------------------------------------------------------------

OUT_OF_RANGE = {
    "huge duration in days": ("defaults: {execution_timeout: 99999999999999d}\n", "between 0 and 3650 days"),
    "huge duration in weeks": ("defaults: {retry_delay: 1e400w}\n", "duration"),
    "huge seconds": ("defaults: {execution_timeout: 99999999999999}\n", "between 0 and 3650 days"),
    "huge float seconds": ("defaults: {execution_timeout: 1.0e+308}\n", "between 0 and 3650 days"),
    "infinite seconds": ("defaults: {execution_timeout: .inf}\n", "between 0 and 3650 days"),
    "NaN seconds": ("defaults: {execution_timeout: .nan}\n", "between 0 and 3650 days"),
    "negative seconds": ("defaults: {retry_delay: -5}\n", "between 0 and 3650 days"),
    "a duration just too long": ("dagrun_timeout: 3651d\n", "between 0 and 3650 days"),
    "integer past 64 bits": ("max_active_runs: 99999999999999999999999\n", "64-bit"),
    "integer past the digit limit": ("max_active_runs: " + "9" * 5000 + "\n", "integer"),
    "hex integer past 64 bits": ("defaults: {priority_weight: 0xffffffffffffffffff}\n", "64-bit"),
    "date past the range": ("start_date: 9999-12-31\n", "between 1900-01-01 and 2999-12-31"),
    "date before the range": ("start_date: 0001-01-01\n", "between 1900-01-01 and 2999-12-31"),
    "year 99999": ("start_date: 99999-01-01\n", "date"),
    "impossible date": ("start_date: 2026-02-30\n", "date"),
}


@pytest.mark.parametrize(("extra", "expected"), OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_out_of_range_values_are_located_issues(extra: str, expected: str) -> None:
    err = spec_error(MINIMAL + extra)
    issue = err.issues[0]
    assert expected in issue.message + (issue.hint or ""), issue
    assert issue.line == MINIMAL_LINES + 1


def test_durations_in_range_still_load() -> None:
    spec = load_spec_text(
        MINIMAL + "defaults: {execution_timeout: 3650d, retry_delay: 0}\ndagrun_timeout: 1.5\n",
        "spec.yaml",
        check_imports=False,
    )
    assert spec.defaults.execution_timeout is not None and spec.defaults.execution_timeout.days == 3650
    assert spec.dagrun_timeout is not None and spec.dagrun_timeout.total_seconds() == 1.5


# --- encodings ------------------------------------------------------------------------------

ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 with BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16 (BOM, LE)": lambda t: t.encode("utf-16"),
    "utf-16-be with BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-16-le, no BOM": lambda t: t.encode("utf-16-le"),
    "utf-16-be, no BOM": lambda t: t.encode("utf-16-be"),
    "utf-32 (BOM)": lambda t: t.encode("utf-32"),
    "utf-32-be, no BOM": lambda t: t.encode("utf-32-be"),
    "utf-32-le, no BOM": lambda t: t.encode("utf-32-le"),
}


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_specs_are_read_in_every_yaml_encoding(tmp_path: Path, encode: Callable[[str], bytes]) -> None:
    from airflow_mlops.factory.folder import find_spec_files

    path = tmp_path / "spec.yaml"
    path.write_bytes(encode(MINIMAL + "description: café ✓\n"))
    assert find_spec_files(tmp_path) == [path]
    spec = load_spec_text(read_spec_text(path), str(path), check_imports=False)
    assert spec.description == "café ✓"


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(MINIMAL.encode() + b"description: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        read_spec_text(path)
    (issue,) = info.value.issues
    assert "not valid UTF-8" in issue.message and "e9" in issue.message
    assert (issue.line, issue.column) == (MINIMAL_LINES + 1, 17)


def test_a_control_character_is_located() -> None:
    (issue,) = parse_error(MINIMAL + "description: a\x00b\n").issues
    assert "U+0000" in issue.message and (issue.line, issue.column) == (MINIMAL_LINES + 1, 15)


@pytest.mark.parametrize(
    "head",
    ["  apiVersion: mlops/v1\n", "--- {apiVersion: mlops/v1}\n", '"apiVersion" : "mlops/v1"\n'],
    ids=["indented", "after ---", "quoted key"],
)
def test_spec_detection_sees_every_way_of_writing_the_version(head: str) -> None:
    assert loader.is_spec_document(head)


# --- the folder survives --------------------------------------------------------------------

_FOLDER_PROBE = """
import json, sys
from airflow_mlops.factory import load_dags_folder
dags, errors = load_dags_folder(sys.argv[1], default_allowed_roots=[sys.argv[1]], cache_dir=None)
print(json.dumps({"dags": sorted(dags), "errors": {p: [i.message for i in e.issues] for p, e in errors.items()},
                  "lines": {p: e.issues[0].line for p, e in errors.items()}}))
"""


def test_hostile_specs_become_import_errors_and_the_good_one_loads(tmp_path: Path) -> None:
    """In a subprocess: before the limits, the first of these killed the interpreter (SIGSEGV)."""
    (tmp_path / "data").mkdir()
    good = MINIMAL.replace("data/{{ ds }}.parquet", "data/train.parquet")
    (tmp_path / "a_good.yaml").write_text(good, encoding="utf-8")
    hostile = {
        "brackets.yaml": good + "x: " + "[" * 60_000 + "]" * 60_000 + "\n",
        "mappings.yaml": good + "x: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n",
        "block.yaml": good + _block_mapping(300),
        "binary.yaml": good + "description: !!binary aGVsbG8=\n",
        "timeout.yaml": good + "defaults: {execution_timeout: 99999999999999d}\n",
        "merges.yaml": good + HIDDEN_MERGES["doubling"],
        "base60.yaml": good + "description: 1" + ":0" * 100_000 + "\n",
        "template.yaml": good.replace(
            "data/train.parquet", "'data/{{ " + "(" * 500 + "ds" + ")" * 500 + " }}'"
        ),
    }
    for name, text in hostile.items():
        (tmp_path / name).write_text(
            text.replace("pipeline: churn", f"pipeline: {name[:-5]}"), encoding="utf-8"
        )
    (tmp_path / "utf16.yml").write_bytes(good.replace("churn", "wide").encode("utf-16-le"))
    (tmp_path / "latin1.yaml").write_bytes(good.replace("churn", "latin").encode() + b"owner: \xe9\n")
    proc = subprocess.run(
        [sys.executable, "-c", _FOLDER_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["churn__train", "wide__train"]
    errors = {Path(p).name: m for p, m in result["errors"].items()}
    assert set(errors) == set(hostile) | {"latin1.yaml"}
    assert all(line is not None for line in result["lines"].values())
    assert "deeper than 64 levels" in errors["brackets.yaml"][0]
    assert "deeper than 64 levels" in errors["mappings.yaml"][0]
    assert "deeper than 64 levels" in errors["block.yaml"][0]
    assert "'!!binary' is not allowed" in errors["binary.yaml"][0]
    assert "3650 days" in errors["timeout.yaml"][0]
    assert "not valid UTF-8" in errors["latin1.yaml"][0]
    assert "64-bit" in errors["base60.yaml"][0] and "nests brackets" in errors["template.yaml"][0]


# --- merges, wherever the merged mappings hide ---------------------------------------------


def _chain(link: str, n: int = 3000) -> str:
    """``n`` mappings each merging the one before, written with ``link`` (``{i}``/``{p}``)."""
    return "".join(link.format(i=i, p=i - 1) for i in range(1, n)) + f"x: {{<<: *m{n - 1}}}\n"


HIDDEN_MERGES = {
    "in complex keys": "? &m0 {k0: 0}\n: 1\n" + _chain("? &m{i} {{<<: *m{p}, k{i}: {i}}}\n: 1\n"),
    "in flow complex keys": "z: {? &m0 {k0: 0}: 1}\n" + _chain("z{i}: {{? &m{i} {{<<: *m{p}}}: 1}}\n"),
    "under tags": "m0: !!map &m0 {k0: 0}\n" + _chain("m{i}: !!map &m{i} {{<<: *m{p}, k{i}: {i}}}\n"),
    "under duplicate keys": "d: &m0 {k0: 0}\n" + _chain("d: &m{i} {{<<: *m{p}, k{i}: {i}}}\n"),
    "in merge lists": "? &m0 {k0: 0}\n: 1\n" + _chain("? &m{i} {{<<: [*m{p}], k{i}: {i}}}\n: 1\n"),
    "doubling": "? &m0 {k: 0}\n: 1\n" + _chain("? &m{i} {{<<: [*m{p}, *m{p}]}}\n: 1\n", 40),
    "doubling, empty mappings": "e: &m0 {}\n" + _chain("? &m{i} {{<<: [*m{p}, *m{p}]}}\n: 1\n", 40),
    "many small merges": "b: &b {k: 1}\n"
    + "".join(f"x{i}: {{<<: [" + ", ".join(["*b"] * 400) + "]}\n" for i in range(60)),
}


@pytest.mark.parametrize("text", HIDDEN_MERGES.values(), ids=HIDDEN_MERGES.keys())
def test_merges_expand_without_recursion_and_within_the_limit(text: str) -> None:
    """PyYAML's flatten_mapping recursed into chains no construction had flattened yet
    (RecursionError) and copied doubling merges before counting them (a hang)."""
    err, seconds = timed(parse_error, MINIMAL + text)
    assert seconds < 2
    issue = err.issues[0]
    assert issue.line is not None and issue.line > MINIMAL_LINES
    assert any(w in issue.message for w in ("20,000", "tag", "duplicate", "keys must be plain")), issue
    assert issue.hint


def test_a_merged_mapping_reads_the_same_through_every_alias() -> None:
    text = MINIMAL + "a: &a {<<: {k: 1, j: 1}, k: 2}\nb: *a\nc: {<<: [*a, {k: 3, z: 0}], j: 5}\n"
    data, _ = parse_yaml(text, "spec.yaml")
    assert data["a"] == data["b"] == {"k": 2, "j": 1}  # once read "duplicate key 'k'"
    assert data["c"] == {"k": 2, "j": 5, "z": 0}  # the earlier mapping of a merge list wins


@pytest.mark.parametrize(
    "text",
    [
        "a: &a {<<: *a, b: 1}\n",
        "a: &a {b: {<<: *a}}\n",
        "a: &a {<<: [{k: 1}, *a]}\n",
        "a: {<<: [1]}\n",
        "a: {<<: 1}\n",
    ],
    ids=["itself", "nested", "in a list", "list of scalars", "scalar"],
)
def test_merges_of_themselves_or_of_scalars_are_located(text: str) -> None:
    err = parse_error(MINIMAL + text)
    issue = err.issues[0]
    assert issue.line == MINIMAL_LINES + 1, issue
    assert ("merg" in issue.message and issue.hint and "<<:" in issue.hint) or "deeper" in issue.message


# --- numbers and escapes that are costly or impossible to convert --------------------------


@pytest.mark.parametrize(
    "value",
    [
        "1" + ":0" * 120_000,
        "1" + ":59" * 80_000,
        "-1" + ":0" * 12,
        "0x" + "f" * 200_000,
        "0b" + "1" * 200_000,
    ],
    ids=["base 60", "base 60, 59s", "base 60, 13 places", "hex", "binary"],
)
def test_integers_past_64_bits_are_refused_before_conversion(value: str) -> None:
    err, seconds = timed(parse_error, MINIMAL + f"description: {value}\n")
    (issue,) = err.issues
    assert "64-bit" in issue.message and issue.line == MINIMAL_LINES + 1
    assert seconds < 1  # base 60 once took 4 s: each place multiplied a growing integer


def test_integers_with_leading_zeros_and_underscores_still_read() -> None:
    data, _ = parse_yaml(MINIMAL + "a: 0x" + "0" * 500 + "ff\nb: 1_000\nc: 1:30:00\n", "spec.yaml")
    assert (data["a"], data["b"], data["c"]) == (255, 1000, 5400)


@pytest.mark.parametrize("escape", ["\\UFFFFFFFF", "\\U0011FFFF"])
def test_an_escape_past_unicode_is_located(escape: str) -> None:
    (issue,) = parse_error(MINIMAL + f'description: "{escape}"\n').issues
    assert issue.line == MINIMAL_LINES + 1 and "escape" in issue.message and issue.hint


# --- templates Jinja would parse recursively -----------------------------------------------

TEMPLATES = {
    "parentheses": "{{ " + "(" * 40 + "ds" + ")" * 40 + " }}",
    "200 parentheses": "{{ " + "(" * 200 + "ds" + ")" * 200 + " }}",
    "lists": "{{ " + "[" * 3000 + "]" * 3000 + " }}",
    "if blocks": "{% if ds %}" * 2000 + "x" + "{% endif %}" * 2000,
    "for blocks": "{% for a in ds %}" * 500 + "x" + "{% endfor %}" * 500,
    "set blocks": "{% set x %}" * 100 + "{% endset %}" * 100,
    "attribute chain": "{{ ds" + ".a" * 30_000 + " }}",
    "filter chain": "{{ ds" + " | upper" * 20_000 + " }}",
    "operator chain": "{{ 1" + " + 1" * 30_000 + " }}",
    "unary chain": "{{ " + "-" * 5000 + "1 }}",
    "not chain": "{{ " + "not " * 5000 + "ds }}",
}


@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_templates_nested_past_the_limits_are_located(template: str) -> None:
    text = MINIMAL.replace("data/{{ ds }}.parquet", "'data/" + template + "'")
    err, seconds = timed(spec_error, text)
    (issue,) = err.issues
    assert issue.path == "data.source" and issue.line == 4
    assert "nests" in issue.message or "tokens" in issue.message, issue
    assert seconds < 2


def test_templates_within_the_limits_still_load() -> None:
    from airflow_mlops.spec.templates import MAX_TEMPLATE_NESTING, check_template

    assert (
        check_template("{{ " + "(" * MAX_TEMPLATE_NESTING + "ds" + ")" * MAX_TEMPLATE_NESTING + " }}") == ()
    )
    assert check_template("{% set x = 1 %}" * 100 + "{{ x }}" * 1000) == ()
    assert check_template("{% for a in [1] %}{% if loop.first %}{{ a | upper }}{% endif %}{% endfor %}") == ()


def test_schedule_events_are_limited() -> None:
    from airflow_mlops.spec.models import MAX_SCHEDULE_EVENTS

    events = ", ".join(f"s3://b/k{i}" for i in range(MAX_SCHEDULE_EVENTS + 1))
    (issue,) = spec_error(MINIMAL + f"schedule: {{events: [{events}]}}\n").issues
    assert issue.path == "schedule.events" and f"at most {MAX_SCHEDULE_EVENTS}" in issue.message


# --- files that are not plain files ---------------------------------------------------------


def test_a_fifo_or_a_device_is_refused_without_reading(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading used to block `spec validate` forever
    device = tmp_path / "zero.yaml"
    device.symlink_to("/dev/zero")
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(tmp_path / "loop.yaml")
    for path, words in (
        (fifo, "a FIFO"),
        (device, "a device"),
        (tmp_path, "a folder"),
        (loop, "symbolic links"),
    ):
        with pytest.raises(SpecError) as info:
            read_spec_text(path)
        assert words in info.value.issues[0].message


def test_validate_refuses_them_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from airflow_mlops.cli.spec import validate as _validate

    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    assert _validate([str(tmp_path / "fifo.yaml"), str(tmp_path / "loop.yaml")], None) == 1
    err = capsys.readouterr().err
    assert "a FIFO, not a regular file" in err and "symbolic links" in err and "unexpected" not in err


def test_a_symbolic_link_loop_in_the_folder_keeps_the_other_specs(tmp_path: Path) -> None:
    from airflow_mlops.factory import load_dags_folder

    (tmp_path / "data").mkdir()
    good = MINIMAL.replace("data/{{ ds }}.parquet", "data/train.parquet")
    (tmp_path / "a.yaml").write_text(good, encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "back").symlink_to(tmp_path)  # Airflow's walk raises RuntimeError on it
    (sub / "b.yaml").write_text(good.replace("churn", "other"), encoding="utf-8")
    dags, errors = load_dags_folder(tmp_path, default_allowed_roots=[tmp_path], cache_dir=None)
    assert sorted(dags) == ["churn__train", "other__train"] and not errors
