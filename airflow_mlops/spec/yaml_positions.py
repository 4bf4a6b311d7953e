"""YAML with positions: plain data from a spec's text plus the line and column of every key path.

YAML is composed into nodes with PyYAML's safe loader (libyaml's parser when built; no arbitrary
tags, no code) under a nesting guard, then converted to plain Python while recording where each
key and value was written. Size, nesting, expansion (aliases, ``<<:`` merges) and integers are
limited (:mod:`airflow_mlops.spec.limits`); every way a text can fail is a located issue
(:mod:`airflow_mlops.spec.yaml_messages`).
"""

from __future__ import annotations

from typing import Any

import yaml

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.limits import MAX_DEPTH, MAX_INT, MAX_SPEC_BYTES, MAX_VALUES, SLOW_PARSE_BYTES
from airflow_mlops.spec.yaml_messages import (
    PathKey,
    dotted,
    reader_error_issue,
    too_big_issue,
    too_deep_issue,
    yaml_error_issue,
)

Mark = tuple[int, int]  # 1-based line, column

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_INT_TAG = "tag:yaml.org,2002:int"


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


class LocatedYaml:
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
                            dotted((*path, key)),
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
            dotted(path),
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


def parse_yaml(text: str, file: str) -> tuple[Any, LocatedYaml]:
    """Parse one YAML document, keeping positions. Raises :class:`SpecError` on bad YAML.

    Any text is safe to give: its size, nesting and expansion are limited (:data:`MAX_SPEC_BYTES`,
    :data:`MAX_DEPTH`, :data:`MAX_VALUES`) and every way it can fail is a located issue.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise SpecError([too_big_issue(text, file, size)])
    if _FAST_LOADER is not None:
        try:
            return _parse_with(_FAST_LOADER, text, file)
        except SpecError as exc:
            if size > SLOW_PARSE_BYTES or not any(
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


def _parse_with(loader_class: type[Any], text: str, file: str) -> tuple[Any, LocatedYaml]:
    located = LocatedYaml(file)
    loader = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty", hint="start from docs/spec.md")])
        data = located._construct(node, (), loader)
    except _TooDeep as exc:
        raise SpecError([too_deep_issue(exc.mark, text, file)]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([reader_error_issue(exc, text, file)]) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([yaml_error_issue(exc, text, file, _key_path_at)]) from None
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
        if len(head) > SLOW_PARSE_BYTES:
            return ""
        located = LocatedYaml("<prefix>")
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
            return dotted(max(on_line, key=len))
    return ""
