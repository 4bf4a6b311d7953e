"""Read a skops file's ``schema.json`` the way ``skops.io`` 0.16 (protocol 2) builds its node tree,
without importing skops or anything the schema names.

``skops.io.load`` reads ``schema.json``, turns every object in it into a node chosen by its
``__loader__`` (``ObjectNode``, ``NdArrayNode`` ...), and each node imports the
``__module__.__class__`` it names when it is constructed (classes, functions, types, the
constructors of reduce-style objects), or reads a member file of the archive (``.npy`` arrays,
``.npz`` sparse matrices, ``.bin`` bytes). This module walks the same tree, strictly and bounded:

- the schema must be UTF-8 JSON (what ``json.dumps`` writes) with no repeated keys, no
  ``NaN``/``Infinity`` literals, nested at most :data:`MAX_DEPTH` levels;
- the protocol must be one this module mirrors (:data:`PROTOCOLS`): another protocol selects other
  node classes in skops;
- every node must be one of the kinds skops writes, with exactly the keys that kind has, and the
  module and class names must be dotted identifiers;
- it collects every name a node makes skops import (:class:`SkopsRef`, including the constructor
  a ``TreeNode`` uses, a ``MethodNode``'s ``module.Class.method`` and a ``RandomGeneratorNode``'s
  bit generator, which skops resolves by a name stored as data) and every member file a node reads
  (with what it must be: ``npy``, ``npz``, ``bytes``, or ``xgboost_booster``, the bytes an
  XGBoost booster's state hands to XGBoost's parser).

Judging the names (the allowlist) is :mod:`.skops_allowlist`'s job; checking the members is the
scanner's (:mod:`.scanner`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: skops protocols whose node classes this module mirrors (skops 0.16 writes protocol 2).
PROTOCOLS = frozenset([2])
#: JSON nesting the scanner accepts in ``schema.json`` (real pipelines stay under 40). skops builds
#: its tree recursively, so a deeper schema would only exhaust the loader's stack.
MAX_DEPTH = 200
#: ``schema.json`` sizes the scanner reads (a LightGBM model keeps its text in it).
MAX_SCHEMA_BYTES = 256 << 20

SCHEMA_NAME = "schema.json"
XGBOOST_BOOSTER = "xgboost.core.Booster"
_TREE = "sklearn.tree._tree.Tree"
_COMMON = frozenset(["__class__", "__module__", "__loader__", "__id__"])
_ROOT_EXTRA = frozenset(["protocol", "_skops_version"])

# What a key holds: a node, a list of nodes, a mapping of nodes, a fixed set of named nodes ...
_NODE = "node"
_NODES = "nodes"
_NODE_MAP = "node_map"
_NODE_OR_NULL = "node_or_null"

#: loader -> {key: what it holds}; a key wrapped in "?" is optional (skops reads it with .get).
_LOADERS: dict[str, dict[str, object]] = {
    "DictNode": {"content": _NODE_MAP, "key_types": _NODE},
    "DefaultDictNode": {"content": {"main": _NODE, "default_factory": _NODE}},
    "ListNode": {"content": _NODES},
    "SetNode": {"content": _NODES},
    "TupleNode": {"content": _NODES},
    "BytesNode": {"file": "member:bytes"},
    "BytearrayNode": {"file": "member:bytes"},
    "SliceNode": {"content": "slice"},
    "FunctionNode": {},
    "MethodNode": {"content": {"func": "identifier", "obj": _NODE}},
    "PartialNode": {"content": {"func": _NODE, "args": _NODE, "kwds": _NODE, "namespace": _NODE}},
    "TypeNode": {},
    "ConstructorFromReduceNode": {"content": _NODE},
    "ObjectNode": {"?content": _NODE_OR_NULL},
    "JsonNode": {"content": "json_text", "?is_json": "bool"},
    "OperatorFuncNode": {"attrs": _NODE},
    "MaskedArrayNode": {"content": {"data": _NODE, "mask": _NODE}},
    "DTypeNode": {"content": _NODE},
    "RandomStateNode": {"content": _NODE},
    "RandomGeneratorNode": {"content": {"bit_generator": _NODE, "seed_seq": _NODE}},
    "SparseMatrixNode": {"type": "const:scipy", "file": "member:npz"},
    "TreeNode": {"__reduce__": {"args": _NODE}, "content": _NODE},
    "LossNode": {"__reduce__": {"args": _NODE}, "content": _NODE},
    # NdArrayNode has two layouts, chosen by its "type"
    "NdArrayNode": {},
}
_NDARRAY_LAYOUTS: dict[str, dict[str, object]] = {
    "numpy": {"type": "const:numpy", "file": "member:npy"},
    "json": {"type": "const:json", "content": _NODES, "shape": _NODE},
}


@dataclass(frozen=True)
class SkopsRef:
    """One name loading the schema makes skops import (and, for most kinds, call)."""

    dotted: str
    loader: str  # the node kind that imports it ("ObjectNode", "TypeNode" ...)
    where: str  # a JSON path into schema.json, for messages
    #: False for a bound method (``module.Class.method`` of a MethodNode): no built-in allowlist
    #: entry may match it (the caller can still allow it by name)
    builtin_ok: bool = True


@dataclass
class SkopsSchema:
    """What :func:`read_schema` found."""

    refs: list[SkopsRef] = field(default_factory=list)
    #: member name -> what each reference needs it to be ("npy", "npz", "bytes", "xgboost_booster")
    members: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    nodes: int = 0


class _DuplicateKeyError(ValueError):
    pass


class _ConstantError(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        raise _DuplicateKeyError(f"repeated key(s) {sorted({k for k in keys if keys.count(k) > 1})}")
    return out


def _no_constant(name: str) -> Any:
    raise _ConstantError(f"the literal {name} (not JSON, and skops never writes it in the schema)")


def _is_dotted(value: object) -> bool:
    return isinstance(value, str) and bool(value) and all(p.isidentifier() for p in value.split("."))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """(value, problem) of ``raw`` as skops reads it (``json.loads`` of the member's bytes),
    refusing what would let two JSON readers disagree (not UTF-8, a BOM, repeated keys) and
    nesting past what the standard library's parser handles."""
    if json.detect_encoding(raw) != "utf-8":
        return None, "schema.json is not UTF-8 (json.loads would guess another encoding)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"schema.json is not valid UTF-8: {exc}"
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant), None
    except _DuplicateKeyError as exc:
        return None, f"schema.json has an object with {exc} (readers disagree on which one counts)"
    except RecursionError:
        return None, f"schema.json is nested deeper than the JSON parser allows (limit {MAX_DEPTH})"
    except ValueError as exc:
        return None, f"schema.json is not valid JSON: {exc}"


def _json_text_problem(text: object) -> str | None:
    """A JsonNode's content is JSON text that skops parses when it constructs the value."""
    if not isinstance(text, str):
        return f"content must be JSON text, got {type(text).__name__}"
    try:
        json.loads(text)
    except RecursionError:
        return "content is nested deeper than the JSON parser allows"
    except ValueError as exc:
        return f"content is not valid JSON: {exc}"
    return None


def read_schema(raw: bytes) -> SkopsSchema:
    """Walk ``schema.json`` (its bytes) as skops builds the node tree; see the module docstring."""
    out = SkopsSchema()
    root, problem = parse_json(raw)
    if problem:
        out.problems.append(problem)
        return out
    if not isinstance(root, dict):
        out.problems.append(f"schema.json must hold a JSON object, got {type(root).__name__}")
        return out
    protocol = root.get("protocol")
    if not _is_int(protocol) or protocol not in PROTOCOLS:
        out.problems.append(
            f"skops protocol {protocol!r} is not one the scanner reads ({sorted(PROTOCOLS)}): another "
            "protocol selects other node classes in skops; re-save the model with the installed skops"
        )
        return out
    if "_skops_version" in root and not isinstance(root["_skops_version"], str):
        out.problems.append("_skops_version must be a string")
    _Walker(out).run(root)
    return out


class _Walker:
    def __init__(self, out: SkopsSchema) -> None:
        self.out = out
        # (value, JSON path, depth, is the root)
        self.todo: list[tuple[Any, str, int, bool]] = []

    def problem(self, where: str, text: str) -> None:
        self.out.problems.append(f"{where}: {text}")

    def ref(self, dotted: str, loader: str, where: str, *, builtin_ok: bool = True) -> None:
        self.out.refs.append(SkopsRef(dotted, loader, where, builtin_ok))

    def member(self, name: object, kind: str, where: str) -> None:
        if not isinstance(name, str) or not name:
            self.problem(where, f"the member file name must be a non-empty string, got {name!r}")
            return
        self.out.members.setdefault(name, set()).add(kind)

    def run(self, root: dict[str, Any]) -> None:
        self.todo.append((root, "$", 1, True))
        while self.todo:
            value, where, depth, is_root = self.todo.pop()
            self.node(value, where, depth, is_root)

    def push(self, value: Any, where: str, depth: int) -> None:
        self.todo.append((value, where, depth, False))

    def node(self, state: Any, where: str, depth: int, is_root: bool) -> None:
        if depth > MAX_DEPTH:
            self.problem(where, f"the schema is nested deeper than {MAX_DEPTH} levels")
            return
        if not isinstance(state, dict):
            self.problem(where, f"expected a node (a JSON object), got {type(state).__name__}")
            return
        self.out.nodes += 1
        loader = state.get("__loader__")
        module, cls = state.get("__module__"), state.get("__class__")
        if not isinstance(loader, str) or loader not in _LOADERS:
            self.problem(
                where,
                f"node loader {loader!r} is not one skops {sorted(PROTOCOLS)} writes for the types the "
                "scanner reads (CachedNode and QuantileForestNode are refused too)",
            )
            return
        if not _is_dotted(module) or not (isinstance(cls, str) and cls.isidentifier()):
            self.problem(where, f"__module__ {module!r} / __class__ {cls!r} are not dotted Python names")
            return
        if "__id__" in state and not _is_int(state["__id__"]):
            self.problem(where, f"__id__ must be an integer, got {state['__id__']!r}")
        fields = _LOADERS[loader]
        if loader == "NdArrayNode":
            layout = state.get("type")
            if not isinstance(layout, str) or layout not in _NDARRAY_LAYOUTS:
                self.problem(where, f"NdArrayNode type {layout!r} is neither 'numpy' nor 'json'")
                return
            fields = _NDARRAY_LAYOUTS[layout]
        allowed = _COMMON | {k.lstrip("?") for k in fields} | (_ROOT_EXTRA if is_root else frozenset())
        extra = sorted(set(state) - allowed)
        if extra:
            self.problem(where, f"{loader} has key(s) {extra} that skops does not write")
        missing = sorted(k for k in fields if not k.startswith("?") and k not in state)
        if missing:
            self.problem(where, f"{loader} lacks key(s) {missing}")
            return
        dotted = f"{module}.{cls}"
        self.ref(dotted, loader, where)
        for key, spec in fields.items():
            name = key.lstrip("?")
            if name in state:
                self.field(state[name], spec, f"{where}.{name}", depth + 1, loader)
        self.special(loader, state, dotted, where)

    def field(self, value: Any, spec: object, where: str, depth: int, loader: str) -> None:
        if isinstance(spec, dict):  # a fixed set of named fields
            if not isinstance(value, dict):
                self.problem(
                    where, f"expected an object with keys {sorted(spec)}, got {type(value).__name__}"
                )
                return
            if set(value) != set(spec):
                self.problem(where, f"expected exactly the keys {sorted(spec)}, got {sorted(value)}")
                return
            for key, sub in spec.items():
                self.field(value[key], sub, f"{where}.{key}", depth + 1, loader)
        elif spec == _NODE:
            self.push(value, where, depth)
        elif spec == _NODE_OR_NULL:
            if value is not None:
                self.push(value, where, depth)
        elif spec == _NODES:
            if not isinstance(value, list):
                self.problem(where, f"expected a list of nodes, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self.push(item, f"{where}[{i}]", depth + 1)
        elif spec == _NODE_MAP:
            if not isinstance(value, dict):
                self.problem(where, f"expected an object of nodes, got {type(value).__name__}")
                return
            for key, item in value.items():
                self.push(item, f"{where}[{key!r}]", depth + 1)
        elif spec == "slice":
            if not (
                isinstance(value, dict)
                and set(value) == {"start", "stop", "step"}
                and all(v is None or _is_int(v) for v in value.values())
            ):
                self.problem(where, "a slice must have integer or null start, stop and step")
        elif spec == "identifier":
            if not (isinstance(value, str) and value.isidentifier()):
                self.problem(where, f"expected a Python name, got {value!r}")
        elif spec == "bool":
            if not isinstance(value, bool):
                self.problem(where, f"expected true or false, got {value!r}")
        elif spec == "json_text":
            problem = _json_text_problem(value)
            if problem:
                self.problem(where, problem)
        elif isinstance(spec, str) and spec.startswith("const:"):
            if value != spec.removeprefix("const:"):
                self.problem(where, f"expected {spec.removeprefix('const:')!r}, got {value!r}")
        elif isinstance(spec, str) and spec.startswith("member:"):
            self.member(value, spec.removeprefix("member:"), where)
        else:  # pragma: no cover - every spec of _LOADERS is handled above
            raise AssertionError(f"unhandled schema field spec {spec!r}")

    def special(self, loader: str, state: dict[str, Any], dotted: str, where: str) -> None:
        """Names a node imports besides its own ``__module__.__class__``, and node-kind rules."""
        if loader == "TreeNode":
            self.ref(_TREE, loader, where)  # the constructor TreeNode calls, whatever the state says
        elif loader == "MethodNode":
            obj = state["content"].get("obj") if isinstance(state["content"], dict) else None
            func = state["content"].get("func") if isinstance(state["content"], dict) else None
            if isinstance(obj, dict) and (obj.get("__module__"), obj.get("__class__")) != (
                state["__module__"],
                state["__class__"],
            ):
                self.problem(where, "a MethodNode's object is of another type than the node names")
            if isinstance(func, str):
                self.ref(f"{dotted}.{func}", loader, where, builtin_ok=False)
        elif loader == "OperatorFuncNode" and state["__module__"] != "operator":
            self.problem(where, "an OperatorFuncNode must name the operator module")
        elif loader == "RandomGeneratorNode":
            name = _bit_generator_name(state["content"])
            if name is None:
                self.problem(where, "the numpy Generator state does not name its bit generator")
            else:
                self.ref(f"numpy.random.{name}", loader, where)  # skops calls getattr(numpy.random, name)
        elif loader == "ObjectNode" and dotted == XGBOOST_BOOSTER:
            handle = _dict_item(state.get("content"), "handle")
            if isinstance(handle, dict) and handle.get("__loader__") in ("BytesNode", "BytearrayNode"):
                self.member(handle.get("file"), "xgboost_booster", f"{where}.content.handle")


def _dict_item(node: object, key: str) -> object:
    """The node a DictNode holds under ``key`` (None when ``node`` is not such a DictNode)."""
    if isinstance(node, dict) and node.get("__loader__") == "DictNode":
        content = node.get("content")
        if isinstance(content, dict):
            return content.get(key)
    return None


def _bit_generator_name(content: object) -> str | None:
    """The bit generator name skops' RandomGeneratorNode resolves, read as skops reads it."""
    try:
        name_state = content["bit_generator"]["content"]["bit_generator"]  # type: ignore[index]
        name = json.loads(name_state["content"])
    except (KeyError, TypeError, ValueError, RecursionError):
        return None
    return name if isinstance(name, str) and name.isidentifier() else None
