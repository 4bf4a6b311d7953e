"""What a scan finds: finding kinds (an enum), fix hints, :class:`Finding` and :class:`ScanReport`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.exceptions import UnsafeModelError


class FindingKind(enum.StrEnum):
    """The category of a finding. String-valued: ``FindingKind.CODE == "code"`` and JSON keeps the text."""

    DANGEROUS_GLOBAL = "dangerous_global"
    UNKNOWN_GLOBAL = "unknown_global"
    UNRESOLVED_GLOBAL = "unresolved_global"
    EXTENSION_GLOBAL = "extension_global"
    INVALID_PICKLE = "invalid_pickle"
    GLOBAL_MUTATION = "global_mutation"
    RESTRICTED_GLOBAL = "restricted_global"
    AMBIGUOUS_LAYOUT = "ambiguous_layout"
    OBJECT_ARRAY = "object_array"
    CODE = "code"
    CODE_HASH_MISMATCH = "code_hash_mismatch"
    INVALID_SAFETENSORS = "invalid_safetensors"
    INVALID_ARCHIVE = "invalid_archive"
    INVALID_COMPRESSED = "invalid_compressed"
    INVALID_DATA_FILE = "invalid_data_file"
    INVALID_SKOPS = "invalid_skops"
    UNRECOGNISED_FILE = "unrecognised_file"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    UNREADABLE = "unreadable"
    SCAN_ERROR = "scan_error"
    NO_MODEL_FILES = "no_model_files"


#: kind -> how to fix it; shown by :meth:`ScanReport.ensure_safe` and in :meth:`ScanReport.to_dict`.
FIX_HINTS: dict[FindingKind, str] = {
    FindingKind.DANGEROUS_GLOBAL: (
        "this pickle runs code on load and can never be allowlisted; save weights with safetensors "
        "(safetensors.torch.save_file / save_model) and rebuild the model object in code"
    ),
    FindingKind.UNKNOWN_GLOBAL: (
        "save weights with safetensors instead of pickle; if you trust this class, add "
        "'<module>.<name>' to the scan's allowed_globals"
    ),
    FindingKind.UNRESOLVED_GLOBAL: (
        "the pickle builds an import name at load time, which is a known scanner-evasion trick; "
        "re-save the model with safetensors"
    ),
    FindingKind.EXTENSION_GLOBAL: (
        "the pickle imports through the copyreg extension registry, which cannot be verified; "
        "re-save the model with safetensors"
    ),
    FindingKind.INVALID_PICKLE: "the file is not a well-formed pickle; re-export the model (prefer safetensors)",
    FindingKind.GLOBAL_MUTATION: (
        "the pickle sets state on (or adds items to) an imported class, function, module or shared "
        "object, which would change it for the whole loading process; no ordinary model does this, "
        "treat the file as hostile and re-export the model with safetensors"
    ),
    FindingKind.RESTRICTED_GLOBAL: (
        "the class is allowed only the way a pickler or skops writes it (created without running "
        "its constructor, then given its saved state); this file calls it or hands it on, and its "
        "constructor opens the file its arguments name. Re-export the model with the library's own "
        "save (booster.save_model) and treat this file as hostile"
    ),
    FindingKind.AMBIGUOUS_LAYOUT: (
        "the scanner cannot decide exactly which bytes the loader reads here (a joblib array "
        "wrapper or numpy dtype in a form joblib.dump/numpy never write), so it refuses the file; "
        "re-export it with joblib.dump from a current joblib, or better with safetensors / the "
        "library's native format"
    ),
    FindingKind.OBJECT_ARRAY: (
        "save arrays with a numeric dtype (np.save with allow_pickle=False) or with safetensors"
    ),
    FindingKind.CODE: (
        "remove code from the model directory, or list its relative path and exact sha256 in "
        "trusted_code if your pipeline ships this file on purpose"
    ),
    FindingKind.CODE_HASH_MISMATCH: (
        "the file differs from the trusted version; restore the trusted file or update its sha256 "
        "in trusted_code after review"
    ),
    FindingKind.INVALID_SAFETENSORS: (
        "re-export the weights with the safetensors library (safetensors.*.save_file)"
    ),
    FindingKind.INVALID_ARCHIVE: (
        "re-export the model; archives must be plain zip files without nested archives"
    ),
    FindingKind.INVALID_COMPRESSED: (
        "the compressed stream is corrupt or truncated; re-export the model (joblib.dump with "
        "compress=..., or better safetensors)"
    ),
    FindingKind.INVALID_DATA_FILE: (
        "fix the file so it parses (JSON must be valid JSON, YAML must pass yaml.safe_load)"
    ),
    FindingKind.INVALID_SKOPS: (
        "the skops file is not what skops.io.dump writes (schema.json of protocol 2 that references "
        "exactly the archive's members: numeric .npy arrays, scipy .npz matrices, raw bytes); "
        "re-save the model with skops.io.dump from the installed skops and treat this file as hostile"
    ),
    FindingKind.UNRECOGNISED_FILE: (
        "remove the file or convert it to a recognised format (safetensors weights, JSON/YAML/text "
        "metadata); unknown binaries are refused because they cannot be checked"
    ),
    FindingKind.SYMLINK: "replace the symlink with a regular file copy; links can point outside the model",
    FindingKind.SPECIAL_FILE: "remove the device, socket or FIFO from the model directory",
    FindingKind.UNREADABLE: "make the file readable by the worker, or remove it",
    FindingKind.SCAN_ERROR: "remove or re-export the file; files the scanner cannot check are refused",
    FindingKind.NO_MODEL_FILES: (
        "the model directory is empty or missing: check the path and that training wrote its output"
    ),
}


@dataclass(frozen=True)
class Finding:
    """One reason a model is unsafe to load.

    Attributes:
        path: path of the offending file relative to the scanned root, POSIX style (``"."`` for
            the root itself).
        kind: the category (a :class:`FindingKind`; a plain string is converted).
        detail: what was found and why it is a risk.
        symbol: the offending pickle global as ``"module.name"``, when the finding is about one.
        offset: byte offset of the offending opcode (or region) in ``stream``, when known.
        stream: what ``offset`` counts in: ``"file"``, ``"member 'archive/data.pkl'"``,
            ``"zlib-decompressed stream"`` ... (``None`` when there is no offset).
    """

    path: str
    kind: FindingKind
    detail: str
    symbol: str | None = None
    offset: int | None = None
    stream: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FindingKind):
            object.__setattr__(self, "kind", FindingKind(self.kind))

    @property
    def fix(self) -> str:
        """How to fix this finding."""
        return FIX_HINTS.get(self.kind, "remove the file or re-export the model with safetensors")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able representation (including the fix hint)."""
        out: dict[str, Any] = {"path": self.path, "kind": str(self.kind), "detail": self.detail}
        if self.symbol is not None:
            out["symbol"] = self.symbol
        if self.offset is not None:
            out["offset"] = self.offset
            out["stream"] = self.stream
        out["fix"] = self.fix
        return out

    def format(self) -> str:
        """One human-readable line (plus a fix line)."""
        return f"{self.path}: [{self.kind}] {self.detail}\n    fix: {self.fix}"


@dataclass(frozen=True)
class ScanReport:
    """The result of :func:`~airflow_mlops.security.scanning.scan_model_dir`.

    Attributes:
        root: the scanned directory (or file), as given.
        files_scanned: number of regular files examined.
        findings: every problem found; empty means the model is safe to load.
    """

    root: str
    files_scanned: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when nothing unsafe was found."""
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able representation, suitable for XCom or an ML-BOM."""
        return {
            "root": self.root,
            "files_scanned": self.files_scanned,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
        }

    def ensure_safe(self) -> None:
        """Raise :class:`UnsafeModelError` listing every finding, unless there are none."""
        if self.ok:
            return
        lines = "\n".join(f"  - {f.format()}" for f in self.findings)
        raise UnsafeModelError(
            f"model at {self.root} failed the security scan with {len(self.findings)} finding(s) "
            f"({self.files_scanned} file(s) scanned); it was not loaded:\n{lines}"
        )
