"""Tests for airflow_mlops.security.scanning.skops_schema: reading a skops ``schema.json`` as
skops 0.16 builds its node tree, without importing anything it names. Strict JSON, the protocols
mirrored, the node kinds and their keys, every name a node makes skops import (including the
ones stored as data) and every member file a node reads. Judging the names is
test_skops_allowlist.py; the whole skops scan is test_skops_policy.py."""

from __future__ import annotations

import io
import json
import sys
import zipfile

import pytest
from scan_bypass_corpus import sk, sk_dict, sk_json, sk_model, sk_tuple

from airflow_mlops.security.scanning.skops_schema import (
    MAX_DEPTH,
    PROTOCOLS,
    XGBOOST_BOOSTER,
    SkopsRef,
    SkopsSchema,
    parse_json,
    read_schema,
)


def _read(schema: object) -> SkopsSchema:
    return read_schema(json.dumps(schema).encode())


def _root(node: dict[str, object]) -> dict[str, object]:
    return {**node, "protocol": 2, "_skops_version": "0.16.0"}


def _names(schema: SkopsSchema) -> set[str]:
    return {r.dotted for r in schema.refs}


# --- a well-formed schema ------------------------------------------------------------------


def test_a_model_schema_yields_every_name_skops_imports_and_its_members() -> None:
    schema = _read(sk_model(coef_=sk("NdArrayNode", "numpy", "ndarray", type="numpy", file="1.npy")))

    assert schema.problems == []
    assert _names(schema) == {
        "sklearn.linear_model._logistic.LogisticRegression",
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "numpy.ndarray",
    }
    assert schema.members == {"1.npy": {"npy"}}
    assert schema.nodes == 7  # root, its DictNode, key_types list, 2 key TypeNodes, 2 values
    root = next(r for r in schema.refs if r.loader == "ObjectNode")
    assert root == SkopsRef("sklearn.linear_model._logistic.LogisticRegression", "ObjectNode", "$", True)


def test_a_schema_skops_itself_writes_is_read_without_problems() -> None:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]], [0, 1, 0, 1])
    with zipfile.ZipFile(io.BytesIO(skops_io.dumps(model))) as zf:
        raw = zf.read("schema.json")
        member_names = set(zf.namelist()) - {"schema.json"}

    schema = read_schema(raw)

    assert schema.problems == []
    assert "sklearn.linear_model._logistic.LogisticRegression" in _names(schema)
    assert set(schema.members) == member_names  # every array member is referenced by the schema
    assert all(kinds == {"npy"} for kinds in schema.members.values())


def test_reading_a_schema_imports_nothing_it_names() -> None:
    name = "module_a_test_names_and_nobody_has"
    _read(_root(sk("ObjectNode", name, "Thing", content=None)))
    assert name not in sys.modules


# --- parse_json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"protocol": 2, "protocol": 2}', "repeated key(s) ['protocol']"),
        (b'\xef\xbb\xbf{"protocol": 2}', "not UTF-8 (json.loads would guess another encoding)"),
        ('{"protocol": 2}'.encode("utf-16-le"), "not UTF-8"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": NaN}', "the literal NaN"),
        (b'{"a": -Infinity}', "the literal -Infinity"),
        (b'{"a": 1', "not valid JSON"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than the JSON parser allows"),
    ],
    ids=["repeated", "bom", "utf16", "bad-utf8", "nan", "infinity", "cut", "deep"],
)
def test_json_two_readers_could_read_differently_is_refused(raw: bytes, problem: str) -> None:
    value, found = parse_json(raw)
    assert value is None and found is not None and problem in found
    schema = read_schema(raw)
    assert schema.problems == [found] and schema.refs == [] and schema.nodes == 0


def test_parse_json_returns_the_value_of_plain_json() -> None:
    assert parse_json(b'{"a": [1, 2.5, null, true], "b": {"c": "d"}}') == (
        {"a": [1, 2.5, None, True], "b": {"c": "d"}},
        None,
    )


# --- the root ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ([1], "must hold a JSON object, got list"),
        ({"protocol": 3}, "skops protocol 3 is not one the scanner reads"),
        ({"protocol": 1}, "skops protocol 1"),
        ({"protocol": True}, "skops protocol True"),
        ({"protocol": "2"}, "skops protocol '2'"),
        ({}, "skops protocol None"),
    ],
)
def test_a_root_of_another_shape_or_protocol_is_refused_before_any_node(root: object, problem: str) -> None:
    schema = _read(root)
    assert len(schema.problems) == 1 and problem in schema.problems[0]
    assert schema.refs == [] and schema.nodes == 0


def test_the_protocols_mirrored() -> None:
    assert frozenset([2]) == PROTOCOLS


def test_skops_version_must_be_a_string() -> None:
    schema = _read({**sk_model(), "_skops_version": 16})
    assert schema.problems == ["_skops_version must be a string"]


def test_root_only_keys_are_refused_below_the_root() -> None:
    inner = {**sk("TypeNode", "builtins", "int"), "protocol": 2}
    schema = _read(sk_model(x=inner))
    assert any("TypeNode has key(s) ['protocol'] that skops does not write" in p for p in schema.problems)


# --- nodes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        (sk("CachedNode", "builtins", "int"), "node loader 'CachedNode' is not one skops"),
        (sk("QuantileForestNode", "quantile_forest", "X"), "node loader 'QuantileForestNode'"),
        ({"__module__": "os", "__class__": "system"}, "node loader None"),
        (sk("TypeNode", "os;rm", "system"), "are not dotted Python names"),
        (sk("TypeNode", "os", "sys.tem"), "are not dotted Python names"),
        (sk("TypeNode", "", "int"), "are not dotted Python names"),
        (
            sk("TypeNode", "builtins", "int", extra=1),
            "TypeNode has key(s) ['extra'] that skops does not write",
        ),
        (sk("DictNode", "builtins", "dict"), "DictNode lacks key(s) ['content', 'key_types']"),
        (sk("TypeNode", "builtins", "int", __id__="1"), "__id__ must be an integer"),
        (sk("NdArrayNode", "numpy", "ndarray", type="pickle", file="x"), "neither 'numpy' nor 'json'"),
        (sk("NdArrayNode", "numpy", "ndarray", type="numpy", file="x", shape=1), "key(s) ['shape']"),
        (sk("SparseMatrixNode", "scipy.sparse", "csr_matrix", type="scipy", file=""), "non-empty string"),
        (
            sk("SparseMatrixNode", "scipy.sparse", "csr_matrix", type="numpy", file="m.npz"),
            "expected 'scipy'",
        ),
        (sk("SliceNode", "builtins", "slice", content={"start": 1, "stop": "x", "step": None}), "slice must"),
        (sk("JsonNode", "builtins", "str", content="{bad"), "content is not valid JSON"),
        (sk("JsonNode", "builtins", "str", content=5), "content must be JSON text, got int"),
        (sk("JsonNode", "builtins", "str", content="1", is_json="yes"), "expected true or false"),
        (sk("ListNode", "builtins", "list", content={"a": 1}), "expected a list of nodes, got dict"),
        (sk("DictNode", "builtins", "dict", content=[], key_types=sk_tuple()), "expected an object of nodes"),
        (sk("ListNode", "builtins", "list", content=[1]), "expected a node (a JSON object), got int"),
        (
            sk("PartialNode", "functools", "partial", content={"func": sk_json(1)}),
            "expected exactly the keys",
        ),
        (sk("MaskedArrayNode", "numpy.ma", "MaskedArray", content=[]), "expected an object with keys"),
        (sk("OperatorFuncNode", "os", "system", attrs=sk_json(1)), "must name the operator module"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_nodes_skops_does_not_write_are_refused(node: dict[str, object], problem: str) -> None:
    schema = _read(_root(sk_tuple(node)))
    assert any(problem in p for p in schema.problems), schema.problems


def test_a_node_path_locates_the_problem() -> None:
    schema = _read(sk_model(coef_=sk_tuple(sk_json(1), sk("CachedNode", "builtins", "int"))))
    assert len(schema.problems) == 1
    assert schema.problems[0].startswith("$.content.content['coef_'].content[1]: node loader 'CachedNode'")


def test_a_schema_nested_past_the_limit_is_refused_at_the_limit() -> None:
    deep: dict[str, object] = sk_json(1)
    for _ in range(MAX_DEPTH):
        deep = sk_tuple(deep)
    schema = _read(_root(deep))
    assert any(p.endswith(f"the schema is nested deeper than {MAX_DEPTH} levels") for p in schema.problems)
    assert schema.nodes < MAX_DEPTH  # the walk stopped there

    shallow: dict[str, object] = sk_json(1)
    for _ in range(MAX_DEPTH // 2 - 2):
        shallow = sk_tuple(shallow)
    assert _read(_root(shallow)).problems == []


# --- names imported besides __module__.__class__ ----------------------------------------------


def test_a_function_node_imports_what_it_names() -> None:
    schema = _read(_root(sk("FunctionNode", "os", "system")))
    assert schema.problems == [] and schema.refs == [SkopsRef("os.system", "FunctionNode", "$")]


def test_a_tree_node_always_imports_the_tree_constructor() -> None:
    node = sk("TreeNode", "mypkg", "NotATree", __reduce__={"args": sk_tuple()}, content=sk_json(1))
    schema = _read(_root(node))
    tree_refs = [r.dotted for r in schema.refs if r.loader == "TreeNode"]
    assert tree_refs == ["mypkg.NotATree", "sklearn.tree._tree.Tree"]


def test_a_method_node_imports_the_bound_method_which_no_builtin_entry_may_match() -> None:
    obj = sk("ObjectNode", "collections", "OrderedDict", content=None)
    node = sk("MethodNode", "collections", "OrderedDict", content={"func": "fromkeys", "obj": obj})
    schema = _read(_root(node))
    assert schema.problems == []
    method = next(r for r in schema.refs if r.dotted == "collections.OrderedDict.fromkeys")
    assert method.loader == "MethodNode" and method.builtin_ok is False


def test_a_method_node_whose_object_is_of_another_type_is_refused() -> None:
    obj = sk("ObjectNode", "os", "PathLike", content=None)
    node = sk("MethodNode", "collections", "OrderedDict", content={"func": "fromkeys", "obj": obj})
    assert "a MethodNode's object is of another type than the node names" in _read(_root(node)).problems[0]


def test_a_method_node_function_must_be_a_python_name() -> None:
    obj = sk("ObjectNode", "collections", "OrderedDict", content=None)
    node = sk("MethodNode", "collections", "OrderedDict", content={"func": "__import__('os')", "obj": obj})
    schema = _read(_root(node))
    assert any("expected a Python name" in p for p in schema.problems)


def _generator(bit_generator: dict[str, object]) -> dict[str, object]:
    return sk(
        "RandomGeneratorNode",
        "numpy.random._generator",
        "Generator",
        content={"bit_generator": bit_generator, "seed_seq": sk_json(None)},
    )


def test_a_random_generator_imports_the_bit_generator_named_as_data() -> None:
    """skops calls ``getattr(numpy.random, name)`` with a name read from the state."""
    state = sk_dict({"bit_generator": sk_json("PCG64"), "state": sk_json({"state": 1})})
    schema = _read(_root(_generator(state)))
    assert schema.problems == []
    assert SkopsRef("numpy.random.PCG64", "RandomGeneratorNode", "$") in schema.refs


@pytest.mark.parametrize("name", [1, "os.system", None])
def test_a_random_generator_without_a_plain_bit_generator_name_is_refused(name: object) -> None:
    schema = _read(_root(_generator(sk_dict({"bit_generator": sk_json(name)}))))
    assert "the numpy Generator state does not name its bit generator" in schema.problems[0]
    generator_refs = [r.dotted for r in schema.refs if r.loader == "RandomGeneratorNode"]
    assert generator_refs == ["numpy.random._generator.Generator"]  # no bit generator name taken


# --- member files --------------------------------------------------------------------------


def test_member_kinds_by_node() -> None:
    schema = _read(
        _root(
            sk_tuple(
                sk("NdArrayNode", "numpy", "ndarray", type="numpy", file="a.npy"),
                sk("SparseMatrixNode", "scipy.sparse", "csr_matrix", type="scipy", file="m.npz"),
                sk("BytesNode", "builtins", "bytes", file="b.bin"),
                sk("BytearrayNode", "builtins", "bytearray", file="b.bin"),
                sk("NdArrayNode", "numpy", "ndarray", type="json", content=[sk_json(1)], shape=sk_json([1])),
            )
        )
    )
    assert schema.problems == []
    assert schema.members == {"a.npy": {"npy"}, "m.npz": {"npz"}, "b.bin": {"bytes"}}


def test_an_xgboost_booster_handle_is_handed_to_xgboost_parser() -> None:
    handle = sk("BytearrayNode", "builtins", "bytearray", file="booster.bin")
    booster = sk("ObjectNode", "xgboost.core", "Booster", content=sk_dict({"handle": handle}))
    schema = _read(_root(booster))
    assert schema.problems == []
    assert XGBOOST_BOOSTER in _names(schema)
    assert schema.members == {"booster.bin": {"bytes", "xgboost_booster"}}


def test_bytes_of_another_object_are_not_taken_for_a_booster() -> None:
    handle = sk("BytearrayNode", "builtins", "bytearray", file="x.bin")
    other = sk("ObjectNode", "mypkg", "Booster", content=sk_dict({"handle": handle}))
    assert _read(_root(other)).members == {"x.bin": {"bytes"}}


@pytest.mark.parametrize("file", [None, 1, ""])
def test_a_member_name_must_be_a_non_empty_string(file: object) -> None:
    schema = _read(_root(sk("BytesNode", "builtins", "bytes", file=file)))
    assert schema.members == {}
    assert any("the member file name must be a non-empty string" in p for p in schema.problems)
