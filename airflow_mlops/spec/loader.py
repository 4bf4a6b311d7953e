"""Load a pipeline spec with line numbers, and turn every problem into an actionable message.

YAML is composed into nodes with PyYAML's safe loader (libyaml's when built; no arbitrary tags, no code), converted to
plain Python while recording the line and column of every key path, and validated by the strict
pydantic models. Each pydantic error becomes a :class:`SpecIssue` naming the file, line, column,
key path, the bad value, what is allowed, and a "did you mean" for misspelt keys and enum values.
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import functools
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.models import (
    DEFAULTS_FILE_NAME,
    Defaults,
    FolderDefaults,
    PipelineSpec,
    TaskSettings,
)

Mark = tuple[int, int]  # 1-based line, column
PathKey = tuple[str | int, ...]


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_INT_TAG = "tag:yaml.org,2002:int"


# Limits that keep one hostile file from taking the loader (and every other spec's DAGs) down.
# Each is far above any real spec: the example specs are ~6 KB, nest ~8 levels, hold ~300 values.
#: Bytes of a spec or defaults file. The parse cost, and the DAG processor's time per loader
#: file, stay bounded; the file is not even read past it.
MAX_SPEC_BYTES = 256 * 1024
#: Nesting of mappings and sequences (block or flow, aliases expanded). Composing and building
#: nested values recurses, and libyaml's own composer overflows the C stack on ~10,000 nested
#: brackets (SIGSEGV, no error to report); its scanner slows down quadratically long before.
MAX_DEPTH = 64
#: Values after aliases are expanded: more is an alias bomb or a mistake. Each alias is copied
#: where it is used, so nested aliases grow exponentially ("billion laughs").
MAX_VALUES = 20_000
#: Integers a spec may hold (64-bit signed): counts, seeds and sizes beyond it only overflow later.
MAX_INT = 2**63 - 1

_TOO_DEEP_HINT = (
    "a spec needs a few levels; look for unclosed `[`/`{{` or runaway indentation near line {line}"
)


class _TooDeep(Exception):
    """Raised by the composer at the first collection nested deeper than :data:`MAX_DEPTH`."""

    def __init__(self, mark: Any) -> None:
        super().__init__()
        self.mark = mark


class _GuardedComposer(yaml.composer.Composer):
    """PyYAML's composer, pulling events one at a time, that stops at :data:`MAX_DEPTH` levels.

    Events are pulled lazily from the parser, so a deeply nested file is refused after reading
    just past the limit: libyaml's composer (which recurses in C) is never used, and neither
    parser gets to the nesting where its cost grows quadratically. Each node also keeps the tag
    written in the text (``written_tag``), which the loader refuses: a resolved node's tag does
    not tell ``!!str 5`` from ``"5"``.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()  # type: ignore[attr-defined]  # from the parser class
        if isinstance(event, yaml.AliasEvent):
            return super().compose_node(parent, index)
        nested = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if nested:
            if self._depth >= MAX_DEPTH:
                raise _TooDeep(event.start_mark)
            self._depth += 1
        try:
            node: Any = super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1
        if event.tag is not None:
            node.written_tag = event.tag
        return node


class _PySafeLoader(_GuardedComposer, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader under the depth guard (its messages are the clearest)."""


_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None)
_FAST_LOADER: type[Any] | None = None
if _CParser is not None and getattr(yaml, "__with_libyaml__", False):

    class _CSafeLoader(_GuardedComposer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's parser (events) under the depth guard; composing is PyYAML's own."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    # libyaml's parser is ~8x faster than PyYAML's pure-Python one and dominates parse time
    # for a big folder of specs. A file it rejects is parsed again with the pure-Python loader,
    # whose error messages (context, problem, marks) are the ones users see.
    _FAST_LOADER = _CSafeLoader


class _LocatedYaml:
    """Plain data from a YAML document plus the position of every key path in it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values = 0
        self.marks: dict[PathKey, Mark] = {}
        self.key_marks: dict[PathKey, Mark] = {}
        self.issues: list[SpecIssue] = []
        self._flat: dict[int, tuple[list[tuple[Any, Any]], int]] = {}  # by id(node): nodes live as long
        self._merge_costs: dict[int, int] = {}
        self.merge_cost = 0

    def _construct(self, node: yaml.Node, path: PathKey, loader: yaml.SafeLoader) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            issue = self._issue(
                node, path, f"the document expands to more than {MAX_VALUES:,} values", hint=_TOO_BIG_HINT
            )
            raise SpecError([issue])
        if len(path) > MAX_DEPTH:  # nesting the composer allowed, deepened by aliases
            issue = self._issue(
                node,
                path[:MAX_DEPTH],
                f"values nest deeper than {MAX_DEPTH} levels (through aliases)",
                hint=_TOO_BIG_HINT,
            )
            raise SpecError([issue])
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if getattr(node, "written_tag", None) is not None:
            self.issues.append(self._tag_issue(node, path))
            return None
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"the tag {node.tag!r} is not allowed in a spec", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            # `<<: *anchor` merges come first after flattening; a key of the mapping's own may
            # override a merged one (that is what merges are for), but not another own key.
            pairs, merged = self._flatten(node, path)
            out: dict[Any, Any] = {}
            from_merge: set[Any] = set()
            for index, (key_node, value_node) in enumerate(pairs):
                if getattr(key_node, "written_tag", None) is not None:
                    self.issues.append(self._tag_issue(key_node, path))
                    continue
                key: Any = None
                if isinstance(key_node, yaml.ScalarNode):  # a `? [complex]` key is not even built
                    key = self._construct_scalar(key_node, path, loader)
                if not isinstance(key, (str, int, float, bool)):
                    self.issues.append(
                        self._issue(
                            key_node,
                            path,
                            "mapping keys must be plain strings",
                            key_node.value,
                            hint="write the key as text; quote one that YAML reads as something else "
                            "(`'null': x`, `'2026-01-01': x`)",
                        )
                        if isinstance(key_node, yaml.ScalarNode)
                        else self._issue(
                            key_node,
                            path,
                            "mapping keys must be plain strings",
                            hint="a key is a word such as `owner:`, never a list or a mapping "
                            "(`[a]:`, `{a: 1}:`, `? ...`)",
                        )
                    )
                    continue
                key_mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if isinstance(key, bool):  # YAML 1.1 turns `on:`/`yes:` into booleans
                    key = key_node.value
                if key in out and (key in from_merge or index < merged):
                    del out[key]  # a later merged map, or the mapping's own key, wins
                    from_merge.discard(key)
                elif key in out:
                    first = self.key_marks[(*path, key)]
                    self.issues.append(
                        SpecIssue(
                            self.file,
                            key_mark[0],
                            key_mark[1],
                            _dotted((*path, key)),
                            f"duplicate key {key!r}; it was first given on line {first[0]}",
                            hint="remove one of them: YAML keeps only the last, which hides mistakes",
                        )
                    )
                    continue
                self.key_marks[(*path, key)] = key_mark
                if index < merged:
                    from_merge.add(key)
                out[key] = self._construct(value_node, (*path, key), loader)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._construct(item, (*path, i), loader) for i, item in enumerate(node.value)]
        return self._construct_scalar(node, path, loader)

    def _construct_scalar(self, node: yaml.Node, path: PathKey, loader: yaml.SafeLoader) -> Any:
        if node.tag == _INT_TAG and _surely_past_64_bits(node.value):
            # Not even converted: PyYAML reads `1:0:0:...` (base 60) in quadratic time.
            self.issues.append(self._int_range_issue(node, path))
            return None
        try:
            value = loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError) as exc:
            # YAML's implicit resolvers pick the type by shape, then the constructor may still
            # refuse the value: `2026-13-01` is resolved as a timestamp and datetime rejects it.
            self.issues.append(self._scalar_issue(node, path, exc))
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            self.issues.append(self._int_range_issue(node, path))
            return None
        return value

    def _int_range_issue(self, node: yaml.Node, path: PathKey) -> SpecIssue:
        return self._issue(
            node,
            path,
            f"the integer is out of range: a spec's integers lie between {-MAX_INT - 1:,} and "
            f"{MAX_INT:,} (64-bit)",
            node.value if len(node.value) <= 40 else node.value[:37] + "...",
            hint="write the value this field means; see its range in docs/spec.md",
        )

    def _flatten(self, node: yaml.MappingNode, path: PathKey) -> tuple[list[tuple[Any, Any]], int]:
        """The mapping's key and value nodes with its ``<<:`` merges expanded, and how many of
        them come from merges (they come first, in PyYAML's order: a merged mapping's own merges,
        then its keys; of a merged list, the last mapping first, so the earlier ones win).

        Unlike PyYAML's ``flatten_mapping`` this neither recurses (a chain of thousands of merges
        hidden where nothing constructs them would overflow the stack) nor copies before knowing
        the size (mappings merging each other twice double at each level), and leaves the nodes
        as they are, so a merged mapping used again through an alias is read the same way.
        """
        own = self._own_pairs(node)
        if len(own) == len(node.value):
            return own, 0
        memo = self._flat.get(id(node))
        if memo is not None:
            return memo
        cost = self._merge_cost(node)
        self.merge_cost += cost
        if cost > MAX_VALUES or self.merge_cost > MAX_VALUES:
            what = "its merges (`<<:`)" if cost > MAX_VALUES else "the merges (`<<:`) of the document"
            raise SpecError(
                [
                    self._issue(
                        node, path, f"{what} expand to more than {MAX_VALUES:,} keys", hint=_TOO_BIG_HINT
                    )
                ]
            )
        merged: list[tuple[Any, Any]] = []
        work: list[tuple[bool, Any]] = [(False, s) for s in reversed(self._merge_sources(node))]
        while work:
            own_only, source = work.pop()
            done = self._flat.get(id(source))
            if own_only:
                merged.extend(self._own_pairs(source))
            elif done is not None:
                merged.extend(done[0])
            else:
                work.append((True, source))
                work.extend((False, s) for s in reversed(self._merge_sources(source)))
        self._flat[id(node)] = (merged + own, len(merged))
        return self._flat[id(node)]

    @staticmethod
    def _own_pairs(node: yaml.MappingNode) -> list[tuple[Any, Any]]:
        own = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if key_node.tag == _VALUE_TAG:  # `=` as a key: a string, as PyYAML reads it
                key_node.tag = "tag:yaml.org,2002:str"
            own.append((key_node, value_node))
        return own

    @staticmethod
    def _merge_sources(node: yaml.MappingNode) -> list[yaml.MappingNode]:
        """The mappings ``node`` merges, in the order their keys are laid down."""
        sources: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                continue
            if isinstance(value_node, yaml.MappingNode):
                sources.append(value_node)
            elif isinstance(value_node, yaml.SequenceNode):
                for sub in value_node.value:
                    if not isinstance(sub, yaml.MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"expected a mapping for merging, but found {sub.id}",
                            sub.start_mark,
                        )
                sources.extend(reversed(value_node.value))
            else:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"expected a mapping or list of mappings for merging, but found {value_node.id}",
                    value_node.start_mark,
                )
        return sources

    def _merge_cost(self, root: yaml.MappingNode) -> int:
        """How many keys and merged mappings expanding ``root``'s merges visits (capped just past
        :data:`MAX_VALUES`), computed without expanding them: once per mapping, without
        recursion. A mapping that merges itself, directly or through others, is an error."""
        costs = self._merge_costs
        on_path: set[int] = set()
        stack: list[tuple[bool, Any]] = [(False, root)]
        while stack:
            finished, node = stack.pop()
            if finished:
                on_path.discard(id(node))
                total = len(self._own_pairs(node)) + sum(1 + costs[id(s)] for s in self._merge_sources(node))
                costs[id(node)] = min(total, MAX_VALUES + 1)
                continue
            if id(node) in costs:
                continue
            if id(node) in on_path:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    root.start_mark,
                    "found a mapping that merges itself (`<<:` with an alias of the mapping it is in)",
                    node.start_mark,
                )
            on_path.add(id(node))
            stack.append((True, node))
            stack.extend((False, s) for s in self._merge_sources(node) if id(s) not in costs)
        return costs[id(root)]

    def _tag_issue(self, node: yaml.Node, path: PathKey) -> SpecIssue:
        tag = node.written_tag  # type: ignore[attr-defined]
        shown = "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag
        return self._issue(
            node,
            path,
            f"the YAML tag {shown!r} is not allowed: a spec is plain YAML, without tags",
            hint=f"remove `{shown}`; to make a value text, quote it instead",
        )

    def _scalar_issue(self, node: yaml.Node, path: PathKey, exc: Exception) -> SpecIssue:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return self._issue(
                node,
                path,
                f"not a valid date ({exc})",
                node.value,
                hint="write a date as YYYY-MM-DD, e.g. 2026-01-31; quote the value if it is meant as text",
            )
        kind = node.tag.rsplit(":", 1)[-1]
        return self._issue(
            node, path, f"cannot be read as a YAML {kind} ({exc})", node.value, hint="quote it"
        )

    def _issue(
        self, node: yaml.Node, path: PathKey, message: str, value: Any = None, hint: str | None = None
    ) -> SpecIssue:
        return SpecIssue(
            self.file,
            node.start_mark.line + 1,
            node.start_mark.column + 1,
            _dotted(path),
            message,
            value,
            hint,
        )

    def position(self, path: PathKey) -> Mark | None:
        """The closest recorded position for ``path`` (walking up to its parents)."""
        probe = tuple(path)
        while True:
            if probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.marks:
                return self.marks[probe]
            if not probe:
                return None
            probe = probe[:-1]


def _surely_past_64_bits(text: str) -> bool:
    """Whether an integer YAML resolved (decimal, 0b/0o/0x, 0-octal, base 60 ``1:30:00``) has
    more digits than any 64-bit integer, told from the text alone."""
    digits = text.replace("_", "").lstrip("+-")
    if ":" in digits:  # base 60: 60**11 is past 2**63
        return digits.count(":") > 11
    if digits[:2] in ("0b", "0x", "0o"):
        digits = digits[2:]
    return len(digits.lstrip("0")) > 64


_TOO_BIG_HINT = "YAML aliases (*name) are copied where they are used; nest them less, or split the spec"


def _dotted(path: PathKey) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


#: Broken files up to this size are parsed again by the pure-Python parser for its messages;
#: bigger ones keep libyaml's, so a broken file costs little more than a good one.
_SLOW_PARSE_BYTES = 64 * 1024


def parse_yaml(text: str, file: str) -> tuple[Any, _LocatedYaml]:
    """Parse one YAML document, keeping positions. Raises :class:`SpecError` on bad YAML.

    Any text is safe to give: its size, nesting and expansion are limited (:data:`MAX_SPEC_BYTES`,
    :data:`MAX_DEPTH`, :data:`MAX_VALUES`) and every way it can fail is a located issue.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise SpecError([_too_big_issue(text, file, size)])
    if _FAST_LOADER is not None:
        try:
            return _parse_with(_FAST_LOADER, text, file)
        except SpecError as exc:
            if size > _SLOW_PARSE_BYTES or not any(
                issue.message.startswith("invalid YAML") for issue in exc.issues
            ):
                raise
            fast_error = exc
        try:
            return _parse_with(_PySafeLoader, text, file)
        except SpecError as exc:
            # libyaml refused the text; PyYAML's words are clearer, but only when it refuses too
            raise (exc if any(i.line is not None for i in exc.issues) else fast_error) from None
    return _parse_with(_PySafeLoader, text, file)


def _too_big_issue(text: str, file: str, size: int) -> SpecIssue:
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


def _parse_with(loader_class: type[Any], text: str, file: str) -> tuple[Any, _LocatedYaml]:
    located = _LocatedYaml(file)
    loader = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty", hint="start from docs/spec.md")])
        data = located._construct(node, (), loader)
    except _TooDeep as exc:
        raise SpecError([_too_deep_issue(exc.mark, text, file)]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_error_issue(exc, text, file)]) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_error_issue(exc, text, file)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, None, None, "", f"invalid YAML: {exc}")]) from None
    except (ValueError, OverflowError) as exc:  # PyYAML's scanner: `"\UFFFFFFFF"` (chr() refuses)
        mark = loader.get_mark() if loader is not None and hasattr(loader, "get_mark") else None
        raise SpecError(
            [
                SpecIssue(
                    file,
                    mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None,
                    "",
                    f"invalid YAML: a `\\U` or `\\x` escape that names no character ({exc})",
                    hint="an escape such as \\U0001F600 names a character up to U+10FFFF; to write a "
                    "backslash itself, use single quotes",
                )
            ]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if located.issues:
        raise SpecError(located.issues)
    return data, located


def _too_deep_issue(mark: Any, text: str, file: str) -> SpecIssue:
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


def _reader_error_issue(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecIssue:
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


def _yaml_error_issue(exc: yaml.MarkedYAMLError, text: str, file: str) -> SpecIssue:
    """PyYAML's error with both of its places: where the construct starts (``context_mark``) and
    where the parser gave up (``problem_mark``). The issue is located at the start: an unclosed
    quote is found only at the end of the file, an unclosed ``[`` on the next line."""
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
            path = _key_path_at(lines, line, column)
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


def _key_path_at(lines: list[str], index: int, column: int) -> str:
    """The key path of the value that starts at line ``index``, column ``column`` (0-based), in a
    document that does not parse: the lines before it, plus that line cut at ``column`` with a
    ``null`` for the unfinished value, usually do; then the key on that line is known."""
    cuts = [column]
    colon = lines[index].find(": ")
    if 0 <= colon < column:  # inside a flow collection on that line: fall back to its first key
        cuts.append(colon + 1)
    for cut in cuts:
        head = "\n".join([*lines[:index], lines[index][:cut] + " null"])
        if len(head) > _SLOW_PARSE_BYTES:
            return ""
        located = _LocatedYaml("<prefix>")
        loader = None
        try:
            loader = _PySafeLoader(head)
            node = loader.get_single_node()
            if node is not None:
                located._construct(node, (), loader)
        except (SpecError, yaml.YAMLError, RecursionError, _TooDeep):
            continue
        finally:
            if loader is not None:
                loader.dispose()
        on_line = [p for p, (line, col) in located.key_marks.items() if line == index + 1 and col <= cut]
        if on_line:
            return _dotted(max(on_line, key=len))
    return ""


# --- pydantic errors -> actionable issues -----------------------------------------------------


def _alternatives(annotation: Any) -> list[Any]:
    """The members of a union (``X | Y | None``), each without its ``Annotated`` metadata."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(model: type[BaseModel], key: str) -> Any:
    return model.model_fields.get(key) or next(
        (f for f in model.model_fields.values() if f.alias == key), None
    )


def _annotations_at(path: PathKey, root: type[BaseModel] = PipelineSpec) -> list[Any]:
    """What may stand at ``path``: the annotations of the field, list item or mapping value there."""
    import typing

    current: list[Any] = [root]
    for part in path:
        following: list[Any] = []
        for alt in (a for c in current for a in _alternatives(c)):
            origin = typing.get_origin(alt)
            args = typing.get_args(alt)
            if _is_model(alt) and isinstance(part, str):
                field = _field(alt, part)
                if field is not None:
                    following.append(field.annotation)
            elif origin in (list, tuple) and isinstance(part, int) and args:
                following.append(args[0])
            elif origin is dict and len(args) == 2:
                following.append(args[1])
        if not following:
            return []
        current = following
    return current


def _model_at(path: PathKey, root: type[BaseModel] = PipelineSpec) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for "did you mean" on keys)."""
    return next((a for c in _annotations_at(path, root) for a in _alternatives(c) if _is_model(a)), None)


def _yaml_scalar(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _model_example(model: type[BaseModel], given: Any = None) -> str:
    """A flow mapping of ``model``'s required keys (else its first), e.g. ``{min: 0.5}``.

    ``given`` (a scalar written where the mapping belongs) fills the key when only one is shown.
    """
    keys = [(f.alias or name, f) for name, f in model.model_fields.items()]
    shown = [key for key, f in keys if f.is_required()] or [keys[0][0]]
    if len(shown) == 1 and _scalar(given):
        return f"{{{shown[0]}: {_yaml_scalar(given)}}}"
    return "{" + ", ".join(f"{key}: ..." for key in shown) + "}"


def _value_example(annotation: Any, given: Any = None) -> str | None:
    """A YAML example of a value of ``annotation`` (a model, a mapping of models, a list); None: none."""
    import typing

    for alt in _alternatives(annotation):
        origin = typing.get_origin(alt)
        args = typing.get_args(alt)
        if _is_model(alt):
            return _model_example(alt, given)
        if origin is dict and len(args) == 2:
            keys = [k for k in _alternatives(args[0]) if typing.get_origin(k) is typing.Literal]
            inner = _value_example(args[1], given)
            if not keys or inner is None:
                return "{<key>: <value>}"
            return f"{{{typing.get_args(keys[0])[0]}: {inner}}}"
        if origin in (list, tuple) and args:
            inner = _value_example(args[0]) or "..."
            return f"[{inner}]"
    return None


def _shape_issue(
    kind: str, loc: PathKey, value: Any, located: _LocatedYaml, root: type[BaseModel]
) -> SpecIssue | None:
    """A mapping or list where something else was written: what to write, built from the model."""
    pos = located.position(loc)
    line, column = pos if pos else (None, None)
    wanted = "a list" if kind == "list_type" else "a mapping (key: value)"
    got = value if _scalar(value) or value is None or isinstance(value, bool) else None
    key = loc[-1] if loc else ""
    if len(loc) == 4 and loc[:2] == ("validation", "expectations") and isinstance(key, str):
        from airflow_mlops.spec.expectations import example as expectation_example

        hint = f"write `{expectation_example(key, value)}`"
        return SpecIssue(located.file, line, column, _dotted(loc), f"{wanted} is expected here", got, hint)
    annotations = _annotations_at(loc, root)
    example = next((e for a in annotations if (e := _value_example(a, value)) is not None), None)
    if example is None:
        return None
    lead = f"{key}: " if isinstance(key, str) else "- "
    hint = f"write `{lead}{example}`"
    model = _model_at(loc, root)
    if model is not None:
        hint += "; allowed keys here: " + ", ".join(_allowed_keys(model))
    return SpecIssue(located.file, line, column, _dotted(loc), f"{wanted} is expected here", got, hint)


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _did_you_mean(value: Any, choices: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return close[0] if close else None


_LITERAL_EXPECTED = re.compile(r"'([^']+)'")


def _issue_from_error(
    err: dict[str, Any], located: _LocatedYaml, root: type[BaseModel] = PipelineSpec
) -> SpecIssue:
    loc: PathKey = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a bad mapping key (e.g. an unknown metric name)
        loc = loc[:-1]
    value = err.get("input")
    pos = located.position(loc)
    line, column = pos if pos else (None, None)
    path = _dotted(loc)
    hint: str | None = None

    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _model_at(loc[:-1], root)
        allowed = _allowed_keys(parent) if parent else []
        suggestion = _did_you_mean(key, allowed)
        message = f"unknown key {key!r}"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        if allowed:
            hint = "allowed keys here: " + ", ".join(allowed)
        return SpecIssue(located.file, line, column, path, message, None, hint)

    if kind == "missing":
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            "required key is missing",
            hint=f"add `{loc[-1]}:` to {_dotted(loc[:-1]) or 'the top level'}; see docs/spec.md",
        )

    if kind in ("literal_error", "enum"):
        expected = _LITERAL_EXPECTED.findall(err.get("ctx", {}).get("expected", ""))
        suggestion = _did_you_mean(value, expected)
        message = f"{value!r} is not allowed here"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            message,
            None,
            "allowed values: " + ", ".join(expected) if expected else None,
        )

    if kind == "too_long" and isinstance(value, (list, dict)):
        limit = err.get("ctx", {}).get("max_length")
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            f"too many entries: at most {limit} here, not {len(value):,}",
            None,
            f"see what `{loc[-1] if loc and isinstance(loc[-1], str) else path}` takes in docs/spec.md",
        )

    if kind in ("model_type", "model_attributes_type", "dict_type", "list_type"):
        shaped = _shape_issue(kind, loc, value, located, root)
        if shaped is not None:
            return shaped

    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "value_error" and "unknown expectation" in message:
        from airflow_mlops.spec.models import SUPPORTED_EXPECTATIONS

        name = message.split("'")[1] if "'" in message else ""
        for index in range(len(value) if isinstance(value, list) else 0):
            if (*loc, index, name) in located.key_marks:
                loc = (*loc, index, name)
                line, column = located.key_marks[loc]
                path = _dotted(loc)
                break
        suggestion = _did_you_mean(name, list(SUPPORTED_EXPECTATIONS))
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        hint = "supported expectations are listed in docs/spec.md (validation.expectations)"
        value = None
    elif kind == "value_error" and "schedule preset" in message:
        from airflow_mlops.spec.models import SCHEDULE_PRESETS

        suggestion = _did_you_mean(value, list(SCHEDULE_PRESETS))
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        hint = "presets: " + ", ".join(SCHEDULE_PRESETS) + "; or a 5-field cron such as '0 3 * * *'"
        value = None
    elif kind == "value_error" and "cron" in path:
        pass
    elif kind == "string_pattern_mismatch" and loc and loc[-1] == "pipeline":
        hint = "use lowercase letters, digits and underscores, starting with a letter, e.g. fraud_detector"
    if isinstance(value, (dict, list)):
        value = None  # the whole subtree is not a useful "got"
    return SpecIssue(located.file, line, column, path, message, value, hint)


M = TypeVar("M", bound=BaseModel)

_TYPE_MISMATCH = {
    "string_type",
    "none_required",
    "dict_type",
    "model_type",
    "model_attributes_type",
    "int_type",
    "float_type",
    "bool_type",
    "list_type",
    "literal_error",
    "string_pattern_mismatch",
}


_BRANCH_TAGS = {"str", "int", "float", "bool", "none", "dict", "list", "date", "datetime", "timedelta"}


def _is_branch_tag(part: str) -> bool:
    return (
        part in _BRANCH_TAGS
        or part[:1].isupper()
        or "[" in part
        or part.startswith(("function-", "constrained-"))
    )


def _data_loc(err: dict[str, Any], data: Any) -> dict[str, Any]:
    """Drop pydantic's union-branch tags (``str``, ``ScheduleConfig``...) from an error's location."""
    loc: list[Any] = []
    node = data
    for part in err["loc"]:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            loc.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_branch_tag(part):
            loc.append(part)  # a key that is missing or unknown (e.g. extra_forbidden)
            node = None
        elif part == "[key]":
            loc.append(part)
        # anything else is a branch tag of a union or a validator wrapper
    return {**err, "loc": tuple(loc), "branch": tuple(err["loc"]) != tuple(loc)}


def _without_union_noise(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """When a union branch failed for a real reason, hide the "wrong type" errors of the others."""
    real = {e["loc"][:1] for e in errors if e.get("branch") and e["type"] not in _TYPE_MISMATCH}
    kept = [
        e for e in errors if not (e.get("branch") and e["type"] in _TYPE_MISMATCH and e["loc"][:1] in real)
    ]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for e in kept:
        key = (e["loc"], e["msg"])
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def _without_misspelt_missing(errors: list[dict[str, Any]], root: type[BaseModel]) -> list[dict[str, Any]]:
    """Drop "required key is missing" when an unknown key beside it is its misspelling.

    ``{notifer: x}`` gives both errors; the unknown key's "did you mean 'notifier'?" says it all.
    """
    suggested: set[tuple[Any, ...]] = set()
    for e in errors:
        if e["type"] == "extra_forbidden" and e["loc"]:
            parent = _model_at(e["loc"][:-1], root)
            close = _did_you_mean(e["loc"][-1], _allowed_keys(parent)) if parent else None
            if close is not None:
                suggested.add((*e["loc"][:-1], close))
    return [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in suggested)]


def validate_data(data: Any, located: _LocatedYaml, model: type[M] = PipelineSpec) -> M:  # type: ignore[assignment]
    if not isinstance(data, dict):
        raise SpecError(
            [
                SpecIssue(
                    located.file,
                    1,
                    1,
                    "",
                    "a pipeline spec must be a YAML mapping (key: value)",
                    type(data).__name__,
                )
            ]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _without_misspelt_missing(
            _without_union_noise([_data_loc(dict(e), data) for e in exc.errors()]), model
        )
        issues = [_issue_from_error(e, located, model) for e in errors]
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues) from None


@dataclass(frozen=True)
class LoadedDefaults:
    """A folder's ``mlops-defaults.yaml``, validated."""

    path: Path
    model: FolderDefaults
    text: str = ""  # what the model was validated from (part of the parse cache's key)

    @property
    def allowed_roots(self) -> list[str]:
        return [
            r if "://" in r else str((self.path.parent / os.path.expanduser(r)).resolve())
            for r in self.model.allowed_roots
        ]


def load_folder_defaults(path: str | os.PathLike[str]) -> LoadedDefaults:
    p = Path(path)
    text = read_spec_text(p)
    data, located = parse_yaml(text, str(p))
    return LoadedDefaults(p, validate_data(data, located, FolderDefaults), text)


def find_folder_defaults(
    spec_path: str | os.PathLike[str], cache: dict[Path, LoadedDefaults | None] | None = None
) -> LoadedDefaults | None:
    """The nearest ``mlops-defaults.yaml`` in the spec's folder or above it (nearest wins)."""
    cache = {} if cache is None else cache
    folder = Path(spec_path).resolve().parent
    visited = []
    found: LoadedDefaults | None = None
    for candidate in (folder, *folder.parents):
        if candidate in cache:
            found = cache[candidate]
            break
        visited.append(candidate)
        if (candidate / DEFAULTS_FILE_NAME).is_file():
            found = load_folder_defaults(candidate / DEFAULTS_FILE_NAME)
            break
    for v in visited:
        cache[v] = found
    return found


def apply_folder_defaults(spec: PipelineSpec, folder: FolderDefaults) -> PipelineSpec:
    """Merge a folder's defaults under a spec: the spec's own keys win, tags add up."""

    def merged(lower: BaseModel | None, upper: BaseModel | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in (lower, upper):
            if model is not None:
                out.update({k: getattr(model, k) for k in model.model_fields_set})
        return out

    stages = {
        stage: TaskSettings.model_validate(merged(folder.stages.get(stage), spec.stages.get(stage)))
        for stage in sorted(set(folder.stages) | set(spec.stages))
    }
    update: dict[str, Any] = {
        "defaults": Defaults.model_validate(merged(folder.defaults, spec.defaults)),
        "stages": stages,
        "tags": list(dict.fromkeys([*folder.tags, *spec.tags])),
    }
    if "owner" not in spec.model_fields_set and folder.owner:
        update["owner"] = folder.owner
    return spec.model_copy(update=update)


_AUTO: Any = object()


def load_spec_text(
    text: str,
    file: str = "<string>",
    *,
    base: Path | None = None,
    folder_defaults: LoadedDefaults | None = None,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
    default_allowed_roots: list[str] | None = None,
) -> PipelineSpec:
    """Validate a spec's text. ``base`` is the folder relative paths resolve against.

    The allowed roots: see :func:`effective_allowed_roots`.
    """
    from airflow_mlops.spec.checks import check_content, check_entrypoints, check_paths, check_steps

    data, located = parse_yaml(text, file)
    try:
        spec: PipelineSpec = validate_data(data, located)
    except SpecError as exc:
        raise _without_api_version(exc, data, file) from None

    def locate(path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        pos = located.position(path)
        return pos if pos else (None, None)

    allowed_roots = effective_allowed_roots(folder_defaults, allowed_roots, default_allowed_roots)
    issues = check_steps(spec, file, locate) + check_content(spec, file, locate, imports=check_imports)
    if check_imports:
        issues += check_entrypoints(spec, file, locate)
    issues += check_paths(spec, file, locate, base=base, allowed_roots=allowed_roots)
    if issues:
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues)
    if folder_defaults is not None:
        spec = apply_folder_defaults(spec, folder_defaults.model)
    return spec


def _without_api_version(exc: SpecError, data: Any, file: str) -> SpecError:
    """A document with spec keys but no ``apiVersion``: say so first, in the words that fix it."""
    if not isinstance(data, dict) or "apiVersion" in data:
        return exc
    issue = SpecIssue(
        file,
        1,
        1,
        "apiVersion",
        "this file looks like a pipeline spec (it has "
        + ", ".join(f"`{k}:`" for k in _SPEC_KEYS if k in data)
        + ") but has no `apiVersion`, so it is not read as one",
        hint="add `apiVersion: mlops/v1` as the first line",
    )
    return SpecError([issue, *(i for i in exc.issues if i.path != "apiVersion")])


def effective_allowed_roots(
    folder_defaults: LoadedDefaults | None,
    allowed_roots: list[str] | None,
    default: list[str] | None = None,
) -> list[str]:
    """The roots data and artifact locations must lie under, the first of these that names any:

    ``allowed_roots`` (given by the caller: the CLI's ``--allowed-root``), the nearest folder
    defaults file's ``allowed_roots``, ``AIRFLOW_MLOPS_ALLOWED_ROOTS``, ``default`` (the dags
    folder, for the loader and the CLI alike). None of them: no restriction. Relative local roots
    are resolved against the working directory (the defaults file's against its own folder).
    """
    from airflow_mlops.spec.checks import allowed_roots_from_env

    if allowed_roots is not None:
        return [resolve_root(r) for r in allowed_roots]
    if folder_defaults and folder_defaults.model.allowed_roots:
        return folder_defaults.allowed_roots
    return [resolve_root(r) for r in allowed_roots_from_env() or default or []]


@functools.lru_cache(maxsize=256)
def _resolved(root: str, cwd: str) -> str:
    return str((Path(cwd) / os.path.expanduser(root)).resolve())


def resolve_root(root: str) -> str:
    """An allowed root as the checks compare it: URIs as given, local paths absolute and resolved."""
    return root if "://" in root else _resolved(root, os.getcwd())


# Byte-order marks, longest first (UTF-32's LE mark starts with UTF-16's), and the encodings
# YAML 1.2 (5.2) detects without one from the NULs around an ASCII first character.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NUL_PATTERNS = (
    (re.compile(rb"\A\x00\x00\x00[^\x00]"), "utf-32-be"),
    (re.compile(rb"\A[^\x00]\x00\x00\x00"), "utf-32-le"),
    (re.compile(rb"\A\x00[^\x00]"), "utf-16-be"),
    (re.compile(rb"\A[^\x00]\x00"), "utf-16-le"),
)


def spec_encoding(data: bytes) -> tuple[str, int]:
    """The encoding of a spec's bytes and the length of its byte-order mark.

    UTF-8 unless a byte-order mark or YAML's NUL pattern says UTF-16 or UTF-32 (the encodings
    the YAML spec asks every reader to accept); the mark is not part of the text.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    for pattern, encoding in _NUL_PATTERNS:
        if pattern.match(data):
            return encoding, 0
    return "utf-8", 0


def decode_spec(data: bytes, file: str) -> str:
    """A spec file's text from its bytes (see :func:`spec_encoding`); :class:`SpecError` if it
    is not valid in its encoding, at the line where it stops being."""
    encoding, skip = spec_encoding(data)
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        good = data[skip : skip + exc.start].decode(encoding, "replace")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        bad = data[skip + exc.start : skip + min(exc.end, exc.start + 4)].hex(" ")
        detected = "" if encoding == "utf-8" else f" (detected as {encoding.upper()} from its first bytes)"
        raise SpecError(
            [
                SpecIssue(
                    file,
                    line,
                    column,
                    "",
                    f"the file is not valid {encoding.upper()}{detected}: bytes {bad} cannot be decoded",
                    hint="save the file as UTF-8 (a spec may also be UTF-16 or UTF-32 with a byte-order mark)",
                )
            ]
        ) from None


def read_spec_bytes(path: Path, limit: int = MAX_SPEC_BYTES) -> bytes:
    """At most ``limit + 1`` bytes of the file (one more tells that it is too big).

    :raises OSError: also when it is not a regular file: a FIFO would block the reader forever,
        a device (``/dev/zero``, ``/dev/urandom``) would never end, a folder cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISFIFO(mode):
            kind = "a FIFO"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        elif stat.S_ISDIR(mode):
            kind = "a folder"
        else:
            kind = "not a file"
        raise OSError(f"{path} is {kind}, not a regular file: a spec is a plain text file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def read_spec_head(path: Path) -> str:
    """The text a spec file starts with, decoded leniently: what spec detection looks at."""
    data = read_spec_bytes(path)
    encoding, skip = spec_encoding(data)
    return data[skip:].decode(encoding, "replace")


def read_spec_text(path: Path) -> str:
    """A spec (or defaults) file's text; raises :class:`SpecError` when it cannot be read as text
    in its encoding (:func:`spec_encoding`) or is over :data:`MAX_SPEC_BYTES`."""
    try:
        data = read_spec_bytes(path)
    except OSError as exc:
        raise SpecError([SpecIssue(str(path), None, None, "", f"cannot read the spec: {exc}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = len(data)
        head = data[:MAX_SPEC_BYTES].decode(spec_encoding(data)[0], "replace")
        issue = _too_big_issue(head, str(path), size)
        raise SpecError([issue])
    return decode_spec(data, str(path))


def load_spec(
    path: str | os.PathLike[str],
    *,
    folder_defaults: LoadedDefaults | None = _AUTO,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
    default_allowed_roots: list[str] | None = None,
) -> PipelineSpec:
    """Read and validate one spec file. Raises :class:`SpecError` with every problem found.

    ``folder_defaults``: by default the nearest ``mlops-defaults.yaml`` above the spec.
    ``allowed_roots``: by default the defaults file's ``allowed_roots``, else the
    ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` environment variable, else ``default_allowed_roots``, else
    no restriction (see :func:`effective_allowed_roots`).
    """
    p = Path(path)
    text = read_spec_text(p)
    if folder_defaults is _AUTO:
        folder_defaults = find_folder_defaults(p)
    return load_spec_text(
        text,
        str(p),
        base=p.resolve().parent,
        folder_defaults=folder_defaults,
        allowed_roots=allowed_roots,
        check_imports=check_imports,
        default_allowed_roots=default_allowed_roots,
    )


# `apiVersion: mlops/...` as a key: at the start of a line (indented too: a document may be),
# after `---`, or in a flow mapping (`{apiVersion: mlops/v1, ...}`, JSON), quoted or not.
_API_VERSION_LINE = re.compile(
    r"""(?:^[ \t]*(?:---[ \t]+)?|[{,][ \t]*)["']?apiVersion["']?[ \t]*:\s*["']?mlops/""", re.MULTILINE
)
# The top-level keys a spec must have besides apiVersion; a file with `pipeline:` and one of the
# others (and no `kind:`, which other tools' manifests have) is taken for a spec without one.
_SPEC_KEYS = ("pipeline", "data", "registry")
_TOP_KEY = re.compile(r"""^(?:---[ \t]+)?["']?(pipeline|data|registry|kind)["']?[ \t]*:""", re.MULTILINE)


def is_spec_document(text: str) -> bool:
    """Cheap check used to pick spec files out of a dags folder.

    True for an ``apiVersion: mlops/...`` key, and for a document that looks like a spec without
    one, or with another (top-level ``pipeline:`` and ``data:`` or ``registry:``, and no ``kind:``):
    loading it then reports the missing or wrong ``apiVersion`` instead of skipping the file
    without a word. Other YAML (``mlops-defaults.yaml`` has ``kind: Defaults``) is not a spec.
    """
    if _API_VERSION_LINE.search(text) is not None:
        return True
    keys = set(_TOP_KEY.findall(text))
    return "pipeline" in keys and bool(keys & {"data", "registry"}) and "kind" not in keys


def date_to_datetime(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
