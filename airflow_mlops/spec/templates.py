"""Jinja templates in spec values, checked the way Airflow will render them.

Airflow renders templated values (``data.source``, an operator's ``template_fields``...) with
Jinja2 and ``StrictUndefined``: a syntax error, an unknown variable, filter or macro fails the
task when it runs. :func:`check_template` finds those mistakes at validate time. It parses with
Jinja2's own parser (Jinja2 is imported by Airflow already) and compares the names the template
uses with Airflow's template context (``KNOWN_CONTEXT_KEYS``, through :mod:`airflow_mlops.compat`),
its macros (``airflow.sdk.macros``), its filters (``ds``, ``ts``...) and Jinja's
built-ins. Results are memoised per template text: a folder of specs repeats the same locations.

Values that name no template (no ``{{``, ``{%`` or ``{#``) cost one substring test.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType
from typing import Any

# Context keys Airflow sets only for a run with a logical date (a data interval): see
# ``RuntimeTaskInstance.get_template_context`` in the Task SDK. A run started by an asset event
# has none of them.
INTERVAL_KEYS = frozenset(
    {
        "logical_date",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
    }
)
# What ``var`` holds in the context: ``{{ var.value.name }}`` and ``{{ var.json.name }}``.
VAR_ACCESSORS = ("json", "value")


@dataclass(frozen=True)
class TemplateProblem:
    """One mistake in a template: what is wrong, and the fix."""

    message: str
    hint: str | None = None


def is_template(text: str) -> bool:
    """Whether Jinja would treat ``text`` as a template (it has a ``{{``, ``{%`` or ``{#``)."""
    return "{{" in text or "{%" in text or "{#" in text


@cache
def _airflow() -> tuple[frozenset[str], frozenset[str]]:
    """Airflow's template context keys and filter names (through :mod:`airflow_mlops.compat`)."""
    from airflow_mlops import compat

    try:
        return compat.template_context_keys(), compat.template_filter_names()
    except ImportError as exc:  # pragma: no cover - guarded by a test on the installed Airflow
        raise RuntimeError(
            "airflow_mlops.spec.templates: Airflow's template context (KNOWN_CONTEXT_KEYS) or "
            f"filters (FILTERS) moved in this Airflow version: {exc}"
        ) from exc


def context_names() -> frozenset[str]:
    """Every top-level name a template may use: Airflow's context keys and Jinja's globals."""
    import jinja2.defaults

    return _airflow()[0] | frozenset(jinja2.defaults.DEFAULT_NAMESPACE)


def filter_names() -> frozenset[str]:
    """Airflow's filters (``ds``, ``ts``...) and Jinja's built-in ones."""
    import jinja2.filters

    return _airflow()[1] | frozenset(jinja2.filters.FILTERS)


def jinja_test_names() -> frozenset[str]:
    """Jinja's built-in tests (``is defined``, ``is none``...)."""
    import jinja2.tests

    return frozenset(jinja2.tests.TESTS)


def macro_names() -> frozenset[str]:
    """``macros.<name>``: Airflow's macros module, with the plugins' macros once integrated."""
    from airflow.sdk import macros

    return frozenset(
        name
        for name, value in vars(macros).items()
        if not name.startswith("_")
        and (callable(value) or isinstance(value, ModuleType))
        and getattr(value, "__module__", None) != "typing"
    )


@cache
def _plugin_macro_names() -> frozenset[str]:
    """The macros with the plugins' ones integrated (loads the plugins: only on an unknown name)."""
    try:
        from airflow_mlops.compat import integrate_macros_plugins

        integrate_macros_plugins()
    except Exception:  # a broken plugin is reported by Airflow itself; keep the plain macros
        pass
    return macro_names()


@cache
def _environment() -> Any:
    """A plain Jinja environment that parses like Airflow's (the ``do`` extension, its filters)."""
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    env.filters.update(dict.fromkeys(_airflow()[1], str))
    return env


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _listing(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


@lru_cache(maxsize=4096)
def check_template(text: str, *, no_interval: bool = False) -> tuple[TemplateProblem, ...]:
    """The mistakes in one templated value; empty when Airflow can render it.

    ``no_interval``: the value is rendered only for runs without a data interval (runs started by
    an asset event), where ``ds``, ``logical_date`` and the other interval keys are undefined.
    """
    if not is_template(text):
        if "}}" in text:
            return (
                TemplateProblem(
                    "this looks like a template with a missing '{': '}}' without '{{'",
                    "write `{{ name }}`, e.g. `data/{{ ds }}/batch.parquet`",
                ),
            )
        return ()
    import jinja2

    try:
        too_complex = _too_complex(text)
        if too_complex is not None:
            return (too_complex,)
        tree = _environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return (
            TemplateProblem(
                f"invalid template: {exc.message}",
                "close every `{{` with `}}` and every `{%` with `%}`, e.g. `data/{{ ds }}/batch.parquet`",
            ),
        )
    except RecursionError:  # the limits below keep Jinja's recursive parser far from this
        return (_complexity_problem("nests too deeply for Jinja's parser"),)
    try:
        return _check_tree(tree, no_interval=no_interval)
    except RecursionError:
        return (_complexity_problem("nests too deeply to be checked"),)


#: Limits on one template, far above any real one (`data/{{ ds }}/x`, a bash command with a few
#: expressions): Jinja parses, compiles and renders templates recursively, so a deeper one
#: would end in a RecursionError (at parse time here, and when the task renders it).
MAX_TEMPLATE_NESTING = 32  # brackets inside one expression; `{% if %}`/`{% for %}`... inside each other
MAX_EXPRESSION_TOKENS = 256  # tokens between `{{` and `}}` (or `{%` and `%}`): chains nest too
_BLOCK_TAGS = frozenset(
    {"for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans", "set"}
)


def _complexity_problem(what: str) -> TemplateProblem:
    return TemplateProblem(
        f"the template {what} (at most {MAX_TEMPLATE_NESTING} levels of brackets or of blocks, and "
        f"{MAX_EXPRESSION_TOKENS} tokens in one expression)",
        "split it: compute the value in a task or a macro, and keep the template short",
    )


def _too_complex(text: str) -> TemplateProblem | None:
    """Whether the template is past the limits, judged from Jinja's own tokens (its lexer is a
    loop, not a recursion). Raises ``TemplateSyntaxError`` as parsing would."""
    brackets = blocks = tokens = 0
    opening: str | None = None  # the tag name just after `{%`
    block_set = False
    for token in _environment().lexer.tokenize(text):
        kind = token.type
        if kind in ("variable_begin", "block_begin"):
            tokens, opening = 0, "" if kind == "block_begin" else None
            continue
        if kind in ("variable_end", "block_end"):
            if block_set:  # `{% set x %}...{% endset %}` opens a block; `{% set x = 1 %}` does not
                blocks += 1
                if blocks > MAX_TEMPLATE_NESTING:
                    return _complexity_problem(f"nests blocks more than {MAX_TEMPLATE_NESTING} deep")
            block_set = False
            continue
        tokens += 1
        if tokens > MAX_EXPRESSION_TOKENS:
            return _complexity_problem(f"has an expression of more than {MAX_EXPRESSION_TOKENS} tokens")
        if kind in ("lparen", "lbracket", "lbrace"):
            brackets += 1
            if brackets > MAX_TEMPLATE_NESTING:
                return _complexity_problem(f"nests brackets more than {MAX_TEMPLATE_NESTING} deep")
        elif kind in ("rparen", "rbracket", "rbrace"):
            brackets = max(0, brackets - 1)
        elif opening == "" and kind == "name":
            opening = token.value
            if token.value.startswith("end"):
                blocks = max(0, blocks - 1)
            elif token.value == "set":
                block_set = True
            elif token.value in _BLOCK_TAGS:
                blocks += 1
                if blocks > MAX_TEMPLATE_NESTING:
                    return _complexity_problem(f"nests blocks more than {MAX_TEMPLATE_NESTING} deep")
        elif kind == "assign":
            block_set = False
    return None


def _check_tree(tree: Any, *, no_interval: bool) -> tuple[TemplateProblem, ...]:
    from jinja2 import nodes

    problems: list[TemplateProblem] = []
    declared = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    declared |= {n.target for n in tree.find_all(nodes.Import)}
    for node in tree.find_all(nodes.FromImport):
        declared |= {name if isinstance(name, str) else name[1] for name in node.names}
    if any(True for _ in tree.find_all(nodes.For)):
        declared.add("loop")
    if any(True for _ in tree.find_all((nodes.Macro, nodes.CallBlock))):
        declared |= {"caller", "varargs", "kwargs"}
    if any(True for _ in tree.find_all(nodes.Block)):
        declared.add("self")
    # `{{ x if x is defined }}` guards a name that may be missing: not a mistake.
    guarded = {
        t.node.name
        for t in tree.find_all(nodes.Test)
        if t.name in ("defined", "undefined") and isinstance(t.node, nodes.Name)
    }
    known = context_names()
    reported: set[str] = set(guarded)
    for name_node in tree.find_all(nodes.Name):
        name = name_node.name
        if name_node.ctx != "load" or name in declared or name in reported:
            continue
        if name not in known:
            reported.add(name)
            problems.append(
                TemplateProblem(
                    f"unknown template variable {name!r}{_suggest(name, known)}",
                    "Airflow's template variables: " + _listing(known),
                )
            )
        elif no_interval and name in INTERVAL_KEYS:
            reported.add(name)
            problems.append(
                TemplateProblem(
                    f"{{{{ {name} }}}} is undefined here: this value is used only by runs started by an "
                    "asset event, and they have no data interval",
                    "use what every run has, e.g. `{{ run_id }}` or `{{ dag_run.run_after | ds }}` "
                    "(when the run was due)",
                )
            )
    macros = macro_names()
    for attr_node in tree.find_all(nodes.Getattr):
        base = attr_node.node
        if not isinstance(base, nodes.Name) or base.ctx != "load" or base.name in declared:
            continue
        if base.name == "macros" and attr_node.attr not in macros:
            macros = _plugin_macro_names()
            if attr_node.attr not in macros:
                problems.append(
                    TemplateProblem(
                        f"unknown macro 'macros.{attr_node.attr}'{_suggest(attr_node.attr, macros)}",
                        "Airflow's macros: " + _listing(f"macros.{m}" for m in macros),
                    )
                )
        elif base.name == "var" and attr_node.attr not in VAR_ACCESSORS:
            problems.append(
                TemplateProblem(
                    f"'var.{attr_node.attr}' is not defined{_suggest(attr_node.attr, VAR_ACCESSORS)}",
                    "read an Airflow variable with `{{ var.value.<name> }}` (text) or "
                    "`{{ var.json.<name> }}` (JSON)",
                )
            )
    filters = filter_names()
    for filter_node in tree.find_all(nodes.Filter):
        if filter_node.name is not None and filter_node.name not in filters:
            problems.append(
                TemplateProblem(
                    f"unknown template filter {filter_node.name!r}{_suggest(filter_node.name, filters)}",
                    "filters: Airflow's " + _listing(_airflow()[1]) + ", and Jinja's built-ins "
                    "(default, replace, lower, upper, ...)",
                )
            )
    tests = jinja_test_names()
    for test_node in tree.find_all(nodes.Test):
        if test_node.name not in tests:
            problems.append(
                TemplateProblem(
                    f"unknown template test {test_node.name!r}{_suggest(test_node.name, tests)}",
                    "tests: " + _listing(tests),
                )
            )
    return tuple(problems)
