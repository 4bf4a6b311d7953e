"""The scanner's policy tables: which pickle globals are safe to import, and which never are.

A pickle can only run code through the callables it imports (``GLOBAL``, ``STACK_GLOBAL``,
``INST``) and then calls (``REDUCE``, ``NEWOBJ``, ``BUILD`` with ``__setstate__`` ...). A global
is on the built-in allowlist when **calling it with attacker-chosen arguments (and setting the
state of what it returns) cannot run code, import modules or touch files**: constructors of
plain values and containers, tensor/array rebuild functions, and estimator classes whose
constructors only store their parameters. Any callable such a function calls with its arguments
must itself come out of the pickle as a global, so it is checked on its own.

Lists, from the most to the least general (each entry is reviewed; see docs/security.md):

- :data:`STDLIB_SAFE_GLOBALS`: values of the standard library (datetime, decimal, fractions,
  uuid, collections, pathlib's path *objects* (building one touches no file), ``complex`` ...).
- :data:`NUMPY_SAFE_GLOBALS`: array, dtype and scalar rebuilds, for numpy 1 (``numpy.core``)
  and numpy 2 (``numpy._core``) names, and the random generators' pickling helpers.
- :data:`TORCH_SAFE_GLOBALS`: tensor/parameter rebuilds, storages, dtypes, devices, and
  (generated) every ``torch.nn`` module class, so a ``torch.save`` of an ``nn.Module`` passes.
- :data:`JOBLIB_SAFE_GLOBALS`: ``joblib.numpy_pickle.NumpyArrayWrapper``, the placeholder joblib
  writes before raw array bytes (the only exception to the ``joblib`` denylist entry).
- scikit-learn (generated, :mod:`.sklearn_globals`): every estimator class of the installed
  version and the helper classes fitted estimators keep.
- XGBoost and LightGBM (generated, :mod:`.xgboost_globals`, :mod:`.lightgbm_globals`): their
  scikit-learn API estimators and their ``Booster`` classes. A booster's constructor loads the
  model file its arguments name, so the boosters are in :data:`NEW_ONLY_GLOBALS`: a pickle may
  only create one the way pickle writes it (``cls.__new__``, then ``__setstate__``, which hands
  the model bytes or text to the library's own parser), never call the class or hand it on.

Deliberately **not** allowed, although common: ``numpy.core._ufunc_reconstruct`` (it imports
any module by name), ``functools.partial`` / ``operator.attrgetter`` / ``methodcaller`` (they turn
any callable and attribute into a call), ``zoneinfo.ZoneInfo`` (reads files named by the pickle),
``collections.namedtuple`` (builds code), ``builtins.type`` / ``getattr`` / ``eval`` / ``exec``.
"""

from __future__ import annotations

from airflow_mlops.security.scanning.lightgbm_globals import LIGHTGBM_GLOBALS
from airflow_mlops.security.scanning.sklearn_globals import SKLEARN_GLOBALS
from airflow_mlops.security.scanning.torch_globals import TORCH_NN_GLOBALS
from airflow_mlops.security.scanning.xgboost_globals import XGBOOST_GLOBALS

__all__ = [
    "BUILTIN_SAFE_GLOBALS",
    "DANGEROUS_GLOBALS",
    "DANGEROUS_MODULES",
    "DANGEROUS_NAMES",
    "JOBLIB_ARRAY_WRAPPER",
    "JOBLIB_SAFE_GLOBALS",
    "NEW_ONLY_GLOBALS",
    "NUMPY_SAFE_GLOBALS",
    "SHARED_RESULT_GLOBALS",
    "STDLIB_SAFE_GLOBALS",
    "TORCH_SAFE_GLOBALS",
    "is_allowed",
    "is_dangerous",
]

#: Plain values and containers of the standard library. Their constructors parse or store their
#: arguments; none imports, evaluates, or opens anything.
STDLIB_SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.range",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.bytes",
        "builtins.list",
        "builtins.tuple",
        "builtins.dict",
        "builtins.object",  # the base copyreg._reconstructor passes for plain classes
        "builtins.Ellipsis",
        "builtins.NotImplemented",
        "copyreg._reconstructor",  # protocol 0/1 objects: base.__new__(cls, state); cls and base are checked globals
        "_codecs.encode",  # numpy arrays pickled with protocol 2 encode their bytes with it
        "collections.OrderedDict",
        "collections.defaultdict",  # its default_factory is another global, checked on its own
        "collections.deque",
        "collections.Counter",
        "datetime.date",
        "datetime.time",
        "datetime.datetime",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "uuid.SafeUUID",
        # path objects: building one is string handling; reading the file would need a call on it
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib._local.PurePosixPath",  # Python 3.13+ module names
        "pathlib._local.PureWindowsPath",
        "pathlib._local.PosixPath",
        "pathlib._local.WindowsPath",
        "pathlib._local.Path",
    ]
)

#: numpy's scalar types (estimators keep them as their dtype parameter; calling one converts a value).
NUMPY_SCALAR_TYPES = (
    "bool_",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "intc",
    "uintc",
    "intp",
    "uintp",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
    "object_",
)

#: numpy's array, dtype and scalar rebuilds (numpy 1 and numpy 2 module names) and the random
#: generators' pickle helpers (they look the bit generator up in a fixed table by name).
NUMPY_SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        f"{core}.{name}"
        for core in ("numpy.core", "numpy._core")
        for name in (
            "multiarray._reconstruct",
            "multiarray.scalar",
            "numeric._frombuffer",  # protocol 5 arrays
        )
    ]
    + [
        "numpy.dtype",
        "numpy.ndarray",
    ]
    # scalar types (estimators keep them as their dtype parameter); calling one converts a value
    + [f"numpy.{t}" for t in NUMPY_SCALAR_TYPES]
    + [
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.random.bit_generator.SeedSequence",
    ]
)

# --- torch ---------------------------------------------------------------------------------

_TORCH_STORAGES = [
    "Storage",
    "BoolStorage",
    "ByteStorage",
    "CharStorage",
    "ShortStorage",
    "IntStorage",
    "LongStorage",
    "HalfStorage",
    "FloatStorage",
    "DoubleStorage",
    "BFloat16Storage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QUInt8Storage",
    "QInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
    "TypedStorage",
]
_TORCH_DTYPES = [
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "short",
    "int",
    "long",
    "bool",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
]

#: torch's tensor and parameter rebuilds, storages, dtypes and memory formats (what a state_dict
#: pickle imports), plus every ``torch.nn`` module class (generated; a whole-module ``torch.save``).
TORCH_SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._tensor._rebuild_from_type_v2",  # calls its func argument: another checked global
        "torch.Size",
        "torch.device",
        "torch.strided",
        "torch.sparse_coo",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.channels_last_3d",
        "torch.preserve_format",
    ]
    + [f"torch.{s}" for s in _TORCH_STORAGES]
    + [f"torch.storage.{s}" for s in ("UntypedStorage", "TypedStorage")]
    + [f"torch.{d}" for d in _TORCH_DTYPES]
)
TORCH_SAFE_GLOBALS = TORCH_SAFE_GLOBALS | TORCH_NN_GLOBALS

#: The object joblib pickles in place of an array; the raw array bytes follow it in the stream.
JOBLIB_ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
JOBLIB_SAFE_GLOBALS: frozenset[str] = frozenset([JOBLIB_ARRAY_WRAPPER])

#: Every global the scanner accepts without being told: ordinary torch, numpy, scikit-learn,
#: XGBoost, LightGBM and joblib models, and pickles of standard-library values, pass by default.
BUILTIN_SAFE_GLOBALS: frozenset[str] = (
    STDLIB_SAFE_GLOBALS
    | NUMPY_SAFE_GLOBALS
    | TORCH_SAFE_GLOBALS
    | JOBLIB_SAFE_GLOBALS
    | SKLEARN_GLOBALS
    | XGBOOST_GLOBALS
    | LIGHTGBM_GLOBALS
)

#: Allowlisted classes whose constructor touches files: ``xgboost.core.Booster(params, cache,
#: model_file)`` and ``lightgbm.basic.Booster(params, train_set, model_file)`` load the model file
#: their arguments name. Pickle writes them as ``cls.__new__(cls)`` (``NEWOBJ``, or
#: ``copyreg._reconstructor(cls, object, None)`` below protocol 2) followed by ``BUILD``; any other
#: use (called with arguments, handed to another callable, stored as a value) is a finding.
NEW_ONLY_GLOBALS: frozenset[str] = frozenset(
    [
        "xgboost.core.Booster",
        "lightgbm.basic.Booster",
    ]
)

#: Allowlisted callables whose result may be an object that already exists in the loading process
#: (an enum member, numpy's ``True_``/``False_`` singletons ...). Setting state on what they
#: return (``BUILD``), or adding items to it, would change that shared object for the whole
#: process, so the scanner reports it like state set on an imported class. ``numpy.dtype`` is
#: handled by the walker itself (it returns numpy's cached dtype unless called with copy=True).
SHARED_RESULT_GLOBALS: frozenset[str] = frozenset(
    [
        "uuid.SafeUUID",  # an Enum: calling it looks a member up
        "numpy.bool_",  # returns the True_/False_ singletons
        "builtins.bool",
        "builtins.int",  # small ints, interned strings, the empty tuple/frozenset are cached
        "builtins.str",
        "builtins.bytes",
        "builtins.tuple",
        "builtins.frozenset",
        "builtins.float",
        "builtins.complex",
        "builtins.slice",
        "builtins.range",
        "datetime.timezone",  # timezone(timedelta(0)) is timezone.utc
        "builtins.NotImplemented",
        "builtins.Ellipsis",
    ]
)

# --- denylist ------------------------------------------------------------------------------

#: Modules whose every member is refused, even when allowlisted (checked by dotted prefix).
DANGEROUS_MODULES: frozenset[str] = frozenset(
    [
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "subprocess",
        "sys",
        "runpy",
        "importlib",
        "imp",
        "pkgutil",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "dill",
        "cloudpickle",
        "joblib",
        "shelve",
        "pty",
        "socket",
        "shutil",
        "ctypes",
        "_ctypes",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "webbrowser",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "threading",
        "_thread",
        "signal",
        "http",
        "urllib",
        "urllib2",
        "requests",
        "httplib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "xmlrpc",
        "tempfile",
        "types",
        "inspect",
        "__builtin__",
        "__builtins__",
        "_io",
        "io",
        "platform",
        "commands",
        "popen2",
        "timeit",
        "profile",
        "cProfile",
        "trace",
        "doctest",
        "idlelib",
        "lib2to3",
        "venv",
        "ensurepip",
        "pip",
        "setuptools",
        "distutils",
        "zipimport",
        "numpy.testing",
        "numpy.distutils",
        "numpy.f2py",
        "torch.hub",
        "torch.jit",
        "torch.package",
        "torch.serialization",
        "torch.ops",
        "torch._C",
        "torch.utils.cpp_extension",
        "torch.classes",
        "torch._inductor",  # compiles and loads code (picklescan GHSA)
        "torch._dynamo",
        "torch.utils.bottleneck",  # runs a script under the profilers
        "torch.utils.collect_env",  # runs commands
        "torch.distributed",  # rpc: remote calls
        "torch.testing",
        "numpy.ctypeslib",
        "pydoc",  # pydoc.locate imports any dotted name
        "_posixsubprocess",
        "_winapi",
        "_osx_support",
        "yaml",
        "gc",
        "sysconfig",
        "site",
    ]
)

#: Members of otherwise harmless modules that run code, read files, or re-enter a loader.
DANGEROUS_NAMES: frozenset[str] = frozenset(
    [
        "eval",
        "exec",
        "execfile",
        "compile",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "open",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "help",
        "exit",
        "quit",
        "apply",
        "reload",
        "system",
        "popen",
        "popen2",
        "popen3",
        "popen4",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "fork",
        "forkpty",
        "load",
        "loads",
        "load_module",
        "import_module",
        "run_path",
        "run_module",
        "check_output",
        "check_call",
        "Popen",
        "attrgetter",
        "methodcaller",
    ]
)

#: Exact globals that are refused although their module is otherwise harmless: they call, import
#: or look up whatever the pickle hands them.
DANGEROUS_GLOBALS: frozenset[str] = frozenset(
    [
        "functools.partial",
        "functools.partialmethod",
        "functools.reduce",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.call",
        "numpy.core._ufunc_reconstruct",
        "numpy._core._ufunc_reconstruct",
        "numpy.load",
        "numpy.fromfile",
        "numpy.memmap",
        "numpy.lib.npyio.load",
        "copyreg._reconstruct",
        "builtins.type",
        "builtins.map",
        "builtins.filter",
        "builtins.classmethod",
        "builtins.staticmethod",
        "builtins.property",
        "builtins.super",
        "builtins.memoryview",
        "collections.namedtuple",
        "zoneinfo.ZoneInfo",
    ]
)


def is_dangerous(module: str, name: str) -> bool:
    """True when ``module.name`` can run code, import or touch files whatever the caller allows."""
    dotted = f"{module}.{name}"
    if dotted in DANGEROUS_GLOBALS:
        return True
    for candidate in (module, dotted):
        parts = candidate.split(".")
        if any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1)):
            return True
    components = name.split(".")
    if any(c in DANGEROUS_NAMES for c in components):
        return True
    # attribute traversal such as "OrderedDict.__init__.__globals__"
    return any(c.startswith("__") and c.endswith("__") for c in components)


def is_allowed(dotted: str, module: str, allowed: frozenset[str]) -> bool:
    """True when ``dotted`` is on the built-in allowlist or the caller's (``module.*`` wildcards)."""
    if dotted in BUILTIN_SAFE_GLOBALS or dotted in allowed:
        return True
    parts = module.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts) + 1))
