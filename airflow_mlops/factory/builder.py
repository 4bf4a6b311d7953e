"""Spec -> Airflow DAGs. Imports only light modules: parsing a dags folder stays fast."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, TaskGroup

from airflow_mlops.factory.training import build_training
from airflow_mlops.operators.data import DataValidateOperator, PoisoningScreenOperator
from airflow_mlops.operators.model import ModelEvaluateOperator, ModelScanOperator, ModelSignOperator
from airflow_mlops.operators.monitor import ChampionScoreOperator, DriftDetectOperator, DriftEventEmitOperator
from airflow_mlops.operators.registry import ModelPromoteOperator, ModelRegisterOperator, approval_operator
from airflow_mlops.operators.rollout import RolloutGateOperator
from airflow_mlops.spec.loader import date_to_datetime
from airflow_mlops.spec.models import MONITOR_REFERENCE_KEYWORDS, PIPELINE_EVENTS

if TYPE_CHECKING:
    from airflow_mlops.spec.models import PipelineSpec

log = logging.getLogger(__name__)


def _out(task: Any, key: str) -> Any:
    """The XCom ``key`` of an upstream lifecycle task (they push each returned key separately)."""
    return task.output[key]


def resolve_location(value: str | None, base: Path | None) -> str | None:
    """A relative local path in a spec is relative to the spec file's folder."""
    if value is None or base is None or "://" in value or value.startswith(("/", "~", "{{")):
        return value
    return str((base / value).resolve()) if "{{" not in value else str(base.resolve() / value)


BUILTIN_TASK_SETTINGS: dict[str, Any] = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
    "execution_timeout": dt.timedelta(hours=2),
}


def _callbacks(notify: Any) -> dict[str, Any]:
    """Airflow ``on_*_callback`` arguments from a ``notify`` block (notifiers are instantiated)."""
    from airflow_mlops.spec.checks import resolve_entrypoint

    out: dict[str, Any] = {}
    if notify is None:
        return out
    for event in ("on_failure", "on_retry", "on_success"):
        items = getattr(notify, event)
        if items:
            out[f"{event}_callback"] = [resolve_entrypoint(i.notifier)(**i.args) for i in items]
    return out


def task_settings(spec: PipelineSpec, stage: str | None, extra: Any = None) -> dict[str, Any]:
    """Effective task arguments: built-in < folder defaults < spec defaults < stage (< step)."""
    stages: dict[Any, Any] = dict(spec.stages)
    layers = [spec.defaults, stages.get(stage) if stage else None, extra]
    merged: dict[str, Any] = dict(BUILTIN_TASK_SETTINGS)
    for layer in layers:
        if layer is not None:
            merged.update({k: getattr(layer, k) for k in layer.model_fields_set})
    notify = merged.pop("notify", None)
    args = {k: v for k, v in merged.items() if v is not None}
    args.update(_callbacks(notify))
    return args


def build_schedule(
    spec: PipelineSpec, base: Path | None = None, allowed_roots: list[str] | None = None
) -> Any:
    """Airflow ``schedule`` for the spec: a data-interval timetable, assets, or both.

    Time schedules (cron, presets, intervals) become *data-interval* timetables: the run for
    ``2026-01-01`` with ``@daily`` covers ``[2026-01-01, 2026-01-02)``, starts once that day is
    over, and ``{{ ds }}`` / ``{{ data_interval_start }}`` name the partition it trains on. That
    is what a training pipeline over dated partitions needs, and it makes every backfilled run
    read its own partition. (Airflow 3's default for a bare cron string is a *trigger* timetable
    whose run for a day starts at midnight, before that day's data exists.) ``@once`` and
    ``@continuous`` are passed through.
    """
    from airflow_mlops.spec.models import ScheduleConfig

    value = spec.schedule
    if not isinstance(value, ScheduleConfig):
        return time_timetable(value)
    from airflow.sdk import Asset, AssetAny, AssetOrTimeSchedule

    assets = [
        _event_asset(spec, e, base, allowed_roots) if e in PIPELINE_EVENTS else Asset(e) for e in value.events
    ]
    condition = assets[0] if len(assets) == 1 else AssetAny(*assets)
    timetable = time_timetable(value.time)
    if timetable is None:
        return condition
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


def time_timetable(value: str | None) -> Any:
    """The data-interval timetable for a cron expression, preset or interval (``6h``)."""
    from airflow_mlops.spec.models import parse_duration

    if value is None or value in ("@once", "@continuous"):
        return value
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    if not value.startswith("@"):
        try:
            return DeltaDataIntervalTimetable(parse_duration(value))
        except ValueError:
            pass  # a cron expression
    return CronDataIntervalTimetable(value, timezone="UTC")  # presets map to their cron


_TIME_MEANING = {"@once": "a single run", "@continuous": "a new run as soon as the last one ends"}


def describe_schedule(spec: PipelineSpec, *, explain: bool = False) -> str:
    """The spec's (training) schedule in words, for the DAG's doc and ``spec render``.

    ``explain`` adds what Airflow does with a time schedule (see :func:`build_schedule`).
    """
    return describe_schedule_value(spec.schedule, explain=explain)


def describe_schedule_value(value: Any, *, explain: bool = False) -> str:
    """A schedule (a time string, a ``ScheduleConfig`` or None) in words; see :func:`describe_schedule`."""
    if value is None:
        return "manual runs only"
    time, events = (value, []) if isinstance(value, str) else (value.time, value.events)
    parts = []
    if time is not None:
        meaning = _TIME_MEANING.get(time, "one run per data interval, UTC")
        parts.append(f"`{time}` ({meaning})" if explain else f"`{time}`")
    parts += [f"asset event `{e}`" for e in events]
    return " or ".join(parts)


def _event_asset(
    spec: PipelineSpec, event: str, base: Path | None = None, allowed_roots: list[str] | None = None
) -> Any:
    """The pipeline's own ``drift`` / ``new_data`` asset; ``new_data`` carries its watcher if the spec
    says where batches land (the triggerer then polls it and emits the events)."""
    watch = spec.data.new_data
    if event != "new_data" or watch is None:
        return pipeline_asset(spec.pipeline, event)
    from airflow_mlops.triggers.new_data import new_data_asset

    root = resolve_location(spec.artifacts.root, base)
    return new_data_asset(
        spec.pipeline,
        location=resolve_location(watch.location, base) or watch.location,
        pattern=watch.pattern,
        poll_interval=watch.poll_interval.total_seconds(),
        settle_seconds=watch.settle.total_seconds(),
        state_uri=watermark_location(spec.pipeline, root),
        aws_conn_id=spec.artifacts.connection,
        allowed_roots=allowed_roots,
    )


def watermark_location(pipeline: str, artifact_root: str | None) -> str:
    """Where a pipeline's new-data watermark is kept: beside its artifacts, in ``_state/``."""
    from airflow_mlops.artifacts import default_artifact_root

    root = (artifact_root or default_artifact_root()).rstrip("/")
    return f"{root}/{pipeline}/_state"


def pipeline_asset(pipeline: str, event: str) -> Any:
    """The asset a pipeline's own events update: ``x-mlops://<pipeline>/<event>``."""
    from airflow.sdk import Asset

    return Asset(uri=f"x-mlops://{pipeline}/{event}", name=f"{pipeline}__{event}", group="mlops")


def build_deadline(spec: PipelineSpec) -> Any:
    if spec.deadline is None:
        return None
    from airflow.sdk.definitions.callback import AsyncCallback, SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    d = spec.deadline
    reference = (
        DeadlineReference.DAGRUN_QUEUED_AT
        if d.reference == "queued_at"
        else DeadlineReference.DAGRUN_LOGICAL_DATE
    )
    path = d.callback.replace(":", ".")
    callback = (
        AsyncCallback(path, kwargs=d.kwargs) if d.mode == "async" else SyncCallback(path, kwargs=d.kwargs)
    )
    return DeadlineAlert(
        reference=reference, interval=d.after, callback=callback, name=f"{spec.pipeline} run is late"
    )


def _doc_md(spec: PipelineSpec, source: str | None) -> str:
    lines = [f"# {spec.pipeline}: training lifecycle", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [
        "validate data → screen for poisoning → train → scan → evaluate → sign → register → promote",
        "",
        f"- **Data**: `{spec.data.source}` (target `{spec.data.target}`)",
        f"- **Validation**: {len(spec.validation.expectations)} expectation(s)"
        + (
            ", plus ones inferred from the reference"
            if spec.data.reference and spec.validation.infer_from_reference
            else ""
        )
        + f"; on failure: {spec.validation.on_failure}",
        f"- **Poisoning screens**: {', '.join(spec.poisoning.checks)}; stop above "
        f"{spec.poisoning.max_suspect_fraction:.2%} suspect rows (suspects are quarantined, never dropped)",
        f"- **Task**: {_task_line(spec)}",
        f"- **Training**: {spec.training.model} on `{spec.training.backend}`, "
        f"holdout {spec.training.holdout_fraction:.0%}",
    ]
    gates = [
        f"`{m}` "
        + " and ".join(
            f"{'≥' if k == 'min' else '≤'} {v}" for k, v in (("min", b.min), ("max", b.max)) if v is not None
        )
        for m, b in spec.evaluation.metrics.items()
    ]
    gates += [
        f"`{m}` at most {c.max_regression} below the champion"
        for m, c in spec.evaluation.compare_to_champion.items()
    ]
    gates += _holdout_check_gates(spec)
    lines.append("- **Gates**: " + ("; ".join(gates) if gates else "none configured"))
    when = describe_schedule(spec)
    lines.insert(
        2, f"**Runs on**: {when}" + (" (catchup: one run per data interval)" if spec.catchup else "") + "\n"
    )
    policy = getattr(spec.schedule, "policy", None)
    if policy is not None:
        from airflow_mlops.retrain.policy import RetrainPolicy

        lines.append(
            f"- **Retrain policy** (`retrain.gate`): {RetrainPolicy.from_mapping(policy.model_dump()).describe()}"
        )
    if spec.steps:
        lines.append(
            "- **Steps of your own**: "
            + ", ".join(f"`{s.id}` after {', '.join(s.after) or 'start'}" for s in spec.steps)
        )
    lines += [
        f"- **Security**: every model file scanned; signed with the key in connection "
        f"`{spec.security.signing.connection}`; promotion re-verifies the signature",
        f"- **Registry**: MLflow model `{spec.registry.model_name}`, alias `@{spec.registry.alias}`",
    ]
    if source:
        lines += ["", f"Generated by airflow-mlops from `{source}`."]
    return "\n".join(lines)


def _task_line(spec: PipelineSpec) -> str:
    """The task as the DAG doc states it: named, implied by the spec, or left to the data."""
    if spec.task is not None:
        return f"{spec.task} (from the spec's `task`)"
    hint = spec.task_hint
    if hint is not None:
        return f"{hint} (implied by the spec's metrics / model)"
    return "inferred from the target column at run time (binary, multiclass or regression)"


def _holdout_check_gates(spec: PipelineSpec) -> list[str]:
    """The fairness and robustness gates, one phrase each, for the DAG docs."""
    from airflow_mlops.metrics import LOWER_IS_BETTER
    from airflow_mlops.registry.robustness import perturbation_label

    phrases: list[str] = []
    fairness, robustness = spec.evaluation.fairness, spec.evaluation.robustness
    if fairness is not None:
        for entry in fairness.slices:
            by = entry if isinstance(entry, str) else f"{entry.column} (bins {entry.bins})"
            phrases += [f"`{m}` gap across `{by}` slices ≤ {g.max_gap}" for m, g in fairness.metrics.items()]
    if robustness is not None:
        for perturbation in robustness.perturbations:
            label = perturbation_label(perturbation.model_dump())
            phrases += [
                f"`{m}` at most {d.max_drop} {'above' if m in LOWER_IS_BETTER else 'below'} clean under {label}"
                for m, d in robustness.metrics.items()
            ]
    return phrases


def build_train_dag(
    spec: PipelineSpec, *, spec_path: str | Path | None = None, allowed_roots: list[str] | None = None
) -> DAG:
    """Build the ``<pipeline>__train`` DAG for a validated spec.

    ``allowed_roots``: the roots the spec was checked against; its tasks check every location
    they read against them again when they run (see :mod:`airflow_mlops.allowed_roots`).
    """
    base = Path(spec_path).resolve().parent if spec_path else None
    source = resolve_location(spec.data.source, base) or spec.data.source
    reference = resolve_location(spec.data.reference, base)
    root = resolve_location(spec.artifacts.root, base)
    default_args: dict[str, Any] = {"owner": spec.owner}
    common: dict[str, Any] = {
        "pipeline": spec.pipeline,
        "artifact_root": root,
        "aws_conn_id": spec.artifacts.connection,
        "allowed_roots": allowed_roots,
    }

    def stage(name: str) -> dict[str, Any]:
        return {**common, **task_settings(spec, name)}

    columns = [*spec.data.features, spec.data.target] if spec.data.features else None
    registry = spec.registry

    with DAG(
        dag_id=spec.train_dag_id,
        description=spec.description or f"Training lifecycle of {spec.pipeline}",
        schedule=build_schedule(spec, base, allowed_roots),
        start_date=date_to_datetime(spec.start_date),
        catchup=spec.catchup,
        tags=sorted({"mlops", *spec.tags}),
        default_args=default_args,
        doc_md=_doc_md(spec, str(spec_path) if spec_path else None),
        max_active_runs=spec.max_active_runs,
        dagrun_timeout=spec.dagrun_timeout,
        deadline=build_deadline(spec),
        auto_register=False,  # only build_dags' result is a DAG: never a half-built one
    ) as dag:
        gate = _retrain_gate(spec, {**common, **task_settings(spec, None)})
        with TaskGroup("data", tooltip="Validate the batch, then screen it for poisoning"):
            validate = DataValidateOperator(
                task_id="validate",
                source=source,
                data_format=spec.data.format,
                expectations=[dict(e) for e in spec.validation.expectations],
                event_source=resolve_location(spec.data.event_source, base),
                reference=reference,
                infer_from_reference=spec.validation.infer_from_reference,
                columns=columns,
                on_failure=spec.validation.on_failure,
                target=spec.data.target,
                **stage("validate"),
            )
            if gate is not None:
                gate >> validate
            screen = PoisoningScreenOperator(
                task_id="screen",
                data=_out(validate, "data"),
                target=spec.data.target,
                features=spec.data.features,
                checks=list(spec.poisoning.checks),
                max_suspect_fraction=spec.poisoning.max_suspect_fraction,
                neighbours=spec.poisoning.neighbours,
                outlier_threshold=spec.poisoning.outlier_threshold,
                max_class_shift=spec.poisoning.max_class_shift,
                max_feature_shift=spec.poisoning.max_feature_shift,
                folds=spec.poisoning.folds,
                max_fit_rows=spec.poisoning.max_fit_rows,
                seed=spec.poisoning.seed,
                reference=reference,
                positive_label=spec.data.positive_label,
                task=spec.task_hint,
                **stage("screen"),
            )
        with TaskGroup(
            "training",
            tooltip=f"Prepare the split and the job, fit on the {spec.training.backend} backend, "
            "package for MLflow and log the run",
        ):
            # prepare -> fit (local subprocess, Kubernetes pod or Docker container) -> package;
            # `train` is the package task, whose outputs the gates read.
            train = build_training(
                spec,
                base=base,
                data=_out(screen, "accepted"),
                settings=stage("train"),
                # logged as MLflow dataset inputs of the training run (lineage)
                datasets={
                    "input": _out(validate, "data"),
                    "accepted": _out(screen, "accepted"),
                    "quarantine": _out(screen, "quarantine"),
                },
            )
        with TaskGroup(
            "gates", tooltip="Scan the model, then evaluate it against thresholds and the champion"
        ):
            scan = ModelScanOperator(
                task_id="scan",
                model=_out(train, "model"),
                allowed_globals=list(spec.security.allowed_pickle_globals),
                **stage("scan"),
            )
            evaluate = ModelEvaluateOperator(
                task_id="evaluate",
                model=_out(scan, "model"),
                holdout=_out(train, "holdout"),
                target=spec.data.target,
                positive_label=spec.data.positive_label,
                bounds={m: b.model_dump() for m, b in spec.evaluation.metrics.items()},
                compare_to_champion={
                    m: c.model_dump() for m, c in spec.evaluation.compare_to_champion.items()
                },
                # Each model is scored at the threshold stored with it; this is for older models.
                threshold=spec.evaluation.threshold.fallback,
                fairness=spec.evaluation.fairness.model_dump() if spec.evaluation.fairness else None,
                robustness=spec.evaluation.robustness.model_dump() if spec.evaluation.robustness else None,
                model_name=registry.model_name,
                alias=registry.alias,
                mlflow_run_id=_out(train, "mlflow_run_id"),
                mlflow_conn_id=registry.connection,
                signing_conn_id=spec.security.signing.connection,
                signing_method=spec.security.signing.method,
                allowed_globals=list(spec.security.allowed_pickle_globals),  # for the champion's scan
                # training.watermark: the candidate must carry it (the key from this connection)
                watermark_conn_id=(
                    spec.training.watermark.key_connection
                    if spec.training.watermark and spec.training.watermark.enabled
                    else None
                ),
                **stage("evaluate"),
            )
        with TaskGroup("release", tooltip="Sign, register and promote; promotion re-verifies the signature"):
            sign = ModelSignOperator(
                task_id="sign",
                model=_out(scan, "model"),
                evaluation=_out(evaluate, "report"),
                blessing=_out(evaluate, "blessing"),
                model_name=registry.model_name,
                training_data=_out(screen, "accepted"),
                holdout=_out(train, "holdout"),
                train_metrics=_out(train, "train_metrics"),
                training={
                    "backend": spec.training.backend,
                    "model": spec.training.model,
                    "image": spec.training.image,
                    "params": spec.training.hyperparameters(),
                    "seed": spec.training.seed,
                    **_federation(spec),
                },
                signing_conn_id=spec.security.signing.connection,
                signing_method=spec.security.signing.method,
                **stage("sign"),
            )
            evaluate >> sign
            register = ModelRegisterOperator(
                task_id="register",
                model=_out(sign, "model"),
                signature=_out(sign, "signature"),
                model_name=registry.model_name,
                mlflow_run_id=_out(train, "mlflow_run_id"),
                gates_passed=_out(evaluate, "passed"),
                key_fingerprint=_out(sign, "key_fingerprint"),
                training_data=_out(screen, "accepted"),
                blessing=_out(evaluate, "blessing"),
                attestation=_out(sign, "attestation"),
                mlbom=_out(sign, "mlbom"),
                mlbom_attestation=_out(sign, "mlbom_attestation"),
                description=spec.description,
                mlflow_conn_id=registry.connection,
                **stage("register"),
            )
            rollout = registry.rollout
            approve = None
            if registry.approval is not None:
                approve = approval_operator(
                    task_id="approve",
                    model_name=registry.model_name,
                    alias=registry.alias,
                    rollout_alias=rollout.rollout_alias,
                    version=_out(register, "version"),
                    metrics=_out(evaluate, "metrics"),
                    note=_out(evaluate, "note"),
                    subject=registry.approval.subject,
                    timeout=registry.approval.timeout,
                    assigned_users=registry.approval.assigned_users,
                    owner=spec.owner,
                )
            ModelPromoteOperator(
                task_id="promote",
                model_name=registry.model_name,
                version=_out(register, "version"),
                gates_passed=_out(evaluate, "passed"),
                alias=registry.alias,
                rollout_alias=rollout.rollout_alias,
                traffic_share=rollout.traffic_share,
                approval=approve.output if approve is not None else None,
                allowed_globals=list(spec.security.allowed_pickle_globals),
                mlflow_conn_id=registry.connection,
                signing_conn_id=spec.security.signing.connection,
                signing_method=spec.security.signing.method,
                **stage("promote"),
            )
        tasks = {t.task_id: t for t in dag.tasks}
        for index, step in enumerate(spec.steps):
            from airflow_mlops.spec.checks import resolve_entrypoint
            from airflow_mlops.spec.sections.base import STAGE_TASK_IDS

            operator = resolve_entrypoint(step.operator)
            try:
                task = operator(task_id=step.id, **{**task_settings(spec, None, step.settings), **step.args})
            except Exception as exc:  # the operator rejects its arguments: name the step
                from airflow_mlops.exceptions import SpecError, SpecIssue

                issue = SpecIssue(
                    str(spec_path or "<spec>"),
                    None,
                    None,
                    f"steps[{index}].args",
                    f"{step.operator} rejected the arguments of step {step.id!r}: {type(exc).__name__}: {exc}",
                    hint="check `args` against the operator's parameters; the spec yields no DAG until then",
                )
                raise SpecError([issue]) from exc
            tasks[step.id] = task
        for step in spec.steps:
            for ref in step.after:
                tasks[STAGE_TASK_IDS.get(ref, ref)] >> tasks[step.id]
    return dag


def _retrain_gate(spec: PipelineSpec, settings: dict[str, Any]) -> Any:
    """``retrain.gate``, the first task, when the schedule has a retrain ``policy`` (else None);
    with ``policy.force: approval`` followed by ``retrain.force`` (the last one is returned)."""
    from airflow_mlops.spec.models import ScheduleConfig

    schedule = spec.schedule
    if not isinstance(schedule, ScheduleConfig) or schedule.policy is None:
        return None
    from airflow_mlops.operators.retrain_gate import RetrainGateOperator
    from airflow_mlops.retrain.policy import RETRAIN_FORCE_TASK_ID, RETRAIN_GATE_TASK_ID

    with TaskGroup(
        RETRAIN_GATE_TASK_ID.split(".", 1)[0],
        tooltip="Admit or suppress the events that started this run (schedule.policy)",
    ):
        policy = schedule.policy.model_dump()
        policy.update(
            cooldown=policy["cooldown"].total_seconds(), debounce=policy["debounce"].total_seconds()
        )
        gate = RetrainGateOperator(
            task_id=RETRAIN_GATE_TASK_ID.split(".", 1)[1],
            policy=policy,
            model_name=spec.registry.model_name,
            force_approval=schedule.policy.force == "approval",
            **settings,
        )
        if schedule.policy.force != "approval":
            return gate
        from airflow_mlops.operators.retrain_gate import RetrainForceOperator

        force = RetrainForceOperator(
            task_id=RETRAIN_FORCE_TASK_ID.split(".", 1)[1],
            gate_task_id=gate.task_id,
            aws_conn_id=spec.artifacts.connection,
            response_timeout=schedule.policy.force_timeout,
            assigned_users=[{"id": u, "name": u} for u in spec.registry.approval.assigned_users]
            if spec.registry.approval is not None and spec.registry.approval.assigned_users
            else None,
            owner=spec.owner,
        )
        gate >> force
        return force


def _monitor_doc_md(spec: PipelineSpec, source: str | None) -> str:
    m = spec.monitoring
    assert m is not None
    d = m.drift
    on_drift = (
        f"emits `x-mlops://{spec.pipeline}/drift`"
        + (
            f", which starts `{spec.train_dag_id}`"
            if _listens_to_drift(spec)
            else " (no DAG of this spec listens to it)"
        )
        if m.on_drift == "retrain"
        else "fails the emit task (alert), no retraining"
    )
    lines = [
        f"# {spec.pipeline}: monitoring",
        "",
        f"**Runs on**: {describe_schedule_value(m.schedule, explain=True)}",
        "",
        "score the live window with the champion (verified, scanned) → drift and data-quality checks → "
        "reports → drift event",
        "",
        f"- **Live window**: `{m.source}`; reference: {m.reference}",
        f"- **Model**: MLflow `{spec.registry.model_name}@{spec.registry.alias}`; predictions stored per window",
        f"- **Tests**: numeric {', '.join(d.numeric_tests)}; categorical {', '.join(d.categorical_tests)}; "
        f"p < {d.p_value} ({d.correction}); data set drift when ≥ {d.drift_share:.0%} of features drifted"
        + (f"; MMD ({d.mmd_permutations} permutations)" if d.multivariate else ""),
        f"- **Data quality**: null rate +{m.quality.max_null_rate_increase:.0%}, new categories "
        f"{m.quality.max_new_category_share:.0%}, at least {m.quality.min_rows} rows (an alarm fails the run; "
        "no retraining)",
        f"- **Beyond the reference's range** (over {m.quality.max_out_of_range_share:.0%} of a feature's values): "
        + {
            "drift": "drift of that feature (`out_of_range: drift`)",
            "alarm": "a data-quality alarm (`out_of_range: alarm`)",
            "both": "drift of that feature and a data-quality alarm (`out_of_range: both`)",
        }[m.out_of_range],
        f"- **On drift**: {on_drift}",
    ]
    if m.performance:
        lines.append(
            "- **Performance (labelled windows)**: "
            + ", ".join(
                f"`{k}` may be {v.max_drop} worse than its evaluation" for k, v in m.performance.items()
            )
        )
    if source:
        lines += ["", f"Generated by airflow-mlops from `{source}`."]
    return "\n".join(lines)


def _listens_to_drift(spec: PipelineSpec) -> bool:
    from airflow_mlops.spec.models import ScheduleConfig

    return isinstance(spec.schedule, ScheduleConfig) and "drift" in spec.schedule.events


def build_monitor_dag(
    spec: PipelineSpec, *, spec_path: str | Path | None = None, allowed_roots: list[str] | None = None
) -> DAG:
    """Build the ``<pipeline>__monitor`` DAG of a spec with a ``monitoring`` section.

    ``monitor.score`` (batch inference with the verified champion) → ``monitor.detect`` (drift,
    data quality, reports, MLflow) → ``monitor.emit_drift`` (the ``drift`` asset event; skipped
    when there is no drift).
    """
    m = spec.monitoring
    if m is None:
        raise ValueError(f"spec {spec.pipeline} has no monitoring section")
    base = Path(spec_path).resolve().parent if spec_path else None
    registry = spec.registry
    common: dict[str, Any] = {
        "pipeline": spec.pipeline,
        "artifact_root": resolve_location(spec.artifacts.root, base),
        "aws_conn_id": spec.artifacts.connection,
        "allowed_roots": allowed_roots,
        **task_settings(spec, None, m.settings),
    }
    reference = m.reference
    if reference not in MONITOR_REFERENCE_KEYWORDS:
        reference = resolve_location(reference, base) or reference
    drift = m.drift
    settings = {
        "numeric_tests": list(drift.numeric_tests),
        "categorical_tests": list(drift.categorical_tests),
        "p_value": drift.p_value,
        "correction": drift.correction,
        "drift_share": drift.drift_share,
        "psi_threshold": drift.psi_threshold,
        "wasserstein_threshold": drift.wasserstein_threshold,
        "jensen_shannon_threshold": drift.jensen_shannon_threshold,
        "multivariate": drift.multivariate,
        "mmd_permutations": drift.mmd_permutations,
        "mmd_max_rows": drift.mmd_max_rows,
        "mmd_p_value": drift.mmd_p_value,
        "seed": spec.training.seed,
        **m.quality.model_dump(),
    }
    with (
        DAG(
            dag_id=spec.monitor_dag_id,
            description=f"Drift and data-quality monitoring of {spec.pipeline}",
            schedule=time_timetable(m.schedule),
            start_date=date_to_datetime(spec.start_date),
            catchup=False,
            tags=sorted({"mlops", "monitoring", *spec.tags}),
            default_args={"owner": spec.owner},
            doc_md=_monitor_doc_md(spec, str(spec_path) if spec_path else None),
            max_active_runs=1,
            auto_register=False,
        ) as dag,
        TaskGroup("monitor", tooltip="Score the live window, test it for drift, emit the drift event"),
    ):
        score = ChampionScoreOperator(
            task_id="score",
            source=resolve_location(m.source, base) or m.source,
            data_format=m.format,
            target=spec.data.target,
            features=spec.data.features,
            model_name=registry.model_name,
            alias=registry.alias,
            reference=reference,
            data_reference=resolve_location(spec.data.reference, base),
            max_reference_rows=m.max_reference_rows,
            positive_label=spec.data.positive_label,
            threshold=spec.evaluation.threshold.fallback,  # for a champion that stores none
            allowed_globals=list(spec.security.allowed_pickle_globals),
            seed=spec.training.seed,
            mlflow_conn_id=registry.connection,
            signing_conn_id=spec.security.signing.connection,
            signing_method=spec.security.signing.method,
            **common,
        )
        detect = DriftDetectOperator(
            task_id="detect",
            predictions=_out(score, "predictions"),
            reference=_out(score, "reference"),
            features=_out(score, "features"),
            target=spec.data.target,
            model_name=registry.model_name,
            champion_version=_out(score, "champion_version"),
            champion_metrics=_out(score, "champion_metrics"),
            settings=settings,
            performance={k: v.max_drop for k, v in m.performance.items()},
            prediction_drift=m.prediction_drift,
            positive_label=spec.data.positive_label,
            task=_out(score, "task"),
            classes=_out(score, "classes"),
            threshold=_out(score, "threshold"),
            out_of_range=m.out_of_range,
            history=m.history,
            calibration=_out(score, "calibration"),
            estimation=m.estimation.model_dump() if m.estimation else None,
            experiment=registry.experiment or spec.pipeline,
            mlflow_conn_id=registry.connection,
            **common,
        )
        DriftEventEmitOperator(
            task_id="emit_drift",
            asset=pipeline_asset(spec.pipeline, "drift"),
            drifted=_out(detect, "drifted"),
            reasons=_out(detect, "reasons"),
            drifted_features=_out(detect, "drifted_features"),
            report=_out(detect, "report"),
            html=_out(detect, "html"),
            window=_out(score, "window"),
            labelled=_out(score, "labelled"),
            champion_version=_out(score, "champion_version"),
            on_drift=m.on_drift,
            estimated_performance=_out(detect, "estimated_performance"),
            retrain_on=m.estimation.retrain_on if m.estimation else "drift",
            **common,
        )
        rollout = registry.rollout
        if rollout.rollout_alias is not None:
            RolloutGateOperator(
                task_id="rollout",
                predictions=_out(score, "predictions"),
                champion_version=_out(score, "champion_version"),
                model_name=registry.model_name,
                alias=registry.alias,
                rollout_alias=rollout.rollout_alias,
                target=spec.data.target,
                positive_label=spec.data.positive_label,
                threshold=0.5,
                min_rows=rollout.gate.min_rows,
                min_agreement=rollout.gate.min_agreement,
                max_relative_error=rollout.gate.max_relative_error,
                compare_to_champion={m: c.model_dump() for m, c in rollout.gate.compare_to_champion.items()},
                max_windows=rollout.gate.max_windows,
                allowed_globals=list(spec.security.allowed_pickle_globals),
                mlflow_conn_id=registry.connection,
                signing_conn_id=spec.security.signing.connection,
                signing_method=spec.security.signing.method,
                **common,
            )
    return dag


def build_dags(
    spec: PipelineSpec, *, spec_path: str | Path | None = None, allowed_roots: list[str] | None = None
) -> dict[str, DAG]:
    """Every DAG a spec describes, by dag id: the training lifecycle and, with a ``monitoring``
    section, the monitor. All or nothing: when one fails to build, the exception propagates and
    no DAG of the spec exists anywhere (the DAGs are not auto-registered with Airflow's DAG
    context, so a half-built one cannot reach the DAG bag; put the result into your DAG file's
    ``globals()``). ``allowed_roots``: see :func:`build_train_dag`."""
    dags = [build_train_dag(spec, spec_path=spec_path, allowed_roots=allowed_roots)]
    if spec.monitoring is not None:
        dags.append(build_monitor_dag(spec, spec_path=spec_path, allowed_roots=allowed_roots))
    return {dag.dag_id: dag for dag in dags}


def _federation(spec: Any) -> dict[str, Any]:
    """The ML-BOM's federation facts (``training.backend: federated``): connection, data, rounds."""
    if spec.training.backend != "federated":
        return {}
    fed = spec.training.federated_settings
    return {
        "federation": f"local: {fed.local_nodes} SuperNodes on the worker (data: partitions)"
        if fed.local_nodes
        else f"flower connection {fed.connection} (data: {fed.data})",
        "federated_rounds": fed.rounds,
        "federated_strategy": fed.strategy,
    }
