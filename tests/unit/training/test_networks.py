"""The built-in network: preprocessing and the MLP (the safetensors-only loader is tested in
test_flavors_networks.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from airflow_mlops.exceptions import DataError
from airflow_mlops.training.networks import MAX_CATEGORIES, MLP, Preprocessor

# --- Preprocessor ---------------------------------------------------------------------------------


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, np.nan],
            "flag": [True, False, True, False],
            "colour": ["red", "blue", None, "red"],
            "size": pd.Categorical(["S", "M", "S", "L"]),
        }
    )


def test_preprocessor_standardises_imputes_and_one_hot_encodes() -> None:
    pre = Preprocessor.fit(small_frame(), ["x", "flag", "colour", "size"])
    assert pre.numeric["x"] == pytest.approx((2.0, np.std([1.0, 2.0, 3.0])))
    assert set(pre.numeric) == {"x", "flag"}
    assert pre.categorical == {"colour": ("blue", "red"), "size": ("L", "M", "S")}
    assert pre.output_names == ["x", "flag", "colour=blue", "colour=red", "size=L", "size=M", "size=S"]

    out = pre.transform(small_frame())

    assert out.dtype == np.float32
    assert out.shape == (4, 7)
    assert out[:3, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert out[3, 0] == 0.0  # NaN -> the mean -> 0 after scaling
    np.testing.assert_array_equal(out[:, 2:4], [[0, 1], [1, 0], [0, 0], [0, 1]])  # None -> all zeros
    np.testing.assert_array_equal(out[:, 4:], [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_unknown_category_encodes_as_all_zeros() -> None:
    pre = Preprocessor.fit(small_frame(), ["colour"])
    out = pre.transform(pd.DataFrame({"colour": ["green", "red"]}))
    np.testing.assert_array_equal(out, [[0, 0], [0, 1]])


def test_categories_match_across_int_and_string_values() -> None:
    pre = Preprocessor.fit(pd.DataFrame({"code": [1, 2, 3]}), ["code"], categorical=["code"])
    assert pre.categorical["code"] == ("1", "2", "3")
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"code": ["2"]})), [[0, 1, 0]])


def test_constant_column_gets_unit_std() -> None:
    pre = Preprocessor.fit(pd.DataFrame({"c": [5.0, 5.0, 5.0]}), ["c"])
    assert pre.numeric["c"] == (5.0, 1.0)
    assert np.isfinite(pre.transform(pd.DataFrame({"c": [7.0]}))).all()


def test_round_trip_through_json() -> None:
    pre = Preprocessor.fit(small_frame(), ["x", "flag", "colour", "size"])
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again == pre
    np.testing.assert_array_equal(again.transform(small_frame()), pre.transform(small_frame()))


def test_text_in_an_explicitly_numeric_column() -> None:
    df = pd.DataFrame({"amount": ["1.5", "2", "abc", None], "kind": ["a", "b", "a", "b"]})
    with pytest.raises(
        DataError, match=r"numeric column 'amount' holds 1 non-numeric value\(s\) such as 'abc' \(row 2\)"
    ):
        Preprocessor.fit(df, ["amount", "kind"], categorical=["kind"])


def test_mostly_numeric_text_column_is_reported_not_encoded() -> None:
    values = [str(i) for i in range(30)] + ["n/a"]
    with pytest.raises(DataError, match=r"looks numeric .* non-numeric values such as 'n/a'"):
        Preprocessor.fit(pd.DataFrame({"amount": values}), ["amount"])


def test_numeric_column_turning_into_text_at_predict_time() -> None:
    pre = Preprocessor.fit(pd.DataFrame({"x": [1.0, 2.0]}), ["x"])
    with pytest.raises(DataError, match="numeric column 'x' holds 1 non-numeric"):
        pre.transform(pd.DataFrame({"x": ["3", "three"]}))


def test_identifier_like_column_is_rejected() -> None:
    df = pd.DataFrame({"id": [f"t{i}" for i in range(MAX_CATEGORIES + 1)]})
    with pytest.raises(DataError, match="looks like an identifier"):
        Preprocessor.fit(df, ["id"])


def test_unusable_dtype_is_rejected() -> None:
    df = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=3)})
    with pytest.raises(DataError, match="'when' has dtype datetime64"):
        Preprocessor.fit(df, ["when"])


def test_missing_feature_is_named() -> None:
    with pytest.raises(DataError, match="lacks feature column\\(s\\) 'y'"):
        Preprocessor.fit(pd.DataFrame({"x": [1.0]}), ["x", "y"])


# --- MLP ----------------------------------------------------------------------------------------


def test_mlp_shapes_and_architecture_round_trip() -> None:
    mlp = MLP(5, [4, 3], dropout=0.2)
    assert mlp(torch.zeros(7, 5)).shape == (7,)
    again = MLP.from_architecture(json.loads(json.dumps(mlp.architecture())))
    assert again.state_dict().keys() == mlp.state_dict().keys()
    assert [tuple(t.shape) for t in again.state_dict().values()] == [
        tuple(t.shape) for t in mlp.state_dict().values()
    ]


@pytest.mark.parametrize(
    ("args", "message"), [((0, [4]), "input_dim"), ((3, []), "hidden_units"), ((3, [4], 1.0), "dropout")]
)
def test_mlp_rejects_bad_architecture(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLP(*args)
