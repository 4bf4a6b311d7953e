"""A parse cache for validated specs: the YAML counterpart of Python's ``.pyc`` files.

Airflow's DAG processor parses the loader file again every ``min_file_process_interval``
(30 s by default), in a fresh process, although the specs rarely change. Reading YAML with line
numbers and validating it is most of what the factory adds over hand-written DAGs, so the loader
keeps each valid spec's validated model, as JSON, keyed by a sha256 over everything the result
depends on: the spec's path and text, its folder defaults' path and text, the allowed roots in
force (from the defaults file, ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` or the loader) and the spec
modules and pydantic version. Any change
to any of them is a miss, and a miss is a full parse.

Only specs that passed every check are stored; a broken spec is parsed (and its located error
reported) every time. An entry that no longer validates, or whose steps, operators, notifiers
or callbacks no longer check out (an uninstalled package), is treated as a miss. The cache holds
JSON, never pickles: a damaged or edited cache file can at worst cost a re-parse. It is one file
per dags folder, under ``$AIRFLOW_HOME/cache/airflow-mlops/`` unless
``AIRFLOW_MLOPS_SPEC_CACHE`` names another directory; ``AIRFLOW_MLOPS_SPEC_CACHE=off`` turns it
off. Writes are atomic (temp file + rename), and a cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.spec.loader import LoadedDefaults
    from airflow_mlops.spec.models import PipelineSpec

log = logging.getLogger(__name__)

CACHE_ENV = "AIRFLOW_MLOPS_SPEC_CACHE"
FORMAT = 1


def default_cache_dir() -> Path | None:
    """The cache directory from ``AIRFLOW_MLOPS_SPEC_CACHE``, else under ``$AIRFLOW_HOME``; None: off."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured.lower() in ("off", "false", "0", "no", "none"):
        return None
    if configured:
        return Path(configured).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or os.path.join("~", "airflow")
    return Path(home).expanduser() / "cache" / "airflow-mlops"


def _code_fingerprint() -> list[Any]:
    """What the validated result depends on besides the inputs: the spec code and pydantic."""
    import pydantic

    from airflow_mlops import __version__

    files = []
    # Every module of the package and its data: the spec package, and what it reads from the
    # others (the metric vocabulary, the tasks, the expectation names, the estimator table...),
    # some imported only by a full parse. Stat them without importing (a few hundred stats).
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        paths += [os.path.join(parent, n) for n in sorted(names) if n.endswith((".py", ".json"))]
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:  # removed while listing
            continue
        files.append([os.path.relpath(path, folder).replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns])
    return [FORMAT, __version__, pydantic.VERSION, files]


class SpecCache:
    """Validated specs of one dags folder, loaded once and saved once per folder load."""

    def __init__(self, folder: str | os.PathLike[str], directory: Path | None) -> None:
        self.path = None
        if directory is not None:
            folder_key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
            self.path = directory / f"specs-{folder_key}.json"
        self._entries: dict[str, Any] = {}
        self._used: set[str] = set()
        self._dirty = False
        self._code = _code_fingerprint() if self.path is not None else None
        self.hits = self.misses = 0
        if self.path is not None:
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(stored, dict) and isinstance(stored.get("entries"), dict):
                    self._entries = stored["entries"]
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                log.warning("ignoring the spec cache %s: %s", self.path, exc)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def key(
        self,
        spec_path: Path,
        text: str,
        folder_defaults: LoadedDefaults | None,
        allowed_roots: list[str],
    ) -> str:
        """The entry's key: ``spec_path`` resolved, ``allowed_roots`` the ones the checks apply."""
        defaults = None
        if folder_defaults is not None:
            defaults = [str(folder_defaults.path), folder_defaults.text]
        material = [self._code, str(spec_path), text, defaults, allowed_roots]
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def get(self, key: str, *, base: Path, allowed_roots: list[str]) -> PipelineSpec | None:
        """The cached spec, re-validated and re-checked; None on a miss.

        The checks that depend on the environment rather than on the spec's text run again:
        operators, notifiers and callbacks must still import, and locations must still lie
        under an allowed root once symlinks are resolved.
        """
        from pydantic import ValidationError

        from airflow_mlops.spec.checks import check_entrypoints, check_paths, check_steps
        from airflow_mlops.spec.models import PipelineSpec

        data = self._entries.get(key) if self.enabled else None
        if data is None:
            self.misses += 1
            return None
        try:
            spec = PipelineSpec.model_validate(data)
        except ValidationError:
            spec = None
        if spec is not None:

            def nowhere(_path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
                return None, None

            if (
                check_steps(spec, "", nowhere)
                or check_entrypoints(spec, "", nowhere)
                or check_paths(spec, "", nowhere, base=base, allowed_roots=allowed_roots)
            ):
                spec = None  # re-parse, to report the problem with its line and column
        if spec is None:
            self._entries.pop(key, None)
            self._dirty = True
            self.misses += 1
            return None
        self._used.add(key)
        self.hits += 1
        return spec

    def put(self, key: str, spec: PipelineSpec) -> None:
        if not self.enabled:
            return
        from pydantic_core import to_jsonable_python

        # Only the keys that were set: precedence rules look at what a spec set. Durations as
        # seconds, which the duration fields accept back.
        self._entries[key] = to_jsonable_python(
            spec.model_dump(mode="python", exclude_unset=True), timedelta_mode="float"
        )
        self._used.add(key)
        self._dirty = True

    def save(self) -> None:
        """Write the entries used by this load (others are dropped), atomically; never raises."""
        if self.path is None:
            return
        stale = set(self._entries) - self._used
        if not self._dirty and not stale:
            return
        entries = {k: v for k, v in self._entries.items() if k in self._used}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".specs-", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"format": FORMAT, "entries": entries}, out, separators=(",", ":"))
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not write the spec cache %s: %s", self.path, exc)
