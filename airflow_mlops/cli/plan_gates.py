"""The gates of ``airflow-mlops plan``: every stage a new version passes, in the order the factory
wires them, with what each checks and its thresholds (read from the validated spec models).

The order is :data:`airflow_mlops.spec.sections.base.STAGE_TASK_IDS`, the stages and task ids the
factory builds (``tests/unit/cli/test_plan_gates.py`` builds the DAG and checks it runs them in
this order); the approval, when the spec asks for one, comes right before the promotion, as the
factory wires ``release.approve``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

TITLES = {
    "validate": "data validation",
    "screen": "poisoning screen",
    "train": "training",
    "scan": "model scan",
    "evaluate": "evaluation gates",
    "sign": "signing",
    "register": "registration",
    "approve": "human approval",
    "promote": "promotion",
}
APPROVE_TASK_ID = "release.approve"


def value_text(value: Any) -> str:
    """A spec value as a spec would write it: ``30m``, ``true``, ``null``, ``[a, b]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def duration_text(value: dt.timedelta) -> str:
    """``1d``, ``6h``, ``90s``, ``1h30m``: the largest units that are exact."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def check(kind: str, text: str, **params: Any) -> dict[str, Any]:
    """One check of a gate (or of the monitor): `check` names its kind, `text` says it in words, the
    rest are its settings."""
    return {"check": kind, "text": text, **params}


# --- the gates ---------------------------------------------------------------------------------


def stage_order(spec: Any) -> list[tuple[str, str]]:
    """``(stage, task id)`` in run order: the factory's stages, with the approval before the
    promotion when the spec asks for one."""
    from airflow_mlops.spec.sections.base import STAGE_TASK_IDS

    order: list[tuple[str, str]] = []
    for stage, task_id in STAGE_TASK_IDS.items():
        if stage == "promote" and spec.registry.approval is not None:
            order.append(("approve", APPROVE_TASK_ID))
        order.append((stage, task_id))
    return order


def gates(spec: Any) -> list[dict[str, Any]]:
    """Every stage a new version passes, in run order, with what it checks and its thresholds."""
    builders = {
        "validate": _validate,
        "screen": _screen,
        "train": _train,
        "scan": _scan,
        "evaluate": _evaluate,
        "sign": _sign,
        "register": _register,
        "approve": _approve,
        "promote": _promote,
    }
    out = []
    for stage, task_id in stage_order(spec):
        on_failure, checks = builders[stage](spec)
        out.append(
            {
                "stage": stage,
                "task_id": task_id,
                "title": TITLES.get(stage, stage),
                "on_failure": on_failure,
                "checks": checks,
            }
        )
    return out


def _validate(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    v, data = spec.validation, spec.data
    columns = [*data.features, data.target] if data.features else [data.target]
    table = (
        "the batch has rows, the columns " + ", ".join(columns)
        if data.features
        else f"the batch has rows and the target column {data.target}"
    ) + ", no column only nulls"
    if data.reference:
        table += ", and the reference's schema (same columns, same kind of each)"
    checks = [check("table", table, columns=columns)]
    if data.reference and v.infer_from_reference:
        checks.append(
            check(
                "inferred",
                f"expectations inferred from data.reference ({data.reference}): columns present, no new "
                "nulls, numeric ranges, known categories",
                reference=data.reference,
            )
        )
    elif v.infer_from_reference:
        checks.append(check("inferred", "none: infer_from_reference is on but data.reference is not set"))
    for expectation in v.expectations:
        for name, kwargs in expectation.items():
            args = ", ".join(f"{k}={value_text(x)}" for k, x in kwargs.items())
            checks.append(check("expectation", f"{name}({args})", expectation=name, kwargs=kwargs))
    on_failure = (
        "a failed expectation stops the run"
        if v.on_failure == "fail"
        else "a failed expectation is recorded and the run goes on (on_failure: warn); a broken table stops it"
    )
    return on_failure, checks


_SCREEN_PARAMS = {
    "label_issues": ("folds", "max_fit_rows"),
    "label_flips": ("folds", "max_fit_rows"),
    "out_of_distribution": ("outlier_threshold",),
    "outliers": ("outlier_threshold",),
    "class_balance": ("max_class_shift",),
    "feature_shift": ("max_feature_shift",),
}
_DATASET_CHECKS = ("class_balance", "feature_shift")


def _screen(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    p = spec.poisoning
    checks = []
    for name in p.checks:
        params = {k: getattr(p, k) for k in _SCREEN_PARAMS.get(name, ())}
        what = (
            "fails the run (a dataset check: no rows quarantined)"
            if name in _DATASET_CHECKS
            else "quarantines suspect rows"
        )
        detail = ", ".join(f"{k} {value_text(x)}" for k, x in params.items())
        checks.append(
            check(
                name,
                f"{name}" + (f" ({detail})" if detail else "") + f": {what}",
                action="fail" if name in _DATASET_CHECKS else "quarantine",
                **params,
            )
        )
    reference = spec.data.reference
    checks.append(
        check(
            "max_suspect_fraction",
            f"more than {p.max_suspect_fraction:.2%} suspect rows (beyond a small batch's sampling noise) "
            "stops the run before training; suspects are quarantined with their reasons either way",
            threshold=p.max_suspect_fraction,
            reference=reference,
        )
    )
    return "a failing screen stops the run before training", checks


def _train(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    from airflow_mlops.factory.builder import task_settings

    t = spec.training
    checks = [
        check(
            "split",
            f"{t.model} on the {t.backend} backend; holdout {t.holdout_fraction:.0%} of the accepted rows "
            f"(the gates' rows), validation {t.validation_fraction:.0%} of the training rows (early stopping, "
            "the operating threshold)",
            model=t.model,
            backend=t.backend,
            holdout_fraction=t.holdout_fraction,
            validation_fraction=t.validation_fraction,
        )
    ]
    if t.privacy is not None:
        checks.append(
            check(
                "privacy",
                f"DP-SGD budget epsilon <= {t.privacy.epsilon:g} (delta {t.privacy.delta:g}): a run that would "
                "spend more fails before it trains",
                epsilon=t.privacy.epsilon,
                delta=t.privacy.delta,
            )
        )
    settings = task_settings(spec, "train")  # the factory's own merge: built-in < defaults < stage
    timeout = settings.get("execution_timeout")
    checks.append(
        check(
            "time",
            "each training task fails after "
            + (duration_text(timeout) if timeout is not None else "no limit")
            + f" (retries: {settings.get('retries')})"
            + (f"; the whole run after {duration_text(spec.dagrun_timeout)}" if spec.dagrun_timeout else ""),
            execution_timeout_seconds=timeout.total_seconds() if timeout is not None else None,
            retries=settings.get("retries"),
            dagrun_timeout_seconds=spec.dagrun_timeout.total_seconds() if spec.dagrun_timeout else None,
        )
    )
    r = t.resources
    if r.gpus or r.cpu or r.memory:
        checks.append(
            check(
                "resources",
                f"gpus {r.gpus}, cpu {r.cpu or '-'}, memory {r.memory or '-'} (requests equal limits)",
                **r.model_dump(mode="json"),
            )
        )
    return "a failed or timed-out training stops the run", checks


def _scan(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    extra = list(spec.security.allowed_pickle_globals)
    return "an unsafe or unreadable model file stops the run; nothing unscanned is ever loaded", [
        check(
            "scan",
            "every model file scanned before any load (cannot be switched off); pickle globals: the "
            "built-in allowlist" + (f" plus {', '.join(extra)}" if extra else " only"),
            allowed_pickle_globals=extra,
        )
    ]


def _evaluate(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    from airflow_mlops.metrics import LOWER_IS_BETTER
    from airflow_mlops.registry.robustness import perturbation_label

    e = spec.evaluation
    checks = []
    if spec.task_hint in (None, "binary"):
        rule = e.threshold
        checks.append(
            check(
                "threshold",
                (
                    "operating threshold (binary): "
                    if spec.task_hint
                    else "operating threshold, if the data makes it a binary task: "
                )
                + (f"{rule.rule} {value_text(rule.value)}" if rule.value is not None else rule.rule)
                + ", chosen on the validation rows and stored with the model",
                **rule.as_config(),
            )
        )
    for metric, bound in e.metrics.items():
        sides = [
            f">= {bound.min:g}" if bound.min is not None else "",
            f"<= {bound.max:g}" if bound.max is not None else "",
        ]
        checks.append(
            check(
                "metric",
                f"{metric} " + " and ".join(s for s in sides if s) + " on the holdout",
                metric=metric,
                min=bound.min,
                max=bound.max,
            )
        )
    for metric, comparison in e.compare_to_champion.items():
        direction = "above" if metric in LOWER_IS_BETTER else "below"
        checks.append(
            check(
                "champion",
                f"{metric} at most {comparison.max_regression:g} {direction} the champion's on the same "
                "holdout rows (no champion yet: this gate is skipped, the absolute ones decide)",
                metric=metric,
                max_regression=comparison.max_regression,
            )
        )
    if e.fairness is not None:
        f = e.fairness
        slices = [s if isinstance(s, str) else f"{s.column} (bins {value_text(s.bins)})" for s in f.slices]
        for metric, gap in f.metrics.items():
            checks.append(
                check(
                    "fairness",
                    f"{metric} gap between the best and the worst slice <= {gap.max_gap:g}, for each of: "
                    f"{'; '.join(slices)} (slices under {f.min_slice_rows} rows, or {f.min_slice_positives} "
                    "positives where the metric needs them, are reported, not gated)",
                    metric=metric,
                    max_gap=gap.max_gap,
                    slices=[s if isinstance(s, str) else s.model_dump(mode="json") for s in f.slices],
                    min_slice_rows=f.min_slice_rows,
                    min_slice_positives=f.min_slice_positives,
                )
            )
    if e.robustness is not None:
        r = e.robustness
        for perturbation in r.perturbations:
            label = perturbation_label(perturbation.model_dump())
            for metric, drop in r.metrics.items():
                direction = "rise" if metric in LOWER_IS_BETTER else "drop"
                checks.append(
                    check(
                        "robustness",
                        f"{metric} may {direction} at most {drop.max_drop:g} from clean under {label}",
                        metric=metric,
                        max_drop=drop.max_drop,
                        perturbation=label,
                        seed=r.seed,
                    )
                )
    gated = [c for c in checks if c["check"] != "threshold"]
    if not gated:
        checks.append(check("none", "no gates configured: every candidate passes evaluation"))
    return (
        "a failing gate stops the run; a gate that cannot decide (missing metric, error) blocks",
        checks,
    )


def _sign(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    s = spec.security.signing
    return "no signing identity, no release", [
        check(
            "sign",
            f"the model, its evaluation attestation and ML-BOM signed ({s.method}, connection {s.connection})",
            method=s.method,
            connection=s.connection,
        )
    ]


def _register(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    r = spec.registry
    return "registration failures stop the run", [
        check(
            "register",
            f"registered as a new version of MLflow model {r.model_name} with its signature, blessing and "
            "ML-BOM",
            model_name=r.model_name,
        )
    ]


def _approve(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    a = spec.registry.approval
    timeout = duration_text(a.timeout) if a.timeout is not None else "no limit"
    who = ", ".join(a.assigned_users) if a.assigned_users else "anyone allowed to respond"
    return "reject, or no answer in time, skips the promotion (the alias stays)", [
        check(
            "approval",
            f"a person approves in the Airflow UI: {who}; timeout {timeout}",
            assigned_users=list(a.assigned_users),
            timeout_seconds=a.timeout.total_seconds() if a.timeout is not None else None,
        )
    ]


def _promote(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    r = spec.registry
    target = r.rollout.rollout_alias or r.alias
    return "any failed check leaves the alias where it was", [
        check(
            "promote",
            f"before @{target} moves: the blessing passed for the registered digest; the registered "
            "artifact re-verified (signature, digest, scan); the champion is still the one compared with",
            alias=target,
        )
    ]
