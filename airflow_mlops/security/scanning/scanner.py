"""The scanner: walks a model directory, dispatches every file to its format's check and collects
the findings (:func:`scan_model_dir`, re-exported by the package).

A file is classified by content first (magic bytes, :mod:`.formats` and :mod:`.compression`),
then by extension. Archive members are checked one by one; a skops file (a zip with
``schema.json``) is read as skops reads it: the schema is walked as skops builds its tree
(:mod:`.skops_schema`), every name it makes skops import is judged (:mod:`.skops_allowlist`), and
every member must be one the schema references, in the form it references it. Code files pass
only with their sha256 in ``trusted_code``. Any error while checking a file is a finding (fail
closed).
"""

from __future__ import annotations

import json
import logging
import lzma
import mmap
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, cast

from airflow_mlops.digests import sha256_file
from airflow_mlops.progress import Progress
from airflow_mlops.security.scanning import policy, skops_schema
from airflow_mlops.security.scanning.compression import (
    LZ4_PREFIX,
    Decompressed,
    Replay,
    compression_of,
    decompresses,
    is_joblib_zfile,
    is_tar,
    zip_directory_problem,
)
from airflow_mlops.security.scanning.formats import (
    CODE_EXTENSIONS,
    EXECUTABLE_MAGICS,
    HEAD_SIZE,
    JOBLIB_EXTENSIONS,
    JSON_EXTENSIONS,
    NPY_MAGIC,
    PICKLE_EXTENSIONS,
    TEXT_EXTENSIONS,
    UBJSON_EXTENSIONS,
    YAML_EXTENSIONS,
    YAML_NAMES,
    ZIP_MAGICS,
    Hit,
    check_safetensors,
    has_pickle_magic,
    is_utf8_bytes,
    is_utf8_text,
    looks_like_safetensors,
    npy_dtype,
    scan_pickle_stream,
    starts_like_pickle,
    ubjson_problem,
)
from airflow_mlops.security.scanning.report import Finding, FindingKind, ScanReport
from airflow_mlops.security.scanning.skops_allowlist import skops_name_problem

__all__ = ["Scanner", "scan_model_dir"]

log = logging.getLogger(__name__)

K = FindingKind

_SKOPS_SUFFIX = ".skops"
#: scipy.sparse.save_npz's members (a SparseMatrixNode's .npz inside a skops file)
_SPARSE_NPZ_MEMBERS = frozenset(
    f"{n}.npy"
    for n in ("data", "indices", "indptr", "format", "shape", "offsets", "row", "col", "coords", "_is_array")
)
#: a compressed skops member may inflate at most this much (when it inflates past _BOMB_FLOOR):
#: skops reads every member it references into memory
_BOMB_RATIO = 1000
_BOMB_FLOOR = 64 << 20


class Scanner:
    """Holds the scan options and collects findings."""

    def __init__(self, allowed: frozenset[str], trusted_code: Mapping[str, str]) -> None:
        self.allowed = allowed
        self.trusted_code = {str(PurePosixPath(k)): v.lower() for k, v in trusted_code.items()}
        self.findings: list[Finding] = []
        self.files = 0

    def add(
        self,
        rel: str,
        kind: FindingKind,
        detail: str,
        *,
        symbol: str | None = None,
        offset: int | None = None,
        stream: str | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                path=rel,
                kind=kind,
                detail=detail,
                symbol=symbol,
                offset=offset,
                stream=stream if offset is not None else None,
            )
        )

    def add_hits(self, rel: str, hits: list[Hit], stream: str, *, polyglot: bool = False) -> None:
        for hit in hits:
            if polyglot and hit.kind == K.INVALID_PICKLE:
                continue
            self.add(rel, hit.kind, hit.detail, symbol=hit.symbol, offset=hit.offset, stream=stream)

    def walk(self, root: Path, top: Path) -> Iterator[tuple[Path, str]]:
        """Yield (path, relative posix path) of regular files; report links and special files."""
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as exc:
            self.add(_rel(top, root), K.UNREADABLE, f"cannot list directory: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(path, root)
            if entry.is_symlink():
                target = os.readlink(entry.path)
                self.add(rel, K.SYMLINK, f"symbolic link to {target!r}; a link can point outside the model")
            elif entry.is_dir(follow_symlinks=False):
                yield from self.walk(root, path)
            elif entry.is_file(follow_symlinks=False):
                yield path, rel
            else:
                self.add(rel, K.SPECIAL_FILE, "not a regular file (device, socket or FIFO)")

    def scan_file(self, path: Path, rel: str) -> None:
        """Classify one regular file by content, then by extension, and check it."""
        self.files += 1
        suffix = path.suffix.lower()
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(HEAD_SIZE)
        except OSError as exc:
            self.add(rel, K.UNREADABLE, f"cannot read file: {exc.strerror or exc}")
            return
        try:
            self._dispatch(path, rel, suffix, head, size)
        except OSError as exc:
            self.add(rel, K.UNREADABLE, f"cannot read file: {exc.strerror or exc}")
        except Exception as exc:  # fail closed: a file the scanner cannot check is not safe
            log.exception("Model scan could not check %s", path)
            self.add(rel, K.SCAN_ERROR, f"the scanner could not check this file: {type(exc).__name__}: {exc}")

    def _dispatch(self, path: Path, rel: str, suffix: str, head: bytes, size: int) -> None:
        code_reason = self._code_reason(path, suffix, head)
        if code_reason:
            self._check_code(path, rel, code_reason)
            return
        pickle_magic = has_pickle_magic(head)
        compression = compression_of(head)
        if suffix == _SKOPS_SUFFIX and not head.startswith(ZIP_MAGICS):
            self.add(rel, K.INVALID_SKOPS, "a .skops file must be a zip archive, which skops.io.dump writes")
        if not head.startswith(ZIP_MAGICS) and is_tar(path):
            # torch.load tries tarfile before pickle on every non-zip file and unpickles members
            self.add(
                rel,
                K.INVALID_ARCHIVE,
                "tar archive: torch.load reads it as its legacy tar format and unpickles its "
                "'storages', 'tensors' and 'pickle' members; tar archives are not scanned",
            )
        elif is_joblib_zfile(head):
            self.add(
                rel,
                K.INVALID_COMPRESSED,
                "starts with joblib's pre-0.10 'ZF' prefix: joblib.load would decompress and unpickle "
                "it in its legacy format (which also reads sibling .npy files); re-save the model",
            )
        elif head.startswith(LZ4_PREFIX):
            self.add(
                rel,
                K.INVALID_COMPRESSED,
                "starts with the LZ4 frame magic: joblib.load decompresses and unpickles it when the "
                "lz4 package is installed, and the scanner cannot decompress LZ4; re-save the model "
                "uncompressed or with zlib/gzip/bz2/lzma/xz",
            )
        elif head.startswith(ZIP_MAGICS):
            self._scan_zip(path, rel)
        elif suffix == ".safetensors" or looks_like_safetensors(head, size):
            self._check_safetensors_file(path, rel, suffix, size, pickle_magic=pickle_magic)
        elif pickle_magic:
            self._scan_pickle_file(path, rel, size)
        elif head.startswith(NPY_MAGIC):
            with path.open("rb") as fh:
                self._check_npy(fh, rel, "file", size)
        elif compression and (
            suffix in PICKLE_EXTENSIONS | JOBLIB_EXTENSIONS
            or not is_utf8_text(path)
            or decompresses(path, compression)
        ):
            self._scan_compressed(path, rel, compression)
        elif suffix in UBJSON_EXTENSIONS:
            self._check_ubjson(path, rel, size)
        elif suffix in PICKLE_EXTENSIONS:
            # protocol 0/1 pickles have no magic; the extension says a loader will unpickle it
            self._scan_pickle_file(path, rel, size)
        elif suffix in JSON_EXTENSIONS:
            self._check_json(path, rel)
        elif suffix in YAML_EXTENSIONS or path.name in YAML_NAMES:
            self._check_yaml(path, rel)
        elif suffix in TEXT_EXTENSIONS or is_utf8_text(path):
            self._check_text(path, rel, size)
        elif size and starts_like_pickle(path, size):
            self._scan_pickle_file(path, rel, size)
        else:
            self.add(rel, K.UNRECOGNISED_FILE, f"binary file of {size} bytes in no recognised format")

    def _check_safetensors_file(
        self, path: Path, rel: str, suffix: str, size: int, *, pickle_magic: bool
    ) -> None:
        with path.open("rb") as fh:
            problems = check_safetensors(fh, size)
        if problems and pickle_magic and suffix != ".safetensors":
            # a pickle whose first bytes merely look like a safetensors header length
            self._scan_pickle_file(path, rel, size)
            return
        for problem in problems:
            self.add(rel, K.INVALID_SAFETENSORS, problem)
        if pickle_magic or suffix in PICKLE_EXTENSIONS:
            # a torch.load("model.bin") would unpickle it: make sure it is not a pickle polyglot
            self._scan_pickle_file(path, rel, size, where="file, read as a pickle, ", polyglot=True)

    def _code_reason(self, path: Path, suffix: str, head: bytes) -> str | None:
        if suffix in CODE_EXTENSIONS:
            return f"'{suffix}' file"
        for magic, what in EXECUTABLE_MAGICS:
            if head.startswith(magic):
                return what
        text_like = suffix in JSON_EXTENSIONS | YAML_EXTENSIONS | TEXT_EXTENSIONS or path.name in YAML_NAMES
        if not text_like and head.startswith(b"MZ"):
            return "a Windows (PE) executable or DLL"
        if not text_like and head.startswith(b"#!"):
            return "a script with a #! interpreter line"
        return None

    def _check_code(self, path: Path, rel: str, reason: str) -> None:
        expected = self.trusted_code.get(rel)
        if expected is None:
            self.add(rel, K.CODE, f"{reason}: executable code in a model can run when the model is loaded")
            return
        actual = sha256_file(path)
        if actual != expected:
            self.add(
                rel,
                K.CODE_HASH_MISMATCH,
                f"{reason} listed in trusted_code, but its sha256 is {actual}, not the trusted {expected}",
            )

    def _scan_pickle_file(
        self, path: Path, rel: str, size: int, *, where: str = "pickle ", polyglot: bool = False
    ) -> None:
        """Walk a pickle file. With ``polyglot``, only report what a pickle loader would import.

        ``polyglot`` is for files that are valid in another format (safetensors, text) but could
        still be handed to a pickle loader: parse errors are expected there and are not findings,
        while any import seen before the parse error still is (the unpickler runs opcodes as it
        reads them).
        """
        modes = (True, False) if polyglot else (True,)
        for joblib in modes:  # joblib.load and pickle.load read array bytes differently
            with path.open("rb") as fh:
                hits = scan_pickle_stream(fh, size, where, self.allowed, joblib=joblib, text=polyglot)
            self.add_hits(rel, hits, "file", polyglot=polyglot)
            if polyglot and any(h.kind != K.INVALID_PICKLE for h in hits):
                return

    def _scan_compressed(self, path: Path, rel: str, fmt: str) -> None:
        """A compressed file (joblib ``compress=``): decompress as a stream and check the content."""
        stream = f"{fmt}-decompressed stream"
        with path.open("rb") as fh:
            dec = Decompressed(fh, fmt)
            try:
                head = dec.read(HEAD_SIZE)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                self.add(rel, K.INVALID_COMPRESSED, f"{fmt} stream cannot be decompressed: {exc}")
                return
            if not head:
                self.add(rel, K.INVALID_COMPRESSED, f"{fmt} stream decompresses to nothing")
                return
            replay = cast(IO[bytes], Replay(head, dec))
            try:
                if head.startswith(NPY_MAGIC):
                    self._check_npy(replay, rel, stream, None)
                    return
                text = not has_pickle_magic(head) and is_utf8_bytes(head)
                hits = scan_pickle_stream(
                    replay, None, f"{fmt}-compressed pickle ", self.allowed, stream=stream, text=text
                )
            except (zlib.error, EOFError, lzma.LZMAError, ValueError) as exc:
                self.add(
                    rel,
                    K.INVALID_COMPRESSED,
                    f"{fmt} stream is corrupt or truncated after byte {dec.compressed_offset} of the file: {exc}",
                )
                return
        # compressed text (a .csv.gz) is fine unless it is also a pickle that imports something
        self.add_hits(rel, hits, stream, polyglot=text)

    def _check_npy(self, fh: IO[bytes], rel: str, stream: str, size: int | None, where: str = "") -> None:
        """A ``.npy``: numeric arrays pass on their header; an object array's pickle is walked."""
        dtype, used, problem = npy_dtype(fh)
        if problem or dtype is None:
            self.add(rel, K.UNRECOGNISED_FILE, where + (problem or "not a valid .npy file"))
            return
        if not dtype.hasobject:
            return
        # numpy.load(allow_pickle=True) unpickles the rest of the file with pickle.load
        label = f"{where}object array (dtype {dtype.descr!r}), whose pickle "
        hits = scan_pickle_stream(
            fh,
            None if size is None else size - used,
            label,
            self.allowed,
            stream=stream,
            joblib=False,
            base=used,
        )
        self.add_hits(rel, hits, stream)

    def _scan_zip(self, path: Path, rel: str) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"zip archive cannot be read: {exc}")
            return
        with zf:
            problem = zip_directory_problem(zf)
            if problem:
                self.add(rel, K.INVALID_ARCHIVE, problem)
                return
            infos = zf.infolist()
            names = [i.filename for i in infos]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                self.add(rel, K.INVALID_ARCHIVE, f"archive repeats member name(s) {dupes}")
            if skops_schema.SCHEMA_NAME in names or path.suffix.lower() == _SKOPS_SUFFIX:
                self._scan_skops(zf, infos, rel)
                return
            for info in infos:
                self._scan_zip_member(zf, info, rel)

    def _member_is_plain(self, info: zipfile.ZipInfo, rel: str, where: str) -> bool:
        """Report an unsafe path, encryption, a link or a code file; False when the member cannot
        (or must not) be read further."""
        name = info.filename
        member_path = PurePosixPath(name)
        if member_path.is_absolute() or ".." in member_path.parts or "\\" in name:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}has an unsafe path (absolute or '..')")
        if info.flag_bits & 0x1:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}is encrypted and cannot be scanned")
            return False
        if stat.S_ISLNK(info.external_attr >> 16):
            self.add(rel, K.SYMLINK, f"{where}is a symbolic link")
            return False
        suffix = member_path.suffix.lower()
        if suffix in CODE_EXTENSIONS:
            self.add(rel, K.CODE, f"{where}is a '{suffix}' file: executable code inside the archive")
            return False
        return True

    def _scan_zip_member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> None:
        name = info.filename
        where = f"member {name!r} "
        stream = f"member {name!r}"
        if info.is_dir() and info.file_size == 0:
            return  # np.load reads a member by any name, including one ending in '/', so only empty ones are skipped
        if not self._member_is_plain(info, rel, where):
            return
        suffix = PurePosixPath(name).suffix.lower()
        try:
            with zf.open(info) as fh:
                head = fh.read(HEAD_SIZE)
            # torch.load unpickles data.pkl only; raw storages ("data/0") may start with 0x80 by chance
            is_pickle = suffix in (".pkl", ".pickle") or (
                has_pickle_magic(head) and suffix in PICKLE_EXTENSIONS
            )
            if is_pickle:
                with zf.open(info) as fh:
                    hits = scan_pickle_stream(fh, info.file_size, where, self.allowed, stream=stream)
                self.add_hits(rel, hits, stream)
            elif head.startswith(NPY_MAGIC):
                with zf.open(info) as fh:
                    self._check_npy(fh, rel, stream, info.file_size, where=where)
            elif head.startswith(ZIP_MAGICS):
                self.add(rel, K.INVALID_ARCHIVE, f"{where}is a nested archive, which is not scanned")
            else:
                for magic, what in EXECUTABLE_MAGICS:
                    if head.startswith(magic):
                        self.add(rel, K.CODE, f"{where}is {what}")
                        break
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}cannot be read: {exc}")

    # --- skops ---------------------------------------------------------------------------

    def _scan_skops(self, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], rel: str) -> None:
        """A skops archive: the schema as skops reads it, every name it imports, every member."""
        schema_infos = [i for i in infos if i.filename == skops_schema.SCHEMA_NAME]
        if not schema_infos:
            self.add(rel, K.INVALID_SKOPS, "a .skops archive without schema.json (skops.io.dump writes one)")
            for info in infos:
                self._scan_zip_member(zf, info, rel)
            return
        schema_info = schema_infos[-1]  # zipfile (and so skops) reads the last of repeated names
        schema = self._read_skops_schema(zf, schema_info, rel)
        if schema is None:
            return
        for problem in schema.problems[:50]:
            self.add(rel, K.INVALID_SKOPS, f"schema.json {problem}")
        if len(schema.problems) > 50:
            self.add(rel, K.INVALID_SKOPS, f"schema.json has {len(schema.problems) - 50} more problem(s)")
        self._judge_skops_names(schema, rel)
        if not schema.nodes:  # the schema did not parse: check the members for what they are
            for info in infos:
                if info.filename != skops_schema.SCHEMA_NAME:
                    self._scan_zip_member(zf, info, rel)
            return
        present = set()
        for info in infos:
            name = info.filename
            present.add(name)
            where = f"member {name!r} "
            if not self._member_is_plain(info, rel, where) or name == skops_schema.SCHEMA_NAME:
                continue
            kinds = schema.members.get(name)
            if not kinds:
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is not referenced by schema.json: skops never reads it, so it is not part of "
                    "the model (another loader handed the archive might)",
                )
                continue
            if self._skops_member_inflates(info, rel, where):
                continue
            try:
                for kind in sorted(kinds):
                    self._check_skops_member(zf, info, kind, rel, where)
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                NotImplementedError,
                EOFError,
                ValueError,
            ) as exc:
                self.add(rel, K.INVALID_ARCHIVE, f"{where}cannot be read: {exc}")
        for name in sorted(set(schema.members) - present):
            self.add(rel, K.INVALID_SKOPS, f"schema.json references member {name!r}, which the archive lacks")

    def _read_skops_schema(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str
    ) -> skops_schema.SkopsSchema | None:
        if not self._member_is_plain(info, rel, "member 'schema.json' "):
            return None
        if info.file_size > skops_schema.MAX_SCHEMA_BYTES:
            self.add(
                rel,
                K.INVALID_SKOPS,
                f"schema.json is {info.file_size} bytes, over the scanner's {skops_schema.MAX_SCHEMA_BYTES}-byte limit",
            )
            return None
        try:
            with zf.open(info) as fh:
                raw = fh.read(skops_schema.MAX_SCHEMA_BYTES + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"member 'schema.json' cannot be read: {exc}")
            return None
        return skops_schema.read_schema(raw)

    def _judge_skops_names(self, schema: skops_schema.SkopsSchema, rel: str) -> None:
        """One finding per refused name (where it first appears, and how often)."""
        first: dict[tuple[str, bool], tuple[skops_schema.SkopsRef, int]] = {}
        not_object: dict[str, skops_schema.SkopsRef] = {}  # a use other than ObjectNode, by name
        for ref in schema.refs:
            key = (ref.dotted, ref.builtin_ok)
            seen = first.get(key)
            first[key] = (seen[0], seen[1] + 1) if seen else (ref, 1)
            if ref.loader != "ObjectNode":
                not_object.setdefault(ref.dotted, ref)
        for (dotted, builtin_ok), (ref, count) in first.items():
            times = f" ({count} nodes)" if count > 1 else ""
            problem = skops_name_problem(dotted, self.allowed, builtin=builtin_ok)
            if problem is not None:
                kind, reason = problem
                self.add(
                    rel,
                    kind,
                    f"schema.json at {ref.where}: a {ref.loader}{times} makes skops import {dotted}: {reason}",
                    symbol=dotted,
                )
            elif dotted in policy.NEW_ONLY_GLOBALS and dotted in not_object:
                other = not_object[dotted]
                self.add(
                    rel,
                    K.RESTRICTED_GLOBAL,
                    f"schema.json at {other.where}: a {other.loader} uses {dotted}, which skops may only "
                    "rebuild as an ObjectNode (cls.__new__, then its saved state); other nodes call it or "
                    "hand it on, and its constructor loads the model file its arguments name",
                    symbol=dotted,
                )

    def _skops_member_inflates(self, info: zipfile.ZipInfo, rel: str, where: str) -> bool:
        if info.compress_type == zipfile.ZIP_STORED or info.file_size <= _BOMB_FLOOR:
            return False
        if info.file_size <= _BOMB_RATIO * max(info.compress_size, 1):
            return False
        self.add(
            rel,
            K.INVALID_SKOPS,
            f"{where}inflates from {info.compress_size} to {info.file_size} bytes (over {_BOMB_RATIO}:1); "
            "skops reads every member into memory",
        )
        return True

    def _check_skops_member(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, rel: str, where: str
    ) -> None:
        stream = f"member {info.filename!r}"
        if kind == "npy":
            with zf.open(info) as fh:
                dtype, _used, problem = npy_dtype(fh)
            if problem or dtype is None:
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is referenced as a numpy array but {problem or 'is not a .npy'}",
                )
            elif dtype.hasobject:
                self.add(
                    rel,
                    K.OBJECT_ARRAY,
                    f"{where}is an object array (dtype {dtype.descr!r}); skops keeps object arrays in the "
                    "schema and never writes one as a member",
                )
                with zf.open(info) as fh:
                    self._check_npy(fh, rel, stream, info.file_size, where=where)
        elif kind == "npz":
            self._check_skops_sparse(zf, info, rel, where)
        else:  # "bytes" or "xgboost_booster": raw bytes skops hands to the object that holds them
            with zf.open(info) as fh:
                head = fh.read(HEAD_SIZE)
            if has_pickle_magic(head) or head.startswith(ZIP_MAGICS):
                what = "a pickle" if has_pickle_magic(head) else "a zip archive"
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is {what}; skops never writes one as raw bytes, so only something that "
                    "unpickles or opens it would use it",
                )
            with zf.open(info) as fh:
                hits = scan_pickle_stream(
                    fh,
                    info.file_size,
                    f"{where}(raw bytes, read as a pickle) ",
                    self.allowed,
                    stream=stream,
                    text=True,
                )
            self.add_hits(rel, hits, stream, polyglot=not has_pickle_magic(head))
            if kind == "xgboost_booster":
                data = zf.read(info)
                problem = ubjson_problem(data) if data else "empty"
                if problem:
                    self.add(
                        rel,
                        K.INVALID_SKOPS,
                        f"{where}holds an XGBoost booster's state but is not the UBJSON XGBoost writes: {problem}",
                    )

    def _check_skops_sparse(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, where: str) -> None:
        """A SparseMatrixNode's member: what scipy.sparse.save_npz writes (numeric .npy arrays only)."""
        with zf.open(info) as fh:
            try:
                inner = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
                self.add(
                    rel, K.INVALID_SKOPS, f"{where}is referenced as a sparse matrix but is not a .npz: {exc}"
                )
                return
            with inner:
                problem = zip_directory_problem(inner)
                if problem:
                    self.add(rel, K.INVALID_SKOPS, f"{where}(a .npz): {problem}")
                    return
                names = inner.namelist()
                unknown = sorted(set(names) - _SPARSE_NPZ_MEMBERS)
                dupes = sorted({n for n in names if names.count(n) > 1})
                if unknown or dupes or "format.npy" not in names:
                    self.add(
                        rel,
                        K.INVALID_SKOPS,
                        f"{where}is not what scipy.sparse.save_npz writes (members {sorted(names)})",
                    )
                    return
                for sub in inner.infolist():
                    sub_where = f"{where}(.npz member {sub.filename!r}) "
                    if not self._member_is_plain(sub, rel, sub_where) or self._skops_member_inflates(
                        sub, rel, sub_where
                    ):
                        continue
                    with inner.open(sub) as sub_fh:
                        dtype, _used, npy_problem = npy_dtype(sub_fh)
                    if npy_problem or dtype is None:
                        self.add(rel, K.INVALID_SKOPS, f"{sub_where}{npy_problem or 'is not a .npy'}")
                    elif dtype.hasobject:
                        self.add(
                            rel, K.OBJECT_ARRAY, f"{sub_where}is an object array (dtype {dtype.descr!r})"
                        )

    def _check_json(self, path: Path, rel: str) -> None:
        try:
            with path.open("rb") as fh:
                json.load(fh)
        except (ValueError, RecursionError) as exc:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid JSON: {exc}")

    def _check_ubjson(self, path: Path, rel: str, size: int) -> None:
        """XGBoost's native UBJSON model: validated structurally (bounded, nothing is decoded to code)."""
        problem: str | None = "empty file"
        if size:
            with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                problem = ubjson_problem(buf)
        if problem:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid UBJSON: {problem}")
            return
        self._check_text_is_not_pickle(path, rel)

    def _check_yaml(self, path: Path, rel: str) -> None:
        import yaml  # only for YAML files (the trainer image, which loads through this package, has no PyYAML)

        try:
            with path.open("rb") as fh:
                yaml.safe_load(fh)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid YAML (yaml.safe_load): {exc}".replace("\n", " "))
            return
        self._check_text_is_not_pickle(path, rel)

    def _check_text(self, path: Path, rel: str, size: int) -> None:
        if size:
            self._check_text_is_not_pickle(path, rel)

    def _check_text_is_not_pickle(self, path: Path, rel: str) -> None:
        """Text can still be a protocol 0 pickle (``cos\\nsystem\\n...``). The unpickler runs each
        opcode as it reads it, so what a text file imports *before* it stops parsing as a pickle
        is reported, whether or not a complete pickle follows (read both as ``pickle.load`` and as
        ``joblib.load`` read it)."""
        size = path.stat().st_size
        if size:
            self._scan_pickle_file(path, rel, size, where="text file read as a pickle ", polyglot=True)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


def scan_model_dir(
    path: str | os.PathLike[str],
    *,
    allowed_globals: Iterable[str] = (),
    trusted_code: Mapping[str, str] | None = None,
) -> ScanReport:
    """Scan a model directory (or a single model file) for anything that could run code on load.

    Nothing is loaded or unpickled. See the module docstring for what is checked.

    Args:
        path: the model directory (an MLflow model dir, a Hugging Face snapshot ...) or one file.
        allowed_globals: extra pickle globals to accept, as ``"module.name"`` (or ``"module.*"``
            for every name in a module). Dangerous globals (``os.system``, ``builtins.eval`` ...)
            are refused even when listed here.
        trusted_code: relative POSIX path -> sha256 hex of code files the pipeline ships on
            purpose (e.g. its MLflow pyfunc wrapper). Any other code file is a finding.

    Returns:
        A :class:`ScanReport`; call :meth:`ScanReport.ensure_safe` to fail on findings.
    """
    root = Path(path)
    if isinstance(allowed_globals, str):  # a single "module.name" rather than a list of them
        allowed_globals = [allowed_globals]
    allowed = frozenset(g.strip() for g in allowed_globals if g.strip())
    scanner = Scanner(allowed, trusted_code or {})
    if root.is_symlink() and not root.exists():
        scanner.add(".", FindingKind.SYMLINK, f"{root} is a broken symbolic link")
    elif root.is_file():
        scanner.scan_file(root, root.name)
    elif root.is_dir():
        progress = Progress(log, f"Scanning model {root}")
        for file_path, rel in scanner.walk(root, root):
            scanner.scan_file(file_path, rel)
            try:
                progress.advance(items=1, nbytes=file_path.stat().st_size)
            except OSError:
                progress.advance(items=1)
        progress.done()
    elif root.exists():
        scanner.add(".", FindingKind.SPECIAL_FILE, f"{root} is neither a file nor a directory")
    if scanner.files == 0 and not scanner.findings:
        what = "does not exist" if not root.exists() else "contains no files"
        scanner.add(".", FindingKind.NO_MODEL_FILES, f"model path {root} {what}")
    report = ScanReport(root=str(root), files_scanned=scanner.files, findings=tuple(scanner.findings))
    if report.ok:
        log.info("Model scan of %s passed: %s file(s), no findings", root, report.files_scanned)
    else:
        log.warning(
            "Model scan of %s found %s problem(s) in %s file(s): %s",
            root,
            len(report.findings),
            report.files_scanned,
            "; ".join(f"{f.path} [{f.kind}] {f.symbol or ''}" for f in report.findings[:20]),
        )
    return report
