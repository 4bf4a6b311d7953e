"""The rollback operator: a thin adapter whose request id makes a retried task converge."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.exceptions import PromotionBlockedError
from airflow_mlops.operators.registry import ModelRollbackOperator
from airflow_mlops.registry.promotion import RollbackResult

CONTEXT = {"run_id": "manual__1", "dag": SimpleNamespace(dag_id="ops__rollback")}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import airflow_mlops.registry.promotion as registry

    seen: list[dict[str, Any]] = []

    def fake(client: Any, **kwargs: Any) -> RollbackResult:
        seen.append(kwargs)
        if kwargs["expected_version"] == "9":
            raise PromotionBlockedError("m@champion points at version 4, not 9; nothing was rolled back")
        return RollbackResult("m", kwargs["alias"], "3", "4", True, "fp", kwargs["reason"])

    monkeypatch.setattr(registry, "rollback_alias", fake)
    monkeypatch.setattr(ModelRollbackOperator, "mlflow_hook", SimpleNamespace(get_conn=lambda: object()))
    key = SimpleNamespace(trust=b"pub")
    monkeypatch.setattr(
        "airflow_mlops.operators.base.ModelSigningHook",
        lambda signing_conn_id, method=None: SimpleNamespace(get_key=lambda need_private: key),
    )
    return seen


def test_rollback_uses_the_airflow_run_as_its_request_id(calls) -> None:
    out = ModelRollbackOperator(
        task_id="rollback", pipeline="p", model_name="m", expected_version=""
    ).execute(CONTEXT)
    assert out["version"] == "3" and out["rolled_back_from"] == "4"
    (kwargs,) = calls
    assert kwargs["request_id"] == "ops__rollback/manual__1"
    assert kwargs["expected_version"] is None  # an empty template renders "": no guard
    assert kwargs["reason"] == "rollback by ops__rollback/manual__1"


def test_a_refused_rollback_fails_without_retry(calls) -> None:
    op = ModelRollbackOperator(task_id="rollback", pipeline="p", model_name="m", expected_version=9)
    with pytest.raises(PromotionBlockedError, match="not 9") as caught:
        op.execute(CONTEXT)
    assert isinstance(caught.value, AirflowFailException)


# --- registration records the blessing of exactly the model it registers ------------------------

# --- the promote operator: rollout alias only once there is a champion ---------------------------


@pytest.mark.parametrize(
    ("champion", "expected"), [(None, "champion"), (SimpleNamespace(version="1"), "canary")]
)
def test_a_rollout_starts_only_beside_a_champion(
    monkeypatch: pytest.MonkeyPatch, champion, expected: str
) -> None:
    import airflow_mlops.registry.mlflow_registry as mlflow_registry
    import airflow_mlops.registry.promotion as promotion
    from airflow_mlops.operators.registry import ModelPromoteOperator
    from airflow_mlops.registry.promotion import PromotionResult

    seen: dict[str, Any] = {}

    def fake_promote(client: Any, **kwargs: Any) -> PromotionResult:
        seen.update(kwargs)
        return PromotionResult("m", kwargs["alias"], "2", "1", True, "fp")

    monkeypatch.setattr(mlflow_registry, "champion_version", lambda *a, **k: champion)
    monkeypatch.setattr(promotion, "promote_version", fake_promote)
    monkeypatch.setattr(ModelPromoteOperator, "mlflow_hook", SimpleNamespace(get_conn=lambda: object()))
    monkeypatch.setattr(
        "airflow_mlops.operators.base.ModelSigningHook",
        lambda signing_conn_id, method=None: SimpleNamespace(
            get_key=lambda need_private: SimpleNamespace(trust=b"k")
        ),
    )
    op = ModelPromoteOperator(
        task_id="promote",
        pipeline="p",
        model_name="m",
        version="2",
        gates_passed=True,
        rollout_alias="canary",
        traffic_share=0.2,
    )
    op.execute(
        {
            **CONTEXT,
            "ti": SimpleNamespace(try_number=2),
            "dag_run": SimpleNamespace(triggering_user_name="ana"),
        }
    )
    assert seen["alias"] == expected and seen["champion_alias"] == "champion"
    assert seen["traffic_share"] == (0.2 if expected == "canary" else None)
    assert seen["request_id"] == "ops__rollback/manual__1"
    assert seen["by"] == "airflow:ops__rollback/manual__1/promote#2 (triggered by ana)"
