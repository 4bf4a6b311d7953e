"""What a scan reports (airflow_mlops.security.scanning.report): every finding with its fix, a
JSON-safe dict, frozen values."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from airflow_mlops.exceptions import UnsafeModelError
from airflow_mlops.security.scanning import FIX_HINTS, Finding, ScanReport, scan_model_dir
from tests.unit.security.scanning.payloads import _EvalCall, _SystemCall


def test_ensure_safe_lists_every_finding_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_SystemCall("true"), protocol=4))
    (tmp_path / "run.py").write_text("print('hi')\n")
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 999))
    report = scan_model_dir(tmp_path)

    with pytest.raises(UnsafeModelError) as excinfo:
        report.ensure_safe()

    message = str(excinfo.value)
    assert "3 finding(s)" in message
    for finding in report.findings:
        assert finding.path in message
        assert finding.detail in message
        assert FIX_HINTS[finding.kind] in message
    assert "safetensors" in message


def test_to_dict_is_json_serialisable(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_EvalCall(), protocol=2))
    report = scan_model_dir(tmp_path)

    data = json.loads(json.dumps(report.to_dict()))

    assert data["ok"] is False
    assert data["files_scanned"] == 1
    assert data["findings"][0]["path"] == "model.pkl"
    assert data["findings"][0]["kind"] == "dangerous_global"
    assert data["findings"][0]["fix"] == FIX_HINTS["dangerous_global"]


def test_report_and_finding_are_frozen() -> None:
    finding = Finding(path="a.pkl", kind="unknown_global", detail="x")
    report = ScanReport(root="/m", files_scanned=1, findings=(finding,))

    with pytest.raises(AttributeError):
        report.files_scanned = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        finding.kind = "ok"  # type: ignore[misc]
    assert not report.ok
    assert ScanReport(root="/m", files_scanned=1).ok
