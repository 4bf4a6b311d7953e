"""The later gate of a shadow or canary rollout: the candidate beside the champion on live rows.

:func:`judge_window` and the state machine (:func:`next_step`, :func:`count_window`) are pure
functions; :func:`run_rollout_window` runs the gate on an MLflow client it is given (no Airflow;
numpy, pandas and the registry helpers are imported inside). One live window
gives one verdict: ``passed`` (promote the candidate to champion), ``failed`` (end the rollout) or
``undecided`` (too few rows, or comparisons that need labels on an unlabelled window: the next
window decides; after ``max_windows`` undecided windows the rollout ends -- a rollout that cannot
decide never becomes champion by default).

*Agreement* is the share of the window's rows on which the two models answer alike, per task
(each model's output as :mod:`airflow_mlops.metrics` defines it):

- ``binary``: the same predicted class, each model at its own operating threshold;
- ``multiclass``: the same most probable class (compared by label, so two models whose class
  lists differ still compare);
- ``regression``: the candidate's value within ``max_relative_error`` of the champion's:
  ``|candidate - champion| <= max_relative_error * max(|champion|, scale)``, where ``scale`` is
  the window's mean ``|champion|``. The floor keeps rows whose prediction is near zero (a target
  centred on zero) from demanding an exact match: there the tolerance is relative to the size of
  the champion's predictions on the window, not of that one row.

On a labelled window each model's metrics are computed from the labels encoded against its own
classes (:func:`airflow_mlops.tasks.encode_target`); labelled rows of a class one of the models
was never trained on are left out of that comparison (and counted in the reasons).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.exceptions import DataError
from airflow_mlops.labels import label_key
from airflow_mlops.registry.evaluation import GateReport, evaluate_gates
from airflow_mlops.tasks import TASKS, encode_target, sort_classes

if TYPE_CHECKING:
    import numpy as np

Verdict = Literal["passed", "failed", "undecided"]
log = logging.getLogger(__name__)

#: Regression: how far (relative) the candidate's value may be from the champion's on a row that
#: counts as agreeing.
DEFAULT_MAX_RELATIVE_ERROR = 0.1


@dataclass(frozen=True)
class RolloutReport:
    """The verdict on one live window, with what it rests on.

    ``candidate_summary`` / ``champion_summary`` describe each model's answers on the window:
    binary ``{"positive_rate"}``, multiclass ``{"class_shares": {label: share}}``, regression
    ``{"mean", "std"}``.
    """

    verdict: Verdict
    task: str
    rows: int
    labelled: bool
    agreement: float
    agreement_rule: str
    candidate_summary: Mapping[str, Any]
    champion_summary: Mapping[str, Any]
    candidate_metrics: Mapping[str, float] | None
    champion_metrics: Mapping[str, float] | None
    gates: GateReport
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "task": self.task,
            "rows": self.rows,
            "labelled": self.labelled,
            "agreement": self.agreement,
            "agreement_rule": self.agreement_rule,
            "candidate_summary": dict(self.candidate_summary),
            "champion_summary": dict(self.champion_summary),
            "candidate_metrics": dict(self.candidate_metrics) if self.candidate_metrics else None,
            "champion_metrics": dict(self.champion_metrics) if self.champion_metrics else None,
            "gates": self.gates.to_dict(),
            "reasons": list(self.reasons),
        }

    def summary(self) -> str:
        head = (
            f"rollout gate {self.verdict.upper()} on {self.rows} live rows of a {self.task} model "
            f"(agreement {self.agreement:.4f}: {self.agreement_rule})"
        )
        return "\n".join([head, *("  " + r for r in self.reasons)])


def judge_window(
    candidate: Any,
    champion: Any,
    *,
    task: str = "binary",
    candidate_threshold: float = 0.5,
    champion_threshold: float = 0.5,
    candidate_classes: Sequence[str] | None = None,
    champion_classes: Sequence[str] | None = None,
    positive_label: Any = 1,
    y_true: Any = None,
    min_rows: int,
    min_agreement: float | None,
    max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR,
    comparisons: Mapping[str, Mapping[str, float]] | None = None,
) -> RolloutReport:
    """Judge one live window answered by both models.

    :param candidate: the candidate's output on the window (``Predictor.predict_scores``):
        binary, positive-class probabilities; multiclass, ``(rows, classes)`` probabilities;
        regression, values.
    :param champion: the champion's output on the same rows.
    :param candidate_threshold: binary: the candidate's operating threshold.
    :param champion_threshold: binary: the champion's operating threshold.
    :param candidate_classes: classification: the candidate's classes (canonical label texts, the
        order of its output columns). Required for multiclass; for binary it lets a window of one
        class be scored.
    :param champion_classes: the champion's classes, likewise.
    :param positive_label: binary: the positive class (the spec's ``data.positive_label``).
    :param y_true: the window's raw labels (its target column), or None for an unlabelled window.
    :param max_relative_error: regression: the tolerance of the agreement (module docstring).
    :param comparisons: ``{metric: {"max_regression": x}}`` on labelled windows (see
        :func:`~airflow_mlops.registry.evaluation.evaluate_gates`).
    :raises DataError: the outputs differ in rows or do not fit the task (probabilities outside
        [0, 1], NaN, a class count other than the classes'), or the task is unknown.
    """
    import numpy as np

    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    cand = _output(task, "candidate", candidate, candidate_classes)
    champ = _output(task, "champion", champion, champion_classes)
    if len(cand) != len(champ):
        raise DataError(f"the candidate answered {len(cand)} rows, the champion {len(champ)}")
    rows = len(cand)
    if rows == 0:
        raise DataError("the live window has no rows")

    if task == "binary":
        cand_pos, champ_pos = cand >= candidate_threshold, champ >= champion_threshold
        agree = cand_pos == champ_pos
        rule = "same predicted class, each model at its own threshold"
        cand_summary: dict[str, Any] = {"positive_rate": float(cand_pos.mean())}
        champ_summary: dict[str, Any] = {"positive_rate": float(champ_pos.mean())}
    elif task == "multiclass":
        assert candidate_classes is not None and champion_classes is not None  # checked by _output
        cand_labels = np.asarray(list(candidate_classes), dtype=object)[np.argmax(cand, axis=1)]
        champ_labels = np.asarray(list(champion_classes), dtype=object)[np.argmax(champ, axis=1)]
        agree = cand_labels == champ_labels  # canonical label texts of the models, not raw labels
        rule = "same most probable class"
        cand_summary = {"class_shares": _shares(cand_labels, candidate_classes)}
        champ_summary = {"class_shares": _shares(champ_labels, champion_classes)}
    else:
        if not max_relative_error >= 0:
            raise DataError(f"max_relative_error must be >= 0, got {max_relative_error!r}")
        scale = float(np.mean(np.abs(champ)))
        tolerance = max_relative_error * np.maximum(np.abs(champ), scale)
        agree = np.abs(cand - champ) <= tolerance
        rule = (
            f"candidate within {max_relative_error:g} (relative) of the champion, "
            f"floor {max_relative_error:g} x mean |champion| = {max_relative_error * scale:.6g}"
        )
        cand_summary = {"mean": float(cand.mean()), "std": float(cand.std())}
        champ_summary = {"mean": float(champ.mean()), "std": float(champ.std())}
    agreement = float(np.mean(agree))

    labelled = y_true is not None
    reasons: list[str] = []
    undecided: list[str] = []
    failed: list[str] = []
    cand_metrics = champ_metrics = None
    if labelled:
        cand_metrics, champ_metrics, note = _labelled_metrics(
            task,
            y_true,
            cand,
            champ,
            rows=rows,
            classes=(candidate_classes, champion_classes),
            thresholds=(candidate_threshold, champion_threshold),
            positive_label=positive_label,
        )
        if note:
            reasons.append(note)

    if rows < min_rows:
        undecided.append(f"{rows} rows, fewer than the {min_rows} a verdict needs")
    if min_agreement is not None:
        line = f"agreement {agreement:.4f} {'>=' if agreement >= min_agreement else '<'} {min_agreement:g}"
        (reasons if agreement >= min_agreement else failed).append(line)
    gates = GateReport(gates=())
    if comparisons:
        if not labelled:
            undecided.append(
                f"the window has no labels: the comparison(s) on {', '.join(sorted(comparisons))} cannot be made"
            )
        else:
            gates = evaluate_gates(
                cand_metrics or {}, champion_metrics=champ_metrics, comparisons=comparisons
            )
            for g in gates.gates:
                (reasons if g.passed else failed).append(g.format())
    verdict: Verdict
    if rows < min_rows:
        verdict = "undecided"  # too few rows decide nothing, not even a failed agreement
        reasons = [*undecided, *failed, *reasons]
    elif failed:  # a large window that fails any check ends the rollout, labelled or not
        verdict = "failed"
        reasons = [*failed, *undecided, *reasons]
    elif undecided:
        verdict = "undecided"
        reasons = [*undecided, *reasons]
    else:
        verdict = "passed"
    return RolloutReport(
        verdict=verdict,
        task=task,
        rows=rows,
        labelled=labelled,
        agreement=agreement,
        agreement_rule=rule,
        candidate_summary=cand_summary,
        champion_summary=champ_summary,
        candidate_metrics=cand_metrics,
        champion_metrics=champ_metrics,
        gates=gates,
        reasons=tuple(reasons),
    )


def _output(task: str, who: str, values: Any, classes: Sequence[str] | None) -> np.ndarray:
    """One model's output as float64, checked against the task."""
    import numpy as np

    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the {who}'s output is not numeric: {exc}") from None
    if not np.isfinite(out).all():
        raise DataError(f"the {who}'s output holds NaN or infinite values")
    if task == "multiclass":
        if classes is None:
            raise DataError(f"a multiclass window needs the {who}'s classes")
        if out.ndim != 2 or out.shape[1] != len(classes):
            raise DataError(
                f"the {who}'s output has shape {out.shape}; a multiclass model of {len(classes)} "
                "classes gives one probability per class"
            )
    elif out.ndim != 1:
        raise DataError(f"the {who}'s output has shape {out.shape}; a {task} model gives one value per row")
    if task != "regression" and out.size and (out.min() < 0 or out.max() > 1):
        raise DataError(f"the {who}'s scores are not finite probabilities")
    return out


def _shares(labels: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    import numpy as np

    return {c: float(np.mean(labels == c)) for c in sort_classes(classes)}


def _labelled_metrics(
    task: str,
    y_true: Any,
    cand: np.ndarray,
    champ: np.ndarray,
    *,
    rows: int,
    classes: tuple[Sequence[str] | None, Sequence[str] | None],
    thresholds: tuple[float, float],
    positive_label: Any,
) -> tuple[dict[str, float], dict[str, float], str]:
    """Each model's metrics on the labelled window, and a note on rows left out (or "")."""
    import numpy as np
    import pandas as pd

    from airflow_mlops.metrics import compute_metrics

    labels = y_true if isinstance(y_true, pd.Series) else pd.Series(np.asarray(y_true, dtype=object))
    labels = labels.reset_index(drop=True)
    if len(labels) != rows:
        raise DataError(f"{len(labels)} label(s) for {rows} row(s) of the live window")
    if task == "regression":
        y = encode_target("regression", labels, column="target", where="the live window")
        return (
            compute_metrics(task, y, cand),
            compute_metrics(task, y, champ),
            "",
        )
    keep = np.ones(rows, dtype=bool)
    note = ""
    known = [set(c) for c in classes if c is not None]
    if known:
        keys = {value: label_key(value) for value in pd.unique(labels)}
        usable = {v: all(k in model_classes for model_classes in known) for v, k in keys.items()}
        keep = labels.map(usable).to_numpy(dtype=bool)
        if not keep.all():
            unknown = sorted({k for v, k in keys.items() if not usable[v]})
            shown = ", ".join(repr(k) for k in unknown[:10])
            note = (
                f"{int((~keep).sum())} labelled row(s) of class(es) {shown} that a model was not trained "
                "on are left out of the metrics"
            )
    kept = labels[keep].reset_index(drop=True)
    out = []
    for output, model_classes, threshold in zip((cand, champ), classes, thresholds, strict=True):
        y = _encode_classes(task, kept, model_classes, positive_label)
        out.append(compute_metrics(task, y, output[keep], threshold=threshold))
    return out[0], out[1], note


def _encode_classes(task: str, labels: Any, classes: Sequence[str] | None, positive_label: Any) -> np.ndarray:
    """Classification labels as the metrics read them (:func:`airflow_mlops.tasks.encode_target`)."""
    if classes is None:  # binary without the model's classes: the one positive-label rule
        return encode_target(
            "binary", labels, positive_label=positive_label, column="target", require_both=False
        )
    # Class indices against the model's classes: a window may hold a single class (a binary
    # window without positives is a window, not an error).
    indices = encode_target("multiclass", labels, classes=list(classes), where="the live window")
    if task == "binary":
        positive = label_key(positive_label)
        if positive not in classes:
            raise DataError(
                f"positive_label {positive_label!r} is not one of the model's classes {list(classes)}"
            )
        return indices == list(classes).index(positive)
    return indices


# -- the gate on the registry: fetch both models, judge, promote / wait / end ----------------------

#: What the gate does after a window's verdict.
Step = Literal["promote", "wait", "end"]
#: How many Airflow runs a version's undecided-window tag remembers.
MAX_RECORDED_WINDOWS = 400


def undecided_windows_tag(rollout_alias: str) -> str:
    """The model version tag listing the Airflow runs whose window left the rollout undecided."""
    return f"mlops.{rollout_alias}.undecided_windows"


def count_window(recorded: str | None, run: str) -> tuple[list[str], bool]:
    """The runs of the undecided-window tag value ``recorded`` with ``run`` added once (a retried
    task counts its window once; a malformed value starts again), and whether it was added."""
    try:
        runs = json.loads(recorded or "[]")
    except json.JSONDecodeError:
        runs = []
    runs = [str(r) for r in runs] if isinstance(runs, list) else []
    if run in runs:
        return runs, False
    return [*runs, run], True


def next_step(verdict: Verdict, windows: int, max_windows: int) -> Step:
    """The rollout's state machine: ``passed`` promotes, ``failed`` ends; ``undecided`` waits for
    the next window until ``windows`` (undecided ones, this one included) reaches ``max_windows``,
    then ends: a rollout that cannot decide never becomes champion by default."""
    if verdict == "passed":
        return "promote"
    if verdict == "undecided" and windows < max_windows:
        return "wait"
    return "end"


@dataclass(frozen=True)
class RolloutSettings:
    """What a rollout gate judges with (the spec's ``registry.rollout`` and the monitor's data)."""

    model_name: str
    alias: str
    rollout_alias: str
    target: str
    positive_label: Any = 1
    threshold: float = 0.5
    min_rows: int = 500
    min_agreement: float | None = 0.9
    max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR
    comparisons: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    max_windows: int = 7
    allowed_globals: Sequence[str] = ()
    pipeline: str | None = None


@dataclass(frozen=True)
class RolloutOutcome:
    """What one window did to the rollout. ``skipped``: why no window was judged (no rollout in
    progress, the alias moved); else ``verdict``, ``step``, and ``promotion`` when promoted."""

    skipped: str | None = None
    verdict: Verdict | None = None
    step: Step | None = None
    candidate_version: str | None = None
    report: Any = None  # the stored report's ArtifactRef
    windows: int = 0
    promotion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "verdict": self.verdict,
            "candidate_version": self.candidate_version,
            "report": self.report.to_dict(),
        }
        return {**out, "promotion": self.promotion} if self.promotion is not None else out


def incomparable(candidate: Any, champion: Any, version: str, champion_version: str) -> str:
    """Why the two models cannot be judged side by side ("" when they can). Agreement compares
    class names, so a multiclass candidate may predict other classes than its champion."""
    from airflow_mlops.training.flavors import comparison_problem

    problem = comparison_problem(candidate, champion, same_classes=False)
    if problem is None:
        return ""
    return (
        f"version {version} against the champion (version {champion_version}): {problem}; their decisions "
        "cannot be compared: promote it directly"
    )


def run_rollout_window(
    client: Any,
    settings: RolloutSettings,
    *,
    champion_version: str,
    trust: Any,
    scratch: Path,
    read_window: Callable[[], Any],
    store_report: Callable[[Path], Any],
    request_id: str,
    by: str,
    blessed_by: str,
) -> RolloutOutcome:
    """Judge the candidate on ``settings.rollout_alias`` against ``champion_version`` (the version
    the monitor served) on one live window, then act on the verdict (:func:`next_step`).

    Both models are fetched verified and scanned into ``scratch``, answer the rows
    ``read_window()`` gives, and :func:`judge_window` decides. The report (``rollout.json``, written
    under ``scratch``) is stored with ``store_report(path)`` (which returns its ``ArtifactRef``)
    before anything moves. ``passed``: the candidate is promoted with the report as evidence and
    the rollout alias removed; ``undecided``: the window is counted on the candidate version
    (once per ``request_id``) and nothing moves until ``max_windows``; ``failed`` (or too many
    undecided windows, or models that cannot be compared): the rollout alias is removed and
    :class:`~airflow_mlops.exceptions.GateFailedError` raised. Every alias move is audited
    (``by``, ``request_id``).
    """
    from airflow_mlops.exceptions import GateFailedError
    from airflow_mlops.registry import mlflow_registry as registry

    s = settings
    candidate = registry.champion_version(client, s.model_name, s.rollout_alias, pipeline=s.pipeline)
    if candidate is None:
        return RolloutOutcome(skipped=f"no {s.model_name}@{s.rollout_alias}: no rollout in progress")
    version, champion = str(candidate.version), str(champion_version)

    def end(why: str) -> GateFailedError:
        _end_rollout(client, s, version, f"rollout gate failed: {why}", request_id=request_id, by=by)
        return GateFailedError(
            f"the {s.rollout_alias} rollout of {s.model_name} version {version} ended, the champion "
            f"stays version {champion}: {why}"
        )

    if version == champion:
        _end_rollout(
            client,
            s,
            version,
            f"@{s.rollout_alias} points at the champion itself",
            request_id=request_id,
            by=by,
        )
        return RolloutOutcome(skipped=f"@{s.rollout_alias} was the champion already; the alias is removed")
    judged = _judge(client, s, version, champion, trust=trust, scratch=scratch, read_window=read_window)
    if isinstance(judged, str):
        if judged.startswith("moved:"):
            return RolloutOutcome(skipped=judged.removeprefix("moved:"))
        raise end(judged)
    report, payload = judged
    path = scratch / "rollout.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    report_ref = store_report(path)
    log.info("%s", report.summary())
    outcome = RolloutOutcome(verdict=report.verdict, candidate_version=version, report=report_ref)
    windows = 0
    if report.verdict == "undecided":
        windows = _record_undecided(client, s, version, request_id)
    step = next_step(report.verdict, windows, s.max_windows)
    if step == "promote":
        promotion = _promote(
            client,
            s,
            candidate,
            champion,
            report_ref,
            report,
            trust=trust,
            request_id=request_id,
            by=by,
            blessed_by=blessed_by,
        )
        return replace(outcome, step=step, promotion=promotion)
    if step == "wait":
        log.info(
            "Undecided (%s of %s windows): @%s stays on version %s",
            windows,
            s.max_windows,
            s.rollout_alias,
            version,
        )
        return replace(outcome, step=step, windows=windows)
    why = "; ".join(report.reasons)
    if report.verdict == "undecided":
        why = f"no verdict in {windows} windows (max_windows {s.max_windows}): {why}"
    raise end(why)


def _judge(
    client: Any,
    s: RolloutSettings,
    version: str,
    champion: str,
    *,
    trust: Any,
    scratch: Path,
    read_window: Callable[[], Any],
) -> tuple[RolloutReport, dict[str, Any]] | str:
    """The window's report and the stored payload; or why not: ``"moved:<reason>"`` when the
    alias moved meanwhile, else why the models cannot be compared."""
    from airflow_mlops.registry import mlflow_registry as registry
    from airflow_mlops.registry.evaluation import operating_threshold
    from airflow_mlops.training.flavors import load_predictor

    fetched = registry.fetch_trusted_champion(
        client,
        s.model_name,
        s.rollout_alias,
        trust,
        scratch / "candidate",
        allowed_globals=s.allowed_globals,
        pipeline=s.pipeline,
    )
    if fetched is None or fetched[0] != version:
        return f"moved:@{s.rollout_alias} moved while this task ran; the next window decides"
    # The champion version the monitor served this window, verified and scanned like the
    # candidate: both answer the same rows through the same code.
    champion_dir, _ = registry.fetch_trusted_version(
        client, s.model_name, champion, trust, scratch / "champion", allowed_globals=s.allowed_globals
    )
    predictor = load_predictor(registry.weights_dir(fetched[1]))
    incumbent = load_predictor(registry.weights_dir(champion_dir))
    why = incomparable(predictor, incumbent, version, champion)
    if why:
        return why
    window = read_window()
    candidate_threshold, _ = operating_threshold(predictor.config, s.threshold)
    champion_threshold, _ = operating_threshold(incumbent.config, s.threshold)
    labelled = s.target in window.columns and bool(window[s.target].notna().all())
    report = judge_window(
        predictor.predict_scores(window),
        incumbent.predict_scores(window),
        task=predictor.task,
        candidate_threshold=candidate_threshold,
        champion_threshold=champion_threshold,
        candidate_classes=predictor.classes or None,
        champion_classes=incumbent.classes or None,
        # the class each binary model scores (its own; the spec's for an older model)
        positive_label=predictor.positive_label if predictor.positive_label is not None else s.positive_label,
        y_true=window[s.target] if labelled else None,
        min_rows=s.min_rows,
        min_agreement=s.min_agreement,
        max_relative_error=s.max_relative_error,
        comparisons=s.comparisons,
    )
    payload = {
        **report.to_dict(),
        "model_name": s.model_name,
        "candidate_version": version,
        "champion_version": champion,
        "candidate_model": predictor.describe(),
        "champion_model": incumbent.describe(),
        **(
            {"candidate_threshold": candidate_threshold, "champion_threshold": champion_threshold}
            if predictor.task == "binary"
            else {}
        ),
        "rollout_alias": s.rollout_alias,
    }
    return report, payload


def _record_undecided(client: Any, s: RolloutSettings, version: str, run: str) -> int:
    """Count this window as undecided on the candidate version (once per run); how many so far."""
    key = undecided_windows_tag(s.rollout_alias)
    runs, added = count_window((client.get_model_version(s.model_name, version).tags or {}).get(key), run)
    if added:
        client.set_model_version_tag(s.model_name, version, key, json.dumps(runs[-MAX_RECORDED_WINDOWS:]))
    return len(runs)


def _promote(
    client: Any,
    s: RolloutSettings,
    candidate: Any,
    champion: str,
    report_ref: Any,
    report: RolloutReport,
    *,
    trust: Any,
    request_id: str,
    by: str,
    blessed_by: str,
) -> dict[str, Any]:
    """Promote the candidate with the window's report as its evidence, then drop the rollout alias."""
    from airflow_mlops.registry.mlflow_registry import TAG_MODEL_SHA256
    from airflow_mlops.registry.promotion import Blessing, promote_version, remove_alias

    version = str(candidate.version)
    blessing = Blessing(
        model_sha256=str((candidate.tags or {}).get(TAG_MODEL_SHA256)),
        passed=True,
        compared=True,
        champion_version=champion,
        report={"uri": report_ref.uri, "sha256": report_ref.sha256},
        by=blessed_by,
        evidence="rollout",
    )
    result = promote_version(
        client,
        model_name=s.model_name,
        version=version,
        alias=s.alias,
        trust=trust,
        allowed_globals=s.allowed_globals,
        request_id=request_id,
        by=by,
        reason=f"{s.rollout_alias} rollout gate passed: " + "; ".join(report.reasons),
        blessing=blessing,
    )
    remove_alias(
        client,
        model_name=s.model_name,
        alias=s.rollout_alias,
        expected_version=version,
        by=by,
        reason=f"promoted to @{s.alias}",
        request_id=request_id,
    )
    log.info("Version %s passed its %s rollout: now @%s", version, s.rollout_alias, s.alias)
    return result.to_dict()


def _end_rollout(
    client: Any, s: RolloutSettings, version: str, why: str, *, request_id: str, by: str
) -> None:
    """Remove the rollout alias from ``version`` (unless it moved meanwhile), audited with ``why``."""
    from airflow_mlops.registry.promotion import remove_alias

    removed = remove_alias(
        client,
        model_name=s.model_name,
        alias=s.rollout_alias,
        expected_version=version,
        by=by,
        reason=why,
        request_id=request_id,
    )
    log.warning(
        "Ended the %s rollout of version %s (%s): %s",
        s.rollout_alias,
        version,
        "alias removed" if removed else "the alias had moved already",
        why,
    )


def promotion_target(
    client: Any, model_name: str, alias: str, rollout_alias: str | None, *, pipeline: str | None = None
) -> str:
    """The alias a promotion moves: the rollout alias when there is one and the champion alias is
    set (the candidate rolls out beside the champion); else the champion alias (with no champion
    yet the first model becomes champion directly: there is nothing to shadow)."""
    if not rollout_alias:
        return alias
    from airflow_mlops.registry.mlflow_registry import champion_version

    if champion_version(client, model_name, alias, pipeline=pipeline):
        return rollout_alias
    log.info("No @%s yet: the first model becomes champion directly", alias)
    return alias
