"""Load every spec in a folder into DAGs; a broken spec never hides the others.

Each broken spec is reported as an import error *of that spec file* (see
:mod:`airflow_mlops.factory.importer`), so the Airflow UI and ``airflow dags list-import-errors``
name the spec, line and key, while every valid spec in the folder still yields its DAGs.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.cache import SpecCache, default_cache_dir

if TYPE_CHECKING:
    from airflow_mlops.spec.models import PipelineSpec

log = logging.getLogger(__name__)


def find_spec_files(folder: str | os.PathLike[str]) -> list[Path]:
    """``*.yaml``/``*.yml`` files below ``folder`` that declare ``apiVersion: mlops/...``, sorted.

    Files and folders matched by an ``.airflowignore`` are skipped, with the same rules (and
    ``[core] dag_ignore_file_syntax``) as Airflow's own DAG discovery.
    """
    from airflow_mlops.spec.models import DEFAULTS_FILE_NAME

    out = []
    for path in sorted(_files_below(Path(folder))):
        if path.suffix not in (".yaml", ".yml") or path.name == DEFAULTS_FILE_NAME or not path.is_file():
            continue
        try:
            if declares_spec(path):
                out.append(path)
        except OSError:
            continue
    return out


def find_dags_folder(spec_path: str | os.PathLike[str]) -> Path | None:
    """The dags folder a spec is loaded from: the nearest folder at or above it holding a loader
    file (a ``.py`` file that calls :func:`load_dags_folder`, like ``dags/mlops_specs.py``).

    The loader's default allowed root is that folder, so the command line finds the same one to
    check a spec as Airflow will. The search stops at a repository root (a folder with ``.git``).
    """
    folder = Path(spec_path).resolve().parent
    for candidate in (folder, *folder.parents):
        try:
            for file in sorted(candidate.glob("*.py")):
                try:
                    if "load_dags_folder(" in file.read_text(encoding="utf-8", errors="replace"):
                        return candidate
                except OSError:
                    continue
        except OSError:
            pass
        if (candidate / ".git").exists():
            return None
    return None


def declares_spec(path: Path) -> bool:
    """Whether the file has an ``apiVersion: mlops/...`` line; raises ``OSError`` if unreadable.

    The text is decoded as the loader decodes it (UTF-8, or UTF-16/32 by byte-order mark or
    NUL pattern), leniently: a spec that is not valid text is still found, and its error reported.
    """
    from airflow_mlops.spec.loader import is_spec_document, read_spec_head

    return is_spec_document(read_spec_head(path))


def _files_below(root: Path) -> list[Path]:
    from airflow_mlops.compat import walk_dag_folder

    find_path_from_directory = walk_dag_folder()
    if find_path_from_directory is None:  # another Airflow layout: no .airflowignore support
        return [p for p in root.rglob("*") if p.is_file()]
    from airflow.configuration import conf

    syntax = conf.get("core", "dag_ignore_file_syntax", fallback="glob")
    try:
        return [Path(p) for p in find_path_from_directory(root, ".airflowignore", syntax)]
    except RuntimeError as exc:  # a symbolic link back up the tree: Airflow's walk gives up
        log.error("%s; reading the specs below %s without following that link again", exc, root)
        return _files_below_once(root, syntax)


def _files_below_once(root: Path, syntax: str) -> list[Path]:
    """Airflow's walk (``.airflowignore`` rules included) that enters each real folder once, so
    a symbolic link that loops costs one spec folder's files, not every spec's DAGs."""
    from airflow_mlops.compat import airflowignore_rule

    rule = airflowignore_rule(syntax)
    patterns_by_dir: dict[Path, list[Any]] = {root.resolve(): []}
    out = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        patterns = list(patterns_by_dir.get(Path(folder).resolve(), []))
        ignore_file = Path(folder) / ".airflowignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(errors="replace").split("\n")
            except OSError:
                lines = []
            for line in lines:
                line = re.sub(r"\s*#.*", "", line)
                compiled = rule.compile(line, root, ignore_file) if line else None
                if compiled is not None:
                    patterns.append(compiled)
        kept = []
        for sub in dirs:
            real = (Path(folder) / sub).resolve()
            if real in patterns_by_dir or rule.match(Path(folder) / sub, patterns):
                continue
            patterns_by_dir[real] = patterns.copy()
            kept.append(sub)
        dirs[:] = kept
        out += [
            Path(folder) / f
            for f in files
            if f != ".airflowignore" and not rule.match(Path(folder) / f, patterns)
        ]
    return out


def folder_allowed_roots(folder_defaults: Any, default: list[str] | None = None) -> list[str]:
    """The roots a folder's specs are checked against, at parse time and when their tasks run: the
    defaults file's ``allowed_roots``, else ``AIRFLOW_MLOPS_ALLOWED_ROOTS``, else ``default``.

    The defaults file may narrow the variable, never widen it: when the variable is set, each of
    the file's roots (resolved, symbolic links followed) must lie inside one of the variable's.

    :raises SpecError: a root of the defaults file lies outside every root of the variable; the
        issue names the defaults file, the line and the root (every spec of the folder fails).
    """
    from airflow_mlops.allowed_roots import ensure_narrowing, roots_from_env
    from airflow_mlops.spec.loader import effective_allowed_roots

    roots = effective_allowed_roots(folder_defaults, None, default)
    env = roots_from_env()
    if folder_defaults is None or not folder_defaults.model.allowed_roots or not env:
        return roots
    resolved = folder_defaults.allowed_roots  # same order as the file's list
    wider = set(ensure_narrowing(resolved, env))
    if not wider:
        return roots
    from airflow_mlops.spec.loader import parse_yaml

    try:
        _, located = parse_yaml(folder_defaults.text, str(folder_defaults.path))
    except SpecError:
        located = None
    issues = []
    for index, (raw, root) in enumerate(zip(folder_defaults.model.allowed_roots, resolved, strict=True)):
        if root not in wider:
            continue
        mark = located.position(("allowed_roots", index)) if located is not None else None
        issues.append(
            SpecIssue(
                str(folder_defaults.path),
                mark[0] if mark else None,
                mark[1] if mark else None,
                f"allowed_roots[{index}]",
                f"allowed root {raw!r} ({root}) widens AIRFLOW_MLOPS_ALLOWED_ROOTS: a defaults file "
                "may only narrow the roots the Airflow deployment allows",
                None,
                "use a folder inside one of " + ", ".join(env) + ", or ask the Airflow operator to "
                "widen AIRFLOW_MLOPS_ALLOWED_ROOTS",
            )
        )
    raise SpecError(issues)


class SpecFolderLoader:
    """Builds DAGs from spec files, sharing the folder-defaults lookups and the parse cache."""

    def __init__(
        self, *, default_allowed_roots: list[str] | None = None, cache: SpecCache | None = None
    ) -> None:
        self._defaults_cache: dict[Path, Any] = {}
        self._defaults_by_dir: dict[Path, Any] = {}
        self._default_roots = [
            str(Path(r).resolve()) if "://" not in r else r for r in default_allowed_roots or []
        ]
        self.cache = cache

    def load(self, path: Path) -> PipelineSpec:
        """The validated spec of one file, from the parse cache when nothing it depends on changed."""
        from airflow_mlops.spec.loader import load_spec_text, read_spec_text

        text = read_spec_text(path)
        resolved = path.resolve()
        folder_defaults = self._folder_defaults(path)
        # The defaults file's roots (inside AIRFLOW_MLOPS_ALLOWED_ROOTS when set), else the
        # variable's, else this loader's default.
        roots = self.roots(path)
        base = resolved.parent
        key = None
        if self.cache is not None and self.cache.enabled:
            key = self.cache.key(resolved, text, folder_defaults, roots)
            cached = self.cache.get(key, base=base, allowed_roots=roots)
            if cached is not None:
                return cached
        spec = load_spec_text(
            text, str(path), base=base, folder_defaults=folder_defaults, allowed_roots=roots
        )
        if key is not None and self.cache is not None:
            self.cache.put(key, spec)
        return spec

    def _folder_defaults(self, path: Path) -> Any:
        from airflow_mlops.spec.loader import find_folder_defaults

        if path.parent not in self._defaults_by_dir:  # one lookup per folder, not per spec
            self._defaults_by_dir[path.parent] = find_folder_defaults(path.resolve(), self._defaults_cache)
        return self._defaults_by_dir[path.parent]

    def roots(self, path: Path) -> list[str]:
        """The allowed roots of the spec at ``path`` (see :func:`folder_allowed_roots`)."""
        return folder_allowed_roots(self._folder_defaults(path), self._default_roots)

    def build(self, path: Path) -> dict[str, Any]:
        """The DAGs of one spec file, all of them or none; raises :class:`SpecError`.

        A DAG that fails to build (an operator or notifier rejects its arguments) takes the
        spec's other DAGs with it: a broken spec never yields a partial set of DAGs.
        """
        return build_spec_dags(self.load(path), path, self.roots(path) or None)


def build_spec_dags(spec: PipelineSpec, path: Path, allowed_roots: list[str] | None = None) -> dict[str, Any]:
    """The DAGs of a validated spec, all or none; raises a located :class:`SpecError`.

    The last step of loading a spec, shared by the loader, the importer and ``spec validate``:
    a spec that validates builds its DAGs, and one that fails to build fails validation with
    the same message.
    """
    from airflow_mlops.factory.builder import build_dags

    try:
        return build_dags(spec, spec_path=path, allowed_roots=allowed_roots)
    except Exception as exc:  # an operator or notifier rejected its arguments
        raise build_error(exc, path) from exc


def build_error(exc: Exception, path: Path) -> SpecError:
    """The located :class:`SpecError` for an exception raised while building a spec's DAGs."""
    if not isinstance(exc, SpecError):
        issue = SpecIssue(
            str(path),
            None,
            None,
            "",
            f"cannot build the DAG: {type(exc).__name__}: {exc}",
            hint="check the arguments of your steps, notifiers and callbacks",
        )
        exc = SpecError([issue])
    return locate_issues(exc, path)


def locate_issues(exc: SpecError, path: Path) -> SpecError:
    """``exc`` with a line for each issue that has none: its key's, else the ``pipeline:`` key's.

    Build-time errors come from a validated model (perhaps from the parse cache), which has no
    positions; the file is parsed again for them, which only a broken spec pays for.
    """
    if all(issue.line is not None for issue in exc.issues):
        return exc
    import dataclasses
    import re

    from airflow_mlops.spec.loader import parse_yaml, read_spec_text

    try:
        _, located = parse_yaml(read_spec_text(path), str(path))
    except SpecError:
        return exc
    issues = []
    for issue in exc.issues:
        if issue.line is None:
            keys = tuple(int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", issue.path))
            mark = located.position(keys) if keys else None
            mark = mark if mark and keys and mark != located.position(()) else located.position(("pipeline",))
            if mark:
                issue = dataclasses.replace(issue, line=mark[0], column=mark[1])
        issues.append(issue)
    return SpecError(issues)


def dag_id_clash(built: dict[str, Any], owners: dict[str, Path], path: Path) -> SpecError | None:
    """The error of a spec whose DAG id an earlier spec already defines (specs are read in path
    order: the first keeps its DAGs), located at its ``pipeline:``; None when there is no clash."""
    clash = next((d for d in built if d in owners), None)
    if clash is None:
        return None
    issue = SpecIssue(
        str(path),
        None,
        None,
        "pipeline",
        f"DAG id {clash!r} is already defined by {owners[clash]}",
        hint="give each spec its own `pipeline` name (specs load in path order: the first keeps the id)",
    )
    return locate_issues(SpecError([issue]), path)


class EarlierSpecs:
    """The specs of the dags folder ``folder`` that ``spec validate`` checks a spec's DAG ids
    against, as the loader will (it reads them in path order), leaving out the files in ``skip``
    (resolved): those are checked themselves. Each is read once and built at most once, however
    many specs are checked against it.
    """

    def __init__(self, folder: Path, skip: set[Path]) -> None:
        self.folder = folder
        self._specs = [p for p in find_spec_files(folder) if p.resolve() not in skip]
        self._loader = SpecFolderLoader(default_allowed_roots=[str(folder)])
        self._texts: dict[Path, str | None] = {}
        self._built: dict[Path, dict[str, Any] | None] = {}

    def owners(self, path: Path, pipeline: str) -> dict[str, Path]:
        """The DAG ids that the specs read before ``path`` build, with the spec that builds each.

        Only the specs that could name the same ``pipeline`` are built (the name is in their
        text, or a backslash escape could spell it), so a big folder costs little more than
        reading it. A broken spec defines no DAG id: the loader skips it too.
        """
        here = Path(os.path.abspath(path))
        if not here.is_relative_to(self.folder):
            here = here.resolve()
        owners: dict[str, Path] = {}
        for other in self._specs:
            if other >= here:
                break
            text = self._text(other)
            if text is None or (pipeline not in text and "\\" not in text):
                continue
            for dag_id in self._build(other) or ():
                owners.setdefault(dag_id, other)
        return owners

    def _text(self, path: Path) -> str | None:
        from airflow_mlops.spec.loader import read_spec_text

        if path not in self._texts:
            try:
                self._texts[path] = read_spec_text(path)
            except Exception:
                self._texts[path] = None
        return self._texts[path]

    def _build(self, path: Path) -> dict[str, Any] | None:
        if path not in self._built:
            try:
                self._built[path] = self._loader.build(path)
            except Exception:
                self._built[path] = None
        return self._built[path]


class SpecErrors(dict[str, SpecError]):
    """Errors of the broken specs by path; ``parsed_files`` lists every spec file read."""

    parsed_files: list[str]


_DEFAULT: Any = object()


def load_dags_folder(
    folder: str | os.PathLike[str],
    *,
    default_allowed_roots: list[str | os.PathLike[str]] | None = None,
    cache_dir: Path | None = _DEFAULT,
) -> tuple[dict[str, Any], SpecErrors]:
    """Build the DAGs of every valid spec; return them with the errors of the broken ones.

    ``default_allowed_roots`` apply when neither a folder defaults file nor the
    ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` environment variable names any. ``cache_dir``: where the
    parse cache lives (see :mod:`airflow_mlops.spec.cache`); default from the environment,
    ``None`` turns it off.
    """
    cache = SpecCache(folder, default_cache_dir() if cache_dir is _DEFAULT else cache_dir)
    loader = SpecFolderLoader(
        default_allowed_roots=[str(r) for r in default_allowed_roots or []], cache=cache
    )
    dags: dict[str, Any] = {}
    errors = SpecErrors()
    errors.parsed_files = []
    owners: dict[str, Path] = {}
    for path in find_spec_files(folder):
        errors.parsed_files.append(str(path))
        try:
            built = loader.build(path)
        except SpecError as exc:
            errors[str(path)] = exc
            log.error("%s", exc)
            continue
        except Exception as exc:  # a bug of ours must not make every other spec's DAGs vanish
            log.exception("unexpected error while loading the spec %s", path)
            issue = SpecIssue(
                str(path),
                None,
                None,
                "",
                f"unexpected error while loading this spec: {type(exc).__name__}: {exc}",
                hint="this is a bug in airflow-mlops, not in your spec: please report it with the spec",
            )
            errors[str(path)] = SpecError([issue])
            continue
        clash = dag_id_clash(built, owners, path)
        if clash is not None:
            errors[str(path)] = clash
            continue
        for dag_id, dag in built.items():
            dags[dag_id] = dag
            owners[dag_id] = path
    cache.save()
    return dags, errors
