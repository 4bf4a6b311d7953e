"""Which names a skops file may make ``skops.io.load`` import (the skops allowlist).

A skops file (``skops.io.dump``) is a zip archive: ``schema.json`` describes the object tree and
names every class, type and function to rebuild it by ``module.name``; skops imports each one
and calls it (a class's ``__new__`` and ``__setstate__``, a type or reduce constructor with
arguments from the file, a dict or list type with the items). skops refuses names that are not
in its own trusted set unless the caller trusts them, and its documentation asks the caller to
review :func:`skops.io.get_untrusted_types` first. The review is this module:
:data:`SKOPS_SAFE_NAMES` is what the scanner accepts; the loader's entry point,
:func:`~airflow_mlops.security.scanning.skops_policy.trusted_skops_types`, checks skops' own
list against it.

- scikit-learn, XGBoost and LightGBM: the generated lists the pickle scanner uses (every
  estimator and the helper classes fitted estimators keep; the XGBoost/LightGBM scikit-learn API
  estimators and boosters). A booster's constructor loads the model file its arguments name, so a
  booster may only appear as an ``ObjectNode`` (``cls.__new__`` then ``__setstate__``, which hands
  the model bytes/text to the library's parser): the scanner checks that (:mod:`.scanner`).
- builtins: only the data types skops itself trusts (``str``, ``int``, ``float``, ``bool``,
  ``list``, ``set``, ``tuple``, ``dict``, ``bytes``, ``bytearray``, ``slice``) and
  ``collections.OrderedDict``/``defaultdict``; not ``builtins.map``, which skops trusts but the
  pickle denylist refuses.
- numpy: ``ndarray``, ``dtype``, the scalar types, masked arrays, ``RandomState``,
  ``Generator`` and its bit generators (skops' names), and numpy's ufuncs as functions (pure
  element-wise math, which skops trusts too).
- scipy: the sparse matrix and array classes ``scipy.sparse.save_npz`` writes (csr, csc, coo,
  bsr, dia); skops rebuilds them with ``load_npz``, which refuses pickles.

Anything the pickle denylist refuses (:func:`.policy.is_dangerous`: ``builtins.eval``,
``os.system``, ``subprocess.Popen``, ``operator.attrgetter``, ``functools.partial`` ...) is refused
even when a caller allows it. A caller may allow more names (``allowed_globals`` of the scan,
``allowed_types`` here, ``module.*`` wildcards included).
"""

from __future__ import annotations

import sys

from airflow_mlops.security.scanning import policy
from airflow_mlops.security.scanning.lightgbm_globals import LIGHTGBM_GLOBALS
from airflow_mlops.security.scanning.report import FindingKind
from airflow_mlops.security.scanning.sklearn_globals import SKLEARN_GLOBALS
from airflow_mlops.security.scanning.xgboost_globals import XGBOOST_GLOBALS

__all__ = ["SKOPS_SAFE_NAMES", "skops_name_problem"]

_BUILTIN_DATA = frozenset(
    [
        *(f"builtins.{t}" for t in ("str", "int", "float", "bool", "list", "set", "tuple", "dict")),
        *(f"builtins.{t}" for t in ("bytes", "bytearray", "slice")),
        "collections.OrderedDict",
        "collections.defaultdict",
    ]
)
# numpy 2's name of the boolean scalar type, and the C long long types skops records by name
_NUMPY_SCALARS = [*policy.NUMPY_SCALAR_TYPES, "bool", "longlong", "ulonglong"]
_NUMPY = frozenset(
    [
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.ma.core.MaskedArray",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        # RandomGeneratorNode resolves the bit generator as getattr(numpy.random, name)
        *(f"numpy.random.{g}" for g in ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")),
        *(f"numpy.{t}" for t in _NUMPY_SCALARS),
    ]
)
_SCIPY_SPARSE = frozenset(
    f"scipy.sparse._{fmt}.{fmt}_{kind}"
    for fmt in ("csr", "csc", "coo", "bsr", "dia")
    for kind in ("matrix", "array")
)
#: Modules a skops ``FunctionNode`` names numpy's ufuncs by (``numpy.core._multiarray_umath.log1p``).
_UFUNC_MODULES = frozenset(
    [
        "numpy",
        "numpy.core._multiarray_umath",
        "numpy._core._multiarray_umath",
        "numpy.core.umath",
        "numpy._core.umath",
    ]
)

#: Every name a skops file may make skops import without the caller allowing it.
SKOPS_SAFE_NAMES: frozenset[str] = frozenset(
    n
    for n in (
        {s for s in SKLEARN_GLOBALS if not s.endswith(".newObj")}  # pickle-only Cython helpers
        | XGBOOST_GLOBALS
        | LIGHTGBM_GLOBALS
        | _BUILTIN_DATA
        | _NUMPY
        | _SCIPY_SPARSE
    )
    if not policy.is_dangerous(*n.rsplit(".", 1))
)


def _is_numpy_ufunc(module: str, name: str) -> bool:
    """True when ``module.name`` is one of numpy's ufuncs (looked up, nothing is imported)."""
    if module not in _UFUNC_MODULES or not name.isidentifier():
        return False
    import numpy  # the scanner reads .npy headers with numpy; importing it loads its ufunc modules

    owner = sys.modules.get(module)  # a module numpy did not load itself is not looked up
    return owner is not None and isinstance(getattr(owner, name, None), numpy.ufunc)


def _caller_allows(dotted: str, module: str, allowed: frozenset[str]) -> bool:
    if dotted in allowed:
        return True
    parts = module.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts) + 1))


def skops_name_problem(
    dotted: str, allowed: frozenset[str] = frozenset(), *, builtin: bool = True
) -> tuple[FindingKind, str] | None:
    """Why skops must not import ``dotted`` (a finding kind and a reason), or None when allowed.

    ``builtin=False``: only the caller's ``allowed`` names count (a bound method's
    ``module.Class.method`` is never on the built-in list, whatever its spelling).
    """
    module, _, name = dotted.rpartition(".")
    if not module or not all(p.isidentifier() for p in dotted.split(".")):
        return FindingKind.UNKNOWN_GLOBAL, f"{dotted!r} is not a dotted Python name"
    if policy.is_dangerous(module, name):
        return FindingKind.DANGEROUS_GLOBAL, (
            f"{dotted} can run code, import modules or touch files when skops calls it; it is refused "
            "whatever the caller allows"
        )
    if _caller_allows(dotted, module, allowed):
        return None
    if builtin and (dotted in SKOPS_SAFE_NAMES or _is_numpy_ufunc(module, name)):
        return None
    return FindingKind.UNKNOWN_GLOBAL, (
        f"{dotted} is not on the skops allowlist (scikit-learn, XGBoost, LightGBM, numpy, scipy sparse "
        "and the builtin data types skops trusts); skops would import and call it"
    )
