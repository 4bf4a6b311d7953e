"""What the evaluate stage records of an evaluation: its log lines, the ``eval_*`` metrics and
reports on the candidate's MLflow run, and the blessing (the gates' verdict for one model digest,
which registration records and promotion checks).

No Airflow: the functions take the :class:`~airflow_mlops.registry.evaluation.EvaluationReport`
and an MLflow client.
"""

from __future__ import annotations

import json
from typing import Any

EVALUATION_ARTIFACT = "evaluation/evaluation.json"
EVALUATION_HTML_ARTIFACT = "evaluation/evaluation_report.html"


def evaluation_log_lines(report: Any) -> list[str]:
    """What the evaluation found, line by line: the model, its holdout metrics (at which
    threshold), a champion that cannot be compared, the champion's threshold, and the gates."""
    model = report.model or {}
    lines = [f"Evaluated a {report.task} model ({model.get('flavor')}, {model.get('model_type')})"]
    if report.threshold is not None:
        lines.append(
            f"Holdout metrics at threshold {report.threshold} ({report.threshold_source}): {report.metrics}"
        )
    else:
        lines.append(f"Holdout metrics: {report.metrics}")
    if report.champion_mismatch:
        lines.append(f"Champion {report.champion_version} cannot be compared: {report.champion_mismatch}")
    if report.champion_threshold is not None:
        lines.append(
            f"Champion scored at its threshold {report.champion_threshold} ({report.champion_threshold_source})"
        )
    lines.append(f"Gates ({report.note}):\n{report.gates.summary()}")
    return lines


def log_evaluation(client: Any, run_id: str, report: Any, html: str) -> None:
    """Log the holdout metrics as ``eval_<metric>``, the gates' tag and both reports to the run."""
    from airflow_mlops.registry.mlflow_registry import log_report, log_run_data

    log_run_data(
        client,
        run_id,
        metrics={f"eval_{k}": v for k, v in report.metrics.items()},
        tags={"mlops.gates": "passed" if report.passed else "failed"},
    )
    log_report(client, run_id, json.dumps(report.to_dict(), indent=2).encode(), EVALUATION_ARTIFACT)
    log_report(client, run_id, html.encode(), EVALUATION_HTML_ARTIFACT)


def blessing(report: Any, *, model_sha256: str, compared: bool, report_ref: Any, by: str) -> dict[str, Any]:
    """The verdict for this exact digest (``report_ref``: the stored ``evaluation.json``)."""
    return {
        "model_sha256": model_sha256,
        "passed": report.passed,
        "compared": compared,
        "champion_version": report.champion_version,
        "report": {"uri": report_ref.uri, "sha256": report_ref.sha256},
        "by": by,
    }
