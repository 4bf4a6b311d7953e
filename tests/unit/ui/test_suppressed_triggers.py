"""The Models view's "suppressed triggers" panel (``airflow_mlops/ui/suppressed.py``): read from the
pipeline's retrain ledger, counted by reason, escaped, and an unreadable ledger shown as such."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.retrain.ledger import LedgerStore, ledger_uri
from airflow_mlops.retrain.policy import RetrainPolicy, Trigger, gate_run
from airflow_mlops.ui import page, rows
from airflow_mlops.ui.suppressed import SHOWN, SuppressedTriggers, read_suppressed
from tests.unit.ui.models_registry import MODEL, PIPELINE

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def gated(root: Path, pipeline: str, runs: int, extra: dict[str, Any] | None = None) -> None:
    """``runs`` gated runs of two drift events each under a cooldown: the first run admitted, the rest not."""
    store = LedgerStore(ledger_uri(f"{root}/{pipeline}/_state"))
    for run in range(runs):
        triggers = [
            Trigger(
                f"x-mlops://{pipeline}/drift",
                "drift",
                T0 + dt.timedelta(seconds=2 * run + i),
                {"window": f"/w{run}-{i}", **(extra or {})},
            )
            for i in range(2)
        ]
        gate_run(
            store, RetrainPolicy(cooldown=3600), pipeline=pipeline, model="m", run_id=f"run-{run}",
            run_type="asset_triggered", triggers=triggers,
        )  # fmt: skip


def test_the_panel_counts_what_the_gate_held_back_by_reason(tmp_path: Path) -> None:
    gated(tmp_path, "fraud", runs=8)
    panel = read_suppressed(str(tmp_path), "fraud")
    assert panel is not None and not panel.error
    assert panel.total == 14 and panel.by_code == {"cooldown": 14}
    assert len(panel.latest) == SHOWN and panel.latest[0].run_id == "run-7"
    assert panel.latest[0].reason.startswith("cooldown: the last retrain (run run-0")
    assert panel.last_retrain is not None and panel.last_retrain["run_id"] == "run-0"


def test_no_ledger_no_panel_and_an_unreadable_one_says_so(tmp_path: Path) -> None:
    assert read_suppressed(str(tmp_path), "fraud") is None  # no policy, or nothing gated yet
    ledger = Path(ledger_uri(f"{tmp_path}/fraud/_state"))
    ledger.parent.mkdir(parents=True)
    ledger.write_text("{broken")
    panel = read_suppressed(str(tmp_path), "fraud")
    assert panel is not None and panel.total == 0
    assert panel.error == "the retrain ledger could not be read: RetrainLedgerCorruptError"
    assert str(tmp_path) not in panel.error


def _view(suppressed: SuppressedTriggers | None) -> rows.ModelView:
    return rows.ModelView("m", "fraud", {}, (), None, (), suppressed)


def test_the_page_shows_the_panel_escaped(tmp_path: Path) -> None:
    evil = '<img src=x onerror="alert(1)">'
    gated(tmp_path, "fraud", runs=2, extra={"note": evil})
    panel = read_suppressed(str(tmp_path), "fraud")
    assert panel is not None
    bad = SuppressedTriggers(
        panel.total,
        {evil: 1},
        (panel.latest[0].__class__(evil, evil, evil, evil, evil),),
        {"at": evil, "trigger": evil},
    )
    html = page.render_models([_view(panel), _view(bad)], base="/m")
    assert 'data-suppressed="2"' in html and 'data-code="cooldown"' in html and "cooldown 2" in html
    assert "last retrain" in html and "(run run-1)" in html
    assert "<img" not in html and "&lt;img src=x" in html
    assert "suppressed triggers" not in page.render_models([_view(None)], base="/m")
    error = page.render_models(
        [_view(SuppressedTriggers(error="the retrain ledger could not be read: X"))], base="/m"
    )
    assert "the retrain ledger could not be read: X" in error


def test_the_models_page_reads_each_pipelines_ledger(
    client: Any,
    keys: tuple[bytes, bytes],
    registry: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airflow_mlops.ui import app as app_module

    class Everyone:
        def is_authorized_dag(self, **_: Any) -> bool:
            return True

    root = tmp_path / "artifact-root"
    gated(root, PIPELINE, runs=3)
    monkeypatch.setattr(app_module, "mlflow_client", lambda: client)
    monkeypatch.setattr(app_module, "public_key_pem", lambda: keys[1])
    monkeypatch.setattr(app_module, "get_auth_manager", lambda: Everyone())
    monkeypatch.setattr(app_module, "artifact_root", lambda: str(root))
    app = app_module.create_app()
    app.dependency_overrides[get_user] = lambda: object()
    text = TestClient(app, root_path="/mlops/models").get("/").text
    assert f'id="suppressed-{MODEL}" data-suppressed="4"' in text
