"""The built-in networks' training settings: each one's default and bounds, written once.

The spec's pydantic models (:mod:`airflow_mlops.spec.sections.training`) declare their fields
from these tables, and the trainer (which runs without pydantic) checks a job's config against
the same tables at its boundary (:mod:`airflow_mlops.training.config`). Standard library only:
the DAG processor loads it with the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from airflow_mlops.security import watermark as _watermark

#: The defaults of the spec's ``training.watermark`` (the watermark module's own).
WATERMARK_TRIGGER_ROWS = _watermark.DEFAULT_TRIGGER_ROWS
WATERMARK_ALPHA = _watermark.DEFAULT_ALPHA
WATERMARK_CONN_ID = _watermark.WATERMARK_CONN_ID

#: The built-in torch networks (``training.model``).
BUILTIN_MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class Setting:
    """One setting: its default and what values it takes.

    ``kind`` is ``int``, ``number`` (finite; an integer is a number), ``choice`` (one of
    ``choices``) or ``int_list`` (a list of integers, each within ``item_ge``/``item_le``, with
    ``min_items``/``max_items`` entries). ``ge``/``gt``/``le``/``lt`` bound a number or integer.
    ``nullable``: null is allowed too. ``required``: there is no default.
    """

    kind: Literal["int", "number", "choice", "int_list"]
    default: Any = None
    ge: int | float | None = None
    gt: int | float | None = None
    le: int | float | None = None
    lt: int | float | None = None
    choices: tuple[str, ...] = ()
    item_ge: int | None = None
    item_le: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    nullable: bool = False
    required: bool = False
    #: how an ``int_list``'s entries are named in its error message (e.g. ``[channels, height, width]``)
    shape: str | None = None

    def bounds(self) -> dict[str, Any]:
        """The bounds of a number or integer, as pydantic's ``Field`` keyword arguments."""
        named = {"ge": self.ge, "gt": self.gt, "le": self.le, "lt": self.lt}
        return {k: v for k, v in named.items() if v is not None}

    def item_bounds(self) -> dict[str, Any]:
        """The bounds of each entry of an ``int_list`` (``Field`` keyword arguments)."""
        named = {"ge": self.item_ge, "le": self.item_le}
        return {k: v for k, v in named.items() if v is not None}

    def length_bounds(self) -> dict[str, Any]:
        """The length bounds of an ``int_list`` (``Field`` keyword arguments)."""
        named = {"min_length": self.min_items, "max_length": self.max_items}
        return {k: v for k, v in named.items() if v is not None}

    def fresh_default(self) -> Any:
        """The default (a new list for a list default)."""
        return list(self.default) if isinstance(self.default, list) else self.default

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a valid value of this setting."""
        if value is None:
            return self.nullable
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "int_list":
            if not isinstance(value, list) or not all(_is_int(v) for v in value):
                return False
            if (self.min_items is not None and len(value) < self.min_items) or (
                self.max_items is not None and len(value) > self.max_items
            ):
                return False
            return all(_within(v, self.item_ge, None, self.item_le, None) for v in value)
        if not (_is_int(value) if self.kind == "int" else _is_number(value)):
            return False
        return _within(value, self.ge, self.gt, self.le, self.lt)

    def describe(self) -> str:
        """What the setting takes, for an error message: ``a positive integer up to 10000``."""
        if self.kind == "choice":
            text = f"one of {', '.join(self.choices)}" if len(self.choices) > 2 else " or ".join(self.choices)
        elif self.kind == "int_list":
            text = self._describe_list()
        elif self.kind == "int":
            sign = "a positive " if self.ge == 1 else "a non-negative " if self.ge == 0 else "an "
            text = sign + "integer" + (f" up to {self.le}" if self.le is not None else "")
        else:
            text = self._describe_number()
        return text + (" or null" if self.nullable else "")

    def _describe_number(self) -> str:
        lower = (
            ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else (None, None)
        )
        upper = (
            (self.le, "]") if self.le is not None else (self.lt, ")") if self.lt is not None else (None, None)
        )
        if upper[0] is None:
            if lower == ("(", 0):
                return "a positive number"
            if lower == ("[", 0):
                return "a non-negative number"
            return (
                "a number"
                if lower[1] is None
                else f"a number {'>=' if lower[0] == '[' else '>'} {lower[1]:g}"
            )
        if lower[1] is None:
            return f"a number {'<=' if upper[1] == ']' else '<'} {upper[0]:g}"
        return f"a number in {lower[0]}{lower[1]:g}, {upper[0]:g}{upper[1]}"

    def _describe_list(self) -> str:
        entries = {1: "positive integers", 0: "non-negative integers"}.get(self.item_ge or -1, "integers")
        if self.item_le is not None:
            entries += f" up to {self.item_le}"
        if self.min_items is not None and self.min_items == self.max_items:
            text = f"a list of {self.min_items} {entries}"
        elif self.max_items is not None:
            text = f"a list of {self.min_items or 0} to {self.max_items} {entries}"
        elif self.min_items == 1:
            text = f"a non-empty list of {entries}"
        else:
            text = f"a list of {entries}"
        return f"{self.shape}: {text}" if self.shape else text


#: ``training.params`` of ``mlp`` and ``cnn`` (``cnn`` uses the dense ones for its head).
NETWORK_PARAMS: dict[str, Setting] = {
    "epochs": Setting("int", 20, ge=1, le=10_000),
    "lr": Setting("number", 1e-3, gt=0, le=10),
    "batch_size": Setting("int", 512, ge=1, le=1_000_000),
    "hidden_units": Setting("int_list", [64, 32], item_ge=1, item_le=65536, min_items=1),
    "dropout": Setting("number", 0.1, ge=0, lt=1),
    "weight_decay": Setting("number", 0.0, ge=0),
    "class_weight": Setting("choice", "balanced", choices=("balanced", "none")),
    "image_shape": Setting(
        "int_list",
        None,
        item_ge=1,
        min_items=3,
        max_items=3,
        nullable=True,
        shape="[channels, height, width]",
    ),
    "conv_channels": Setting("int_list", [16, 32], item_ge=1, item_le=1024, min_items=1, max_items=6),
}

#: ``training.privacy`` (DP-SGD).
PRIVACY: dict[str, Setting] = {
    "epsilon": Setting("number", gt=0, le=100, required=True),
    "delta": Setting("number", 1e-5, gt=0, lt=1),
    "max_grad_norm": Setting("number", 1.0, gt=0),
    "noise_multiplier": Setting("number", None, gt=0, nullable=True),
}

#: The run's settings the trainer reads beside ``params`` (``training.<name>`` in the spec).
RUN_SETTINGS: dict[str, Setting] = {
    "validation_fraction": Setting("number", 0.1, ge=0, lt=0.9),
    "early_stopping_patience": Setting("int", None, ge=1, nullable=True),
    "seed": Setting("int", 42),
    "device": Setting("choice", "auto", choices=("auto", "cpu", "cuda")),
    "precision": Setting("choice", "auto", choices=("auto", "fp32", "bf16")),
}


def defaults(table: dict[str, Setting]) -> dict[str, Any]:
    """The defaults of a table's settings that have one (fresh lists)."""
    return {name: s.fresh_default() for name, s in table.items() if not s.required}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _within(value: float, ge: float | None, gt: float | None, le: float | None, lt: float | None) -> bool:
    return (
        (ge is None or value >= ge)
        and (gt is None or value > gt)
        and (le is None or value <= le)
        and (lt is None or value < lt)
    )
