"""The scanner must not disagree with the loaders: every file it passes is loaded for real, in a
sandboxed subprocess with an audit-hook tripwire, and nothing may run; every file it refuses
names a reason.

The subprocess installs ``sys.addaudithook`` before loading. Process creation, ``exec``,
compiling new code (other than ``ast.parse`` of numpy's ``.npy`` header), writing files,
sockets, ctypes, ``marshal``, new code/function objects and imports outside the model
libraries end it at once (exit 97). skops files are loaded as the model loader loads them:
``skops.io.load(path, trusted=trusted_skops_types(path))`` (the list is computed before the
tripwire is armed). After each load it compares the ``__dict__`` of every
allowlisted class it can reach, the enum members and numpy's cached dtypes with a snapshot
taken before (class poisoning, exit 98). A crash by a signal is a failure too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

scan_bypass_corpus = pytest.importorskip("scan_bypass_corpus")

from airflow_mlops.security.scanning import FindingKind, ScanReport, scan_model_dir  # noqa: E402

_RUNNER = textwrap.dedent(
    r"""
    import sys, os, json, pickle, importlib, enum, zipfile, uuid, decimal, fractions, datetime
    import numpy as np
    import joblib, sklearn, sklearn.ensemble, sklearn.tree, scipy  # the libraries a load may use
    want_torch = sys.argv[2] == "1"
    if want_torch:
        import torch
    from airflow_mlops.security.scanning import policy, trusted_skops_types

    jobs = json.loads(open(sys.argv[1]).read())
    trusted = {}
    if any(loader == "skops" for _, loader in jobs):
        import skops.io, scipy.sparse
        for path, loader in jobs:
            if loader == "skops":
                trusted[path] = trusted_skops_types(path)
    ALLOWED_IMPORT_ROOTS = {"numpy", "scipy", "sklearn", "joblib", "torch", "threadpoolctl", "skops",
                            "encodings", "uuid", "decimal", "fractions", "datetime", "_strptime",
                            "copyreg", "collections", "pathlib", "zipfile", "_compression"}

    def targets():
        out = {}
        for dotted in sorted(policy.BUILTIN_SAFE_GLOBALS):
            module, _, name = dotted.rpartition(".")
            mod = sys.modules.get(module)
            obj = getattr(mod, name, None) if mod is not None else None
            if isinstance(obj, type):
                out[dotted] = obj
        return out

    def snapshot(objs):
        snap = {}
        for dotted, cls in objs.items():
            snap[dotted] = {k: id(v) for k, v in vars(cls).items()}
            if issubclass(cls, enum.Enum):
                for member in cls:
                    snap[f"{dotted}.{member.name}"] = {k: id(v) for k, v in vars(member).items()}
        for code in ("f8", "f4", "i8", "i4", "u1", "b1", "O", "c16"):
            d = np.dtype(code)
            snap[f"dtype {code}"] = (d.flags, d.byteorder, d.itemsize, d.hasobject)
        snap["np.True_"] = (bool(np.True_), np.True_.dtype.flags)
        return snap

    objs = targets()
    before = snapshot(objs)
    current = {"file": None}

    def trip(event, why):
        os.write(2, f"TRIPWIRE {current['file']}: {event} {why}\n".encode())
        os._exit(97)

    SYSTEM_PREFIXES = tuple({sys.prefix, sys.base_prefix, os.path.dirname(np.__file__)})
    BLOCKED_PREFIXES = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                        "subprocess.", "socket.", "ctypes.", "os.remove", "os.rename",
                        "os.rmdir", "os.mkdir", "os.chmod", "os.kill", "os.putenv", "os.unsetenv",
                        "shutil.", "webbrowser.", "pty.", "function.__new__",
                        "os.symlink", "os.link", "os.truncate", "sys.settrace", "sys.setprofile")

    def hook(event, args):
        if current["file"] is None:
            return
        if event.startswith(BLOCKED_PREFIXES):
            trip(event, repr(args)[:200])
        if event == "exec":
            # importing an allowed library module runs its code from a file on disk; exec() of
            # a payload string runs code compiled from '<string>'
            filename = getattr(args[0], "co_filename", "")
            if not (filename.startswith(SYSTEM_PREFIXES) and os.path.isfile(filename)):
                trip(event, filename)
        if event == "compile" and not (len(args) >= 2 and args[1] == "<unknown>"):
            # numpy parses .npy headers with ast.parse ('<unknown>'); typing resolves a forward
            # reference by evaluating a bare name; anything else compiled at load is a payload
            source = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            if not source.replace(".", "").replace("_", "a").isalnum():
                trip(event, repr(args)[:200])
        if event == "open":
            mode = args[1] if len(args) > 1 else "r"
            flags = args[2] if len(args) > 2 else 0
            writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & writes):
                trip(event, repr(args)[:200])
        if event == "import":
            root = str(args[0]).split(".")[0]
            if root not in ALLOWED_IMPORT_ROOTS:
                trip(event, repr(args[0]))

    sys.addaudithook(hook)
    results = {}
    for path, loader in jobs:
        current["file"] = path
        try:
            if loader == "joblib":
                joblib.load(path)
            elif loader == "pickle":
                with open(path, "rb") as fh:
                    pickle.load(fh)
            elif loader == "npy":
                loaded = np.load(path, allow_pickle=True)
                if hasattr(loaded, "files"):
                    for key in loaded.files:
                        loaded[key]
            elif loader == "torch":
                torch.load(path, weights_only=False)
            elif loader == "skops":
                skops.io.load(path, trusted=trusted[path])
            results[f"{loader}:{path}"] = "loaded"
        except Exception as exc:  # a refusal by the loader itself is fine: nothing ran
            results[f"{loader}:{path}"] = f"error {type(exc).__name__}"
        current["file"] = None
        after = snapshot(objs)
        if after != before:
            changed = sorted(k for k in before if before[k] != after.get(k))
            os.write(2, f"POISONED by {path}: {changed[:10]}\n".encode())
            os._exit(98)
    print(json.dumps(results))
    """
)


def _load_in_sandbox(tmp_path: Path, jobs: list[tuple[str, str]]) -> dict[str, str]:
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    want_torch = "1" if any(loader == "torch" for _, loader in jobs) else "0"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(job_file), want_torch],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode >= 0, f"the loader crashed with signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"loading a scanned-safe file ran something: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[scan_bypass_corpus.Fixture]]:
    pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    root = tmp_path_factory.mktemp("bypass")
    fixtures = []
    for fx in scan_bypass_corpus.all_fixtures():
        try:
            fx.write(root / fx.name)
        except ImportError:
            continue  # an optional library (xgboost, lightgbm, torch) is missing
        fixtures.append(fx)
    return root, fixtures


@pytest.fixture(scope="module")
def reports(corpus: tuple[Path, list[scan_bypass_corpus.Fixture]]) -> dict[str, ScanReport]:
    """Each fixture's scan report, by name (scanned once for all the tests below)."""
    root, fixtures = corpus
    return {fx.name: scan_model_dir(root / fx.name) for fx in fixtures}


def test_every_fixture_gets_its_expected_verdict(
    corpus: tuple[Path, list[scan_bypass_corpus.Fixture]], reports: dict[str, ScanReport]
) -> None:
    _, fixtures = corpus
    wrong = []
    for fx in fixtures:
        report = reports[fx.name]
        kinds = {str(f.kind) for f in report.findings}
        if fx.verdict == "pass" and not report.ok:
            wrong.append(f"{fx.name} ({fx.note}) refused: {[f.format() for f in report.findings]}")
        elif fx.verdict == "refuse" and report.ok:
            wrong.append(f"{fx.name} ({fx.note}) passed")
        elif fx.verdict == "refuse" and fx.kinds and not kinds & fx.kinds:
            wrong.append(
                f"{fx.name} ({fx.note}) refused as {sorted(kinds)}, expected one of {sorted(fx.kinds)}"
            )
    assert not wrong, "\n".join(wrong)


def test_refusals_name_a_reason(reports: dict[str, ScanReport]) -> None:
    for report in reports.values():
        for finding in report.findings:
            assert finding.kind in set(FindingKind)
            assert len(finding.detail) > 20, finding.format()
            assert finding.fix


def test_files_the_scanner_passes_run_nothing_when_loaded(
    corpus: tuple[Path, list[scan_bypass_corpus.Fixture]], reports: dict[str, ScanReport], tmp_path: Path
) -> None:
    root, fixtures = corpus
    jobs = []
    for fx in fixtures:
        if fx.loader == "none" or not reports[fx.name].ok:
            continue
        path = str(root / fx.name)
        jobs.append((path, fx.loader))
        if fx.loader == "joblib":
            jobs.append((path, "pickle"))  # the same file handed to a plain pickle.load
        if fx.loader == "pickle":
            jobs.append((path, "joblib"))
    assert len(jobs) >= 10

    results = _load_in_sandbox(tmp_path, jobs)

    # the benign files really load with their own loader (the corpus is not vacuous)
    own = [f"{fx.loader}:{root / fx.name}" for fx in fixtures if fx.verdict == "pass" and fx.loader != "none"]
    assert {key: results[key] for key in own} == dict.fromkeys(own, "loaded")


def test_tripwire_catches_what_the_old_scanner_missed(
    corpus: tuple[Path, list[scan_bypass_corpus.Fixture]], tmp_path: Path
) -> None:
    # the harness itself: loading a known bypass must trip it (so a pass above means something)
    root, _ = corpus
    with pytest.raises(AssertionError, match="TRIPWIRE"):
        _load_in_sandbox(tmp_path, [(str(root / "unicode_without_state.joblib"), "joblib")])
    with pytest.raises(AssertionError, match="POISONED"):
        _load_in_sandbox(tmp_path, [(str(root / "poison_memo.pkl"), "pickle")])
