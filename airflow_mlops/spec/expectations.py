"""The arguments of the Great Expectations expectations a spec may use, without importing GX.

Importing ``great_expectations`` takes seconds, far too long for the DAG processor's parse path,
so the argument signature of every expectation in
:data:`~airflow_mlops.data.expectation_names.SUPPORTED_EXPECTATIONS` is generated from the installed GX
into ``gx_expectations.json`` beside this module, which is committed::

    python -m airflow_mlops.spec.expectations

A unit test regenerates it in memory and fails when the committed file is stale (after a GX
upgrade, or a change to the supported expectations). Validation reads only the JSON.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

SIGNATURES_FILE = Path(__file__).with_name("gx_expectations.json")

# Arguments the validation stage sets itself on every expectation (see data/validation.py).
RESERVED_ARGUMENTS = ("id", "meta")


@cache
def signatures() -> dict[str, Any]:
    """The committed signatures: ``{"common": [...], "expectations": {name: {"required", "optional"}}}``."""
    data: dict[str, Any] = json.loads(SIGNATURES_FILE.read_text(encoding="utf-8"))
    return data


def expectation_signature(name: str) -> tuple[list[str], list[str]] | None:
    """``(required, optional)`` arguments of ``name`` (optional includes the common ones); None if unknown."""
    data = signatures()
    entry = data["expectations"].get(name)
    if entry is None:
        return None
    return list(entry["required"]), [*entry["optional"], *data["common"]]


def example(name: str, given: Any = None) -> str:
    """A spec snippet for ``name`` with its required arguments, e.g. ``{column: ..., value_set: [...]}``.

    ``given``: a scalar the user wrote instead of the mapping; it fills the one required argument
    when there is exactly one.
    """
    found = expectation_signature(name)
    required = found[0] if found else []
    if not required and found:
        required = found[1][:1]
    scalar = isinstance(given, (str, int, float)) and not isinstance(given, bool)
    if len(required) == 1 and scalar:
        return f"{name}: {{{required[0]}: {given}}}"
    parts = [f"{arg}: {'[...]' if arg.endswith(('_set', '_list')) else '...'}" for arg in required]
    return f"{name}: {{{', '.join(parts)}}}"


# --- generation (imports great_expectations) --------------------------------------------------


def _fields(cls: type) -> dict[str, tuple[str, bool]]:
    """``{field name: (argument name, required)}`` of a GX model (pydantic v1 or v2)."""
    out: dict[str, tuple[str, bool]] = {}
    v1 = getattr(cls, "__fields__", None)
    if isinstance(v1, dict) and v1 and hasattr(next(iter(v1.values())), "required"):
        for name, field in v1.items():
            out[name] = (field.alias or name, bool(field.required))
        return out
    for name, info in cls.model_fields.items():  # type: ignore[attr-defined]  # pragma: no cover
        out[name] = (info.alias or name, info.is_required())
    return out


def generate() -> dict[str, Any]:
    """The signatures, from the installed Great Expectations (slow: imports it)."""
    import great_expectations as gx

    from airflow_mlops.data.expectation_names import SUPPORTED_EXPECTATIONS, gx_class_name

    base = _fields(gx.expectations.Expectation)
    common = sorted(arg for arg, _ in base.values() if arg not in RESERVED_ARGUMENTS)
    expectations: dict[str, Any] = {}
    for name in SUPPORTED_EXPECTATIONS:
        cls = getattr(gx.expectations, gx_class_name(name), None)
        if cls is None:
            raise RuntimeError(
                f"Great Expectations {gx.__version__} has no {gx_class_name(name)} ({name}); "
                "remove it from SUPPORTED_EXPECTATIONS or install a GX 1.x that has it"
            )
        own = {f: v for f, v in _fields(cls).items() if f not in base}
        expectations[name] = {
            "required": [arg for arg, required in own.values() if required],
            "optional": [arg for arg, required in own.values() if not required],
        }
    return {
        "generated_by": "python -m airflow_mlops.spec.expectations",
        "great_expectations": gx.__version__,
        "common": common,
        "expectations": expectations,
    }


def render(data: dict[str, Any]) -> str:
    """The file's text for ``data`` (stable: the staleness test compares it byte for byte)."""
    return json.dumps(data, indent=2) + "\n"


def main() -> int:
    SIGNATURES_FILE.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {SIGNATURES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
