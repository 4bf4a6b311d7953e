"""What went wrong in a spec's YAML text, as located, actionable issues.

PyYAML's errors (and the loader's own limits) become :class:`~airflow_mlops.exceptions.SpecIssue`
values naming the line, column, key path, what is wrong and the fix. The parser itself is
:mod:`airflow_mlops.spec.yaml_positions`; it hands these builders what they need.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from airflow_mlops.exceptions import SpecIssue
from airflow_mlops.spec.limits import MAX_DEPTH, MAX_SPEC_BYTES

PathKey = tuple[str | int, ...]
#: ``key_path_at(lines, line, column)``: the key path of the value that starts there (0-based).
KeyPathAt = Callable[[list[str], int, int], str]

_TOO_DEEP_HINT = (
    "a spec needs a few levels; look for unclosed `[`/`{{` or runaway indentation near line {line}"
)


def dotted(path: PathKey) -> str:
    """A key path as the messages write it: ``registry.gates[0].min``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def too_big_issue(text: str, file: str, size: int) -> SpecIssue:
    head = text.encode("utf-8", "surrogatepass")[:MAX_SPEC_BYTES].decode("utf-8", "ignore")
    return SpecIssue(
        file,
        head.count("\n") + 1,
        None,
        "",
        f"the file is {size:,} bytes; a spec may be at most {MAX_SPEC_BYTES:,} bytes "
        f"({MAX_SPEC_BYTES // 1024} KiB), and this line is past that",
        hint="a spec is a few KB: split it into several specs, or move data out of it",
    )


def too_deep_issue(mark: Any, text: str, file: str) -> SpecIssue:
    lines = text.splitlines()
    line = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    snippet = line[mark.column : mark.column + 40].strip() or None
    return SpecIssue(
        file,
        mark.line + 1,
        mark.column + 1,
        "",
        f"mappings and lists nest deeper than {MAX_DEPTH} levels here",
        snippet,
        _TOO_DEEP_HINT.format(line=mark.line + 1),
    )


# What PyYAML's reader refuses: control characters other than tab and line breaks, surrogates,
# U+FFFE/U+FFFF (its own `Reader.NON_PRINTABLE`, which libyaml applies too).
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


def reader_error_issue(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecIssue:
    found = _NON_PRINTABLE.search(text)
    index = found.start() if found else 0
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    char = text[index] if found else ""
    return SpecIssue(
        file,
        line if found else None,
        column if found else None,
        "",
        f"the file contains the character U+{ord(char):04X}, which YAML does not allow"
        if found
        else f"invalid YAML: {exc}",
        hint="remove it; a NUL every other byte means the file is UTF-16 or UTF-32 without a "
        "byte-order mark: save it as UTF-8",
    )


# What to do about the constructs PyYAML names in its "while ..." context (where they start).
_CONTEXT_HINTS = {
    "while scanning a quoted scalar": "close the quote that opens on line {line}; inside a quoted value "
    "write the other kind of quote, or double it ('it''s')",
    "while parsing a flow sequence": "close the `[` opened on line {line} with `]`, separating its items "
    "with commas, or write the list one `- item` per line",
    "while parsing a flow mapping": "close the `{{` opened on line {line} with `}}`, separating its entries "
    "with commas, or write the mapping one `key: value` per line",
    "while scanning a simple key": "a key needs a `: ` after it (line {line})",
    "while parsing a block mapping": "the keys of one mapping must start in the same column as the one "
    "on line {line}",
    "while parsing a block collection": "the items of one list must start in the same column as the one "
    "on line {line}",
}
_GENERIC_YAML_HINT = (
    "check indentation, and quote values that contain ': ' or start with '{', '[', '*', '&' or '@'"
)


def yaml_error_issue(exc: yaml.MarkedYAMLError, text: str, file: str, key_path_at: KeyPathAt) -> SpecIssue:
    """PyYAML's error with both of its places: where the construct starts (``context_mark``) and
    where the parser gave up (``problem_mark``). The issue is located at the start: an unclosed
    quote is found only at the end of the file, an unclosed ``[`` on the next line. ``key_path_at``
    names the key whose value an unfinished construct is."""
    context, problem = exc.context_mark, exc.problem_mark
    start = problem
    if context is not None and (
        problem is None or (context.line, context.column) <= (problem.line, problem.column)
    ):
        start = context
    parts = []
    if exc.context:
        parts.append(
            exc.context + (f" (line {context.line + 1}, column {context.column + 1})" if context else "")
        )
    if exc.problem:
        parts.append(
            exc.problem + (f" (line {problem.line + 1}, column {problem.column + 1})" if problem else "")
        )
    if exc.note:
        parts.append(exc.note)
    message = "invalid YAML: " + ": ".join(parts)
    hint = _GENERIC_YAML_HINT
    if "tab" in message.lower():
        hint = "YAML indentation must use spaces, not tabs"
    elif exc.problem and "merg" in exc.problem:
        hint = (
            "`<<:` takes an alias of another mapping (`<<: *defaults`) or a list of them "
            "(`<<: [*a, *b]`), never of the mapping it is in"
        )
    elif context is not None and exc.context:
        template = next((h for c, h in _CONTEXT_HINTS.items() if exc.context.startswith(c)), None)
        if template:
            hint = template.format(line=context.line + 1)
    if start is None:
        return SpecIssue(file, None, None, "", message, hint=hint)
    lines = text.splitlines()
    line, column, at_value = start.line, start.column, start is context
    opened = _unclosed_quote(lines, problem.line) if context is None and problem is not None else None
    if opened is not None:  # a quote left open runs on to the next one, where the parser stops
        line, column, at_value = opened[0], opened[1], True
        message += (
            f"; the quoted value that opens on line {line + 1}, column {column + 1} is not closed on "
            "that line, so it runs on to the next quote"
        )
        hint = _CONTEXT_HINTS["while scanning a quoted scalar"].format(line=line + 1)
    value = None
    path = ""
    if 0 <= line < len(lines):
        snippet = lines[line][column:].strip()
        value = (snippet[:40] + "...") if len(snippet) > 40 else snippet or None
        if at_value:  # the key whose value the unfinished construct is
            path = key_path_at(lines, line, column)
    return SpecIssue(file, line + 1, column + 1, path, message, value, hint)


_OPEN_QUOTE = re.compile(r"""^\s*(?:-\s+)?(?:[^\s#'"][^#]*?:\s+)?(["'])""")


def _unclosed_quote(lines: list[str], before: int) -> tuple[int, int] | None:
    """The first line before ``before`` (0-based) whose value opens a quote it does not close."""
    for index in range(min(before, len(lines))):
        match = _OPEN_QUOTE.match(lines[index])
        if match is None:
            continue
        quote, rest = match.group(1), lines[index][match.end() :]
        if quote == '"':
            closed = re.search(r'(?<!\\)(?:\\\\)*"', rest) is not None
        else:
            closed = re.search(r"'(?!')", rest.replace("''", "")) is not None
        if not closed:
            return index, match.start(1)
    return None
