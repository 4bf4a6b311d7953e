"""The ML bill of materials of a model: a CycloneDX 1.6 JSON document.

One ``machine-learning-model`` component with its ``modelCard`` built from the run's facts: the
task (binary, multiclass or regression: the card's ``task``, and for a classifier its classes),
the flavor, serialisation format and library it was trained with (name and version: the
``airflow-mlops:flavor``, ``:format``, ``:framework``, ``:framework_version`` properties, from
``model_config.json``), the datasets it was trained and evaluated on (with their sha256), the
training parameters, the operating threshold, every metric and the gates it passed (with their
thresholds), the trainer image and backend, the code version and the signer's key fingerprint. Why
the run trained (:mod:`airflow_mlops.retrain.reason`) is the ``airflow-mlops:retrain:kind`` and
``:retrain:summary`` properties and the BOM's ``formulation``: one workflow (the training run) whose
``trigger`` (type ``api`` for an asset event, ``scheduled``, ``manual``) carries the first event as
its ``event`` and the whole reason as JSON in the event's ``data``. Its files are nested
``file`` components with their SHA-256; the software it needs to run (the model's pinned
``requirements.txt``) are ``library`` components with package URLs; the training image, when
there is one, a ``container`` component.

The document is stored with the model version inside a signed in-toto statement
(:data:`~airflow_mlops.security.attestation.CYCLONEDX_PREDICATE`), so it is covered by the same
key as the model. :func:`validate_mlbom` checks it against the CycloneDX 1.6 JSON schema.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import ArtifactError
from airflow_mlops.security.scanning.model_formats import FORMATS  # model_config.json's vocabulary

SPEC_VERSION = "1.6"
MODEL_REF = "model"
_PROPERTY_PREFIX = "airflow-mlops"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def _props(values: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "name": f"{_PROPERTY_PREFIX}:{k}",
            "value": v if isinstance(v, str) else json.dumps(v, sort_keys=True),
        }
        for k, v in values.items()
        if v is not None
    ]


def pinned_requirements(model_dir: str | Path) -> list[tuple[str, str]]:
    """``(name, version)`` of every ``name==version`` line of the model's ``requirements.txt``."""
    path = Path(model_dir) / "requirements.txt"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        match = _REQUIREMENT.match(line)
        if match:
            found.append((match.group(1).lower(), match.group(2)))
    return found


#: CycloneDX's ``modelParameters.task`` per task.
CARD_TASKS = {
    "binary": "binary-classification",
    "multiclass": "multiclass-classification",
    "regression": "regression",
}


def model_facts(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """What the ML-BOM and the attestations say of a model, from its ``model_config.json``:
    ``flavor``, ``format``, ``framework`` ``{name, version}``, ``task`` and, for a classifier,
    ``classes`` (a format 1 config -- a binary torch model of earlier releases -- reads as one), and
    for a watermarked model ``watermark_commitment`` (the key's commitment, never the key: the signed
    evaluation attestation carries it through these facts)."""
    flavor = str(model_config.get("flavor") or "torch")
    task = str(model_config.get("task") or "binary")
    framework = dict(model_config.get("framework") or {})
    if not framework.get("name") and flavor == "torch":
        framework = {"name": "torch", "version": model_config.get("torch_version")}
    facts: dict[str, Any] = {
        "flavor": flavor,
        "format": str(model_config.get("format") or FORMATS.get(flavor, "unknown")),
        "framework": {"name": framework.get("name"), "version": framework.get("version")},
        "task": task,
    }
    classes = model_config.get("classes")
    if task != "regression" and isinstance(classes, list):
        facts["classes"] = [str(c) for c in classes]
    commitment = (model_config.get("watermark") or {}).get("commitment")
    if commitment:
        facts["watermark_commitment"] = str(commitment)
    return facts


def _outputs(model_config: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    target = model_config.get("target")
    classes = facts.get("classes") or []
    if facts["task"] == "binary":
        return f"probability that {target} is {model_config.get('positive_label')}"
    if facts["task"] == "multiclass":
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        return f"probability of each of the {len(classes)} classes of {target} ({shown})"
    return f"predicted value of {target}"


def _dataset(name: str, ref: Mapping[str, Any] | None, description: str) -> dict[str, Any] | None:
    if not ref:
        return None
    meta = ref.get("metadata") or {}
    return {
        "type": "dataset",
        "name": name,
        "description": description,
        "contents": {
            "url": str(ref.get("uri")),
            "properties": _props(
                {"sha256": ref.get("sha256"), "bytes": ref.get("size"), "rows": meta.get("rows")}
            ),
        },
    }


def build_mlbom(
    *,
    model_name: str,
    model_dir: str | Path,
    model_sha256: str,
    files: Sequence[tuple[str, str]],
    model_config: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    training_data: Mapping[str, Any] | None = None,
    holdout: Mapping[str, Any] | None = None,
    train_metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    code_version: str = "",
    signer: str = "",
    pipeline: str = "",
    timestamp: dt.datetime | None = None,
    retrain_reason: Mapping[str, Any] | None = None,
    airflow_run: str = "",
) -> dict[str, Any]:
    """The CycloneDX 1.6 ML-BOM of one model (see the module docstring).

    :param files: ``(relative path, sha256)`` of every file of the model directory.
    :param model_config: the trainer's ``model_config.json`` (flavor, format, framework, task,
        classes, architecture, features, target, threshold; see :func:`model_facts`).
    :param evaluation: the evaluate stage's ``evaluation.json``.
    :param training: ``{"backend", "image", "params", "seed", ...}`` as the spec set them.
    :param retrain_reason: why the run trained (:func:`airflow_mlops.retrain.reason.retrain_reason`).
    :param airflow_run: ``<dag_id>/<run_id>`` of the training run (the formulation's workflow).
    """
    training = dict(training or {})
    gates = (evaluation.get("gates") or {}).get("gates") or []
    metrics = dict(evaluation.get("metrics") or {})
    metric_entries = [
        {"type": name, "value": f"{value:.6g}", "slice": f"holdout ({evaluation.get('holdout_rows')} rows)"}
        for name, value in sorted(metrics.items())
        if isinstance(value, (int, float)) and value == value
    ]
    facts = model_facts(model_config)
    architecture = model_config.get("architecture") or {
        k: model_config[k] for k in ("estimator", "objective", "module_class") if model_config.get(k)
    }
    datasets = [
        d
        for d in (
            _dataset("training data", training_data, "the accepted rows after validation and screening"),
            _dataset("holdout", holdout, "held out of training; the gates were measured on it"),
        )
        if d is not None
    ]
    model_parameters: dict[str, Any] = {
        "approach": {"type": "supervised"},
        "task": CARD_TASKS.get(facts["task"], facts["task"]),
        "architectureFamily": str(
            model_config.get("model_type")
            or model_config.get("estimator")
            or training.get("model")
            or facts["flavor"]
        ),
        "modelArchitecture": json.dumps(architecture, sort_keys=True),
        "inputs": [
            {"format": f"table with features {', '.join(map(str, model_config.get('features') or []))}"}
        ],
        "outputs": [{"format": _outputs(model_config, facts)}],
    }
    if datasets:
        model_parameters["datasets"] = datasets
    card_properties = {
        "task": facts["task"],
        "classes": len(facts["classes"]) if "classes" in facts else None,
        "class_labels": facts.get("classes"),
        "positive_label": model_config.get("positive_label") if facts["task"] == "binary" else None,
        "operating_threshold": model_config.get("threshold"),
        "threshold_choice": model_config.get("threshold_choice"),
        "training_params": (model_config.get("training") or {}).get("params") or training.get("params"),
        "seed": model_config.get("seed"),
        # the trigger-set watermark's key commitment (never the key; see security/watermark.py)
        "watermark_commitment": (model_config.get("watermark") or {}).get("commitment"),
        "evaluation_note": evaluation.get("note"),
        "champion_version": evaluation.get("champion_version"),
        **{
            f"gate:{g.get('name')}": {
                "passed": g.get("passed"),
                "value": g.get("value"),
                "threshold": g.get("threshold"),
                "reason": g.get("reason"),
            }
            for g in gates
        },
    }
    model_component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": MODEL_REF,
        "name": model_name,
        "description": f"trained by pipeline {pipeline}" if pipeline else "trained by airflow-mlops",
        "hashes": [{"alg": "SHA-256", "content": model_sha256}],
        "properties": _props(
            {
                "digest": "sha256 of the sorted 'path sha256' manifest of the model directory",
                "pipeline": pipeline or None,
                "signer_key_fingerprint": signer or None,
                "training_backend": training.get("backend"),
                "training_image": training.get("image"),
                # training.backend federated: the federation, its rounds and the app's hash
                "federation": training.get("federation"),
                "federated_rounds": training.get("federated_rounds"),
                "federated_strategy": training.get("federated_strategy"),
                "federated_app_sha256": (train_metrics or {}).get("federated_app_sha256"),
                "code_version": code_version or None,
                "task": facts["task"],
                "flavor": facts["flavor"],
                "format": facts["format"],
                "framework": facts["framework"]["name"],
                "framework_version": facts["framework"]["version"],
                "classes": len(facts["classes"]) if "classes" in facts else None,
                "torch_version": model_config.get("torch_version"),
                "retrain:kind": (retrain_reason or {}).get("kind"),
                "retrain:summary": (retrain_reason or {}).get("summary"),
                **{f"train:{k}": v for k, v in sorted((train_metrics or {}).items()) if _scalar(v)},
            }
        ),
        "components": [
            {
                "type": "file",
                "bom-ref": f"file:{path}",
                "name": path,
                "hashes": [{"alg": "SHA-256", "content": sha}],
            }
            for path, sha in files
        ],
        "modelCard": {
            "modelParameters": model_parameters,
            "quantitativeAnalysis": {"performanceMetrics": metric_entries},
            "properties": _props(card_properties),
        },
    }
    libraries = [
        {
            "type": "library",
            "bom-ref": f"pkg:{name}",
            "name": name,
            "version": version,
            "purl": f"pkg:pypi/{name}@{version}",
        }
        for name, version in pinned_requirements(model_dir)
    ]
    components: list[dict[str, Any]] = [model_component, *libraries]
    if training.get("image"):
        image = str(training["image"])
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        components.append(
            {
                "type": "container",
                "bom-ref": "trainer-image",
                "name": name,
                **({"version": tag} if tag else {}),
            }
        )
    when = (timestamp or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    from airflow_mlops import __version__

    formulation = {"formulation": [_formulation(retrain_reason, airflow_run)]} if retrain_reason else {}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{model_name}/{model_sha256}')}",
        "version": 1,
        "metadata": {
            "timestamp": when,
            "tools": {
                "components": [{"type": "application", "name": "airflow-mlops", "version": __version__}]
            },
        },
        "components": components,
        "dependencies": [
            {"ref": MODEL_REF, "dependsOn": [c["bom-ref"] for c in components[1:]]},
            *({"ref": c["bom-ref"]} for c in components[1:]),
        ],
        **formulation,
    }


def _formulation(reason: Mapping[str, Any], airflow_run: str) -> dict[str, Any]:
    """The BOM's formulation: the training run, and the trigger that started it (the reason)."""
    from airflow_mlops.retrain.reason import compact, trigger_type

    events = [e for e in reason.get("events") or [] if isinstance(e, Mapping)]
    first = events[0] if events else None
    trigger: dict[str, Any] = {
        "bom-ref": "trigger",
        "uid": str((first or {}).get("asset") or reason.get("kind") or "unknown"),
        "name": f"retrain: {reason.get('kind')}",
        "description": str(reason.get("summary") or reason.get("kind")),
        "type": trigger_type(reason),
        "properties": _props(
            {
                "retrain:kind": reason.get("kind"),
                "retrain:run_type": reason.get("run_type") or None,
                "retrain:event_count": reason.get("event_count"),
                "retrain:kinds": reason.get("kinds") or None,
            }
        ),
    }
    if first is not None:
        raw = first.get("source")
        source: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        event: dict[str, Any] = {
            "uid": "/".join(str(v) for v in (first.get("asset"), first.get("at")) if v),
            "description": str(reason.get("summary") or reason.get("kind")),
            "data": {"contentType": "application/json", "content": compact(reason)},
            "properties": _props({f"source:{k}": v for k, v in sorted(source.items())}),
        }
        if first.get("at"):
            event["timeReceived"] = str(first["at"])
        trigger["event"] = {k: v for k, v in event.items() if v}
    workflow: dict[str, Any] = {
        "bom-ref": "training-run",
        "uid": airflow_run or "training run",
        "name": "training run",
        "description": "the Airflow run that trained, evaluated and signed this model",
        "taskTypes": ["build", "test"],
        "trigger": trigger,
    }
    return {"bom-ref": "formulation", "workflows": [workflow]}


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and value == value


def validate_mlbom(bom: Mapping[str, Any]) -> None:
    """Check ``bom`` against the CycloneDX 1.6 JSON schema.

    :raises ArtifactError: naming the first schema violation.
    """
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    if error is not None:
        first = str(error).strip().splitlines()[0]
        raise ArtifactError(f"the ML-BOM is not valid CycloneDX {SPEC_VERSION}: {first}")
