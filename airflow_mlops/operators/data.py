"""Operators for the data stages: validation and the poisoning screen."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import ArtifactReportLink


def _write_json(path: Any, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)


def triggering_data(context: Any) -> list[dict[str, Any]]:
    """The data named by the asset events that started this run, oldest event first.

    Events of this package carry ``extra["data"]`` (URIs) and, when the data is an artifact of
    another run, ``extra["data_refs"]`` (``ArtifactRef`` s, so it is read verified); an asset
    watcher's event carries them under ``extra["payload"]``. Returns ``[{"uri", "ref"|None,
    "event"}]``, each URI once.
    """
    from airflow_mlops.data.arrivals import event_payload

    events = context.get("triggering_asset_events") or {}
    found: list[tuple[Any, dict[str, Any]]] = []
    for asset_events in events.values():
        for event in asset_events:
            payload = event_payload(event.extra)
            label = f"{event.asset.uri} at {event.timestamp}"
            if payload.get("reason"):
                label += f" ({payload['reason']})"
            refs = {r["uri"]: r for r in payload.get("data_refs") or [] if isinstance(r, dict) and "uri" in r}
            for uri in payload.get("data") or []:
                found.append((event.timestamp, {"uri": str(uri), "ref": refs.get(uri), "event": label}))
    found.sort(key=lambda item: item[0])
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, item in found:
        if item["uri"] not in seen:
            seen.add(item["uri"])
            out.append(item)
    return out


class DataValidateOperator(MLOpsBaseOperator):
    """Snapshot the input batch into the artifact store and validate it with Great Expectations.

    What the batch is depends on how the run started:

    * a run started by asset events that name data (a ``new_data`` batch, a drifted and
      labelled live window): exactly those files, concatenated (files given by ``ArtifactRef``
      are checked against their sha256);
    * any other asset-triggered run (it has no data interval): ``event_source``, else it fails
      and says why;
    * a scheduled, backfilled or manual run: ``source`` rendered for its data interval.

    :param source: path or ``s3://`` URI of the batch (templated, e.g. ``.../{{ ds }}/batch.parquet``;
        rendered when the task runs, because asset-triggered runs have no ``{{ ds }}``).
    :param event_source: the batch of an asset-triggered run whose events name no data (templated).
    :param data_format: ``parquet`` or ``csv``; default from the extension.
    :param expectations: ``[{expect_...: {kwargs}}, ...]`` (templated).
    :param reference: reference data set; with ``infer_from_reference`` its columns, null rates,
        ranges and categories become expectations too (templated).
    :param columns: columns whose expectations are inferred (features and target).
    :param on_failure: ``fail`` raises, ``warn`` records the failure and lets the run go on.
    :param target: the label column (``data.target``); a batch or reference without it fails.

    Before anything is stored, the batch (and the reference) must be readable, have rows, the
    target and ``columns``, no column that is only nulls, and the reference's schema (same
    columns, same kind of each); otherwise a :class:`~airflow_mlops.exceptions.DataError` names
    the file and the columns, and no artifact is left behind. Then the expectations run, whatever
    their outcome the batch snapshot and both reports are stored, and the task log gives the HTML
    report's URI.

    Returns ``{"data", "report", "html_report"}`` (``ArtifactRef`` s: the batch snapshot, the JSON
    report with column profiles, the HTML report a person reads: failed expectations with sample
    rows, per-column profiles and histograms of batch against reference) and ``success``.
    """

    # `source` and `event_source` are rendered in `execute`: which one applies depends on the run.
    template_fields = (*MLOpsBaseOperator.template_fields, "reference", "expectations")
    stage = "validate"
    ui_color = "#d7f5e3"
    operator_extra_links = (ArtifactReportLink(),)

    def __init__(
        self,
        *,
        source: str,
        data_format: str | None = None,
        expectations: Sequence[dict[str, dict[str, Any]]] = (),
        reference: str | None = None,
        infer_from_reference: bool = True,
        columns: Sequence[str] | None = None,
        on_failure: str = "fail",
        event_source: str | None = None,
        target: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_failure not in ("fail", "warn"):
            raise ValueError(f"on_failure must be 'fail' or 'warn', got {on_failure!r}")
        self.source = source
        self.event_source = event_source
        self.data_format = data_format
        self.expectations = list(expectations)
        self.reference = reference
        self.infer_from_reference = infer_from_reference
        self.columns = list(columns) if columns else None
        self.on_failure = on_failure
        self.target = target

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import check_table, compare_schema, read_source, write_table
        from airflow_mlops.data.validation import infer_expectations, validate_dataframe
        from airflow_mlops.data.validation_report import profile_columns, render_validation_html

        store = self.artifact_store()
        with self.scratch() as tmp:
            # Read and check everything before storing anything: bad input leaves no artifact.
            df, source = self._read_batch(context, tmp)
            check_table(df, source=source, columns=self.columns, target=self.target)
            reference = None
            if self.reference:
                reference = read_source(
                    self.reference,
                    tmp / "reference",
                    s3_client=self._s3_client(self.reference, store),
                    allowed_roots=self.allowed_roots,
                    what="data.reference",
                )
                self.record_input(self.reference)
                check_table(reference, source=self.reference, columns=self.columns, target=self.target)
                compare_schema(df, reference, source=source, reference_source=self.reference)
            expectations = list(self.expectations)
            if reference is not None and self.infer_from_reference:
                columns = self.columns or [str(c) for c in reference.columns]
                expectations = infer_expectations(reference, columns=columns) + expectations
            report = validate_dataframe(df, expectations)
            profiles = profile_columns(df, reference, columns=self.columns)
            html = render_validation_html(
                report,
                df,
                reference=reference,
                source=source,
                reference_source=self.reference,
                title=f"Data validation: {self.pipeline}",
                context={"run": self.airflow_run(context), "task": self.task_id},
                profiles=profiles,
            )
            snapshot = tmp / "batch.parquet"
            write_table(df, snapshot)
            report_path = tmp / "validation_report.json"
            _write_json(
                report_path,
                {
                    **report.to_dict(),
                    "source": source,
                    "reference": self.reference,
                    "profiles": [p.to_dict() for p in profiles],
                },
            )
            html_path = tmp / "validation_report.html"
            html_path.write_text(html, encoding="utf-8")
            data_ref = store.put_file(
                snapshot,
                self.artifact_key(context, "batch.parquet"),
                producer=self.task_id,
                source=source,
                rows=len(df),
            )
            report_ref = store.put_file(
                report_path, self.artifact_key(context, "validation_report.json"), producer=self.task_id
            )
            html_ref = store.put_file(
                html_path, self.artifact_key(context, "validation_report.html"), producer=self.task_id
            )
        self.log.info("Validation %s: %s", "passed" if report.success else "FAILED", report.summary())
        self.log.info("Validation report (HTML): %s", html_ref.uri)
        if not report.success and self.on_failure == "fail":
            report.raise_if_failed()
        return {
            "data": data_ref.to_dict(),
            "report": report_ref.to_dict(),
            "html_report": html_ref.to_dict(),
            "success": report.success,
        }

    def _s3_client(self, uri: str, store: Any) -> Any:
        """The store's S3 client for an ``s3://`` input (its connection), else None."""
        return store.s3 if uri.startswith("s3://") else None

    def _event_ref(self, ref: Any, store: Any) -> ArtifactRef:
        """An asset event's ``ArtifactRef``, once its URI is known to be a file in this pipeline's
        artifact store or under the allowed roots: whoever posts an event writes its sha256 too,
        so the digest alone proves nothing about where the file is."""
        parsed = ArtifactRef.from_dict(ref)
        what = f"the asset event's data ref {parsed.uri}"
        if parsed.is_directory:
            from airflow_mlops.allowed_roots import OutsideAllowedRootsError

            raise OutsideAllowedRootsError(f"{what} names a directory; an event's data must be files")
        if not store.contains(parsed.uri):
            self.check_location(parsed.uri, what)
        return parsed

    def _read_batch(self, context: Any, tmp: Any) -> tuple[Any, str]:
        """The run's batch (see the class docstring) and a description of where it came from."""
        import pandas as pd

        from airflow_mlops.data.io import read_source, read_table
        from airflow_mlops.exceptions import DataError

        items = triggering_data(context)
        store = self.artifact_store() if items else None
        for asset, events in (context.get("triggering_asset_events") or {}).items():
            for event in events:
                self.log.info("This run was started by asset event %s at %s", asset.uri, event.timestamp)
        if items:
            frames = []
            for index, item in enumerate(items):
                dest = tmp / f"event-{index}"
                dest.mkdir(parents=True)
                if item["ref"]:
                    ref = self._event_ref(item["ref"], store)
                    frame = read_table(self.fetch(ref, dest), self.data_format, name=item["uri"])
                else:
                    frame = read_source(
                        item["uri"],
                        dest,
                        self.data_format,
                        s3_client=self._s3_client(item["uri"], store),
                        allowed_roots=self.allowed_roots,
                        what=f"the data of asset event {item['event']}",
                    )
                    self.record_input(item["uri"])
                self.log.info("Read %s rows from %s (asset event %s)", len(frame), item["uri"], item["event"])
                frames.append(frame)
            columns = [list(map(str, f.columns)) for f in frames]
            if any(c != columns[0] for c in columns):
                raise DataError(
                    "the batches named by this run's asset events have different columns: "
                    + "; ".join(f"{i['uri']}: {c}" for i, c in zip(items, columns, strict=True))
                )
            source = ",".join(i["uri"] for i in items)
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            return df, source
        import jinja2

        no_interval = context.get("logical_date") is None
        template = self.event_source if no_interval and self.event_source else self.source
        try:
            source = str(self.render_template(template, context))
        except jinja2.UndefinedError as exc:
            raise DataError(
                f"cannot render the data location {template!r}: {exc}. This run has no data interval "
                "(it was started by asset events that name no data, or manually without a logical "
                "date); set data.event_source in the spec to the data such runs train on, or trigger "
                "the run with a logical date"
            ) from None
        df = read_source(
            source,
            tmp,
            self.data_format,
            s3_client=self._s3_client(source, self.artifact_store()),
            allowed_roots=self.allowed_roots,
            what="data.event_source" if template is self.event_source else "data.source",
        )
        self.record_input(source)
        self.log.info("Read %s rows x %s columns from %s", len(df), len(df.columns), source)
        return df, source


class PoisoningScreenOperator(MLOpsBaseOperator):
    """Screen a batch for poisoned rows; suspects are quarantined with reasons, never dropped.

    :param data: the ``ArtifactRef`` of the batch (templated; e.g. ``validate.output["data"]``).
    :param checks: screens to run (see :mod:`airflow_mlops.data.poisoning`): ``duplicates``,
        ``label_issues``, ``out_of_distribution``, ``class_balance``, ``feature_shift``; the old
        names ``label_flips`` and ``outliers`` still work.
    :param max_suspect_fraction: above this share of suspects the task fails before training.
    :param max_feature_shift, folds, max_fit_rows, seed: see ``poisoning`` in docs/spec.md.
    :param task: ``binary``, ``multiclass`` or ``regression`` (the spec's ``task``); None infers it
        from the batch and the reference. It decides what the checks judge (see
        :mod:`airflow_mlops.data.poisoning`); ``positive_label`` matters to ``binary`` only.

    Returns ``{"accepted", "quarantine", "summary", "report"}`` refs (``report``: the HTML
    report) and ``suspect_fraction``.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data", "reference")
    stage = "screen"
    ui_color = "#fdf2d0"
    operator_extra_links = (ArtifactReportLink(),)

    def __init__(
        self,
        *,
        data: Any,
        target: str,
        features: Sequence[str] | None = None,
        checks: Sequence[str] = ("duplicates", "label_issues"),
        max_suspect_fraction: float = 0.02,
        neighbours: int = 10,
        outlier_threshold: float = 8.0,
        max_class_shift: float = 0.5,
        reference: str | None = None,
        positive_label: Any = 1,
        max_feature_shift: float = 0.1,
        folds: int = 5,
        max_fit_rows: int = 50_000,
        seed: int = 0,
        task: str | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_mlops.data.poisoning import normalise_checks
        from airflow_mlops.tasks import TASKS

        super().__init__(**kwargs)
        normalise_checks(checks)  # an unknown check fails when the DAG is built, not when it runs
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)} or None (inferred), got {task!r}")
        self.data = data
        self.target = target
        self.features = list(features) if features else None
        self.checks = list(checks)
        self.max_suspect_fraction = max_suspect_fraction
        self.neighbours = neighbours
        self.outlier_threshold = outlier_threshold
        self.max_class_shift = max_class_shift
        self.reference = reference
        self.positive_label = positive_label
        self.max_feature_shift = max_feature_shift
        self.folds = folds
        self.max_fit_rows = max_fit_rows
        self.seed = seed
        self.task = task

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table, write_table
        from airflow_mlops.data.poisoning import screen_data
        from airflow_mlops.data.screen_report import render_screen_report

        store = self.artifact_store()
        with self.scratch() as tmp:
            df = read_table(self.fetch(self.data, tmp / "in"))
            features = self.features or [c for c in map(str, df.columns) if c != self.target]
            reference = (
                read_table(self.fetch_source(self.reference, tmp, "data.reference"), checked=True)
                if self.reference
                else None
            )
            result = screen_data(
                df,
                target=self.target,
                features=features,
                checks=self.checks,
                max_suspect_fraction=self.max_suspect_fraction,
                neighbours=self.neighbours,
                outlier_threshold=self.outlier_threshold,
                max_class_shift=self.max_class_shift,
                reference=reference,
                positive_label=self.positive_label,
                max_feature_shift=self.max_feature_shift,
                folds=self.folds,
                max_fit_rows=self.max_fit_rows,
                seed=self.seed,
                task=self.task,
            )
            write_table(result.accepted, tmp / "accepted.parquet")
            write_table(result.quarantined, tmp / "quarantine.parquet")
            _write_json(tmp / "screen_summary.json", result.summary)
            (tmp / "screen_report.html").write_text(
                render_screen_report(result, target=self.target, features=features), encoding="utf-8"
            )
            refs = {
                name: store.put_file(
                    tmp / file, self.artifact_key(context, file), producer=self.task_id
                ).to_dict()
                for name, file in (
                    ("accepted", "accepted.parquet"),
                    ("quarantine", "quarantine.parquet"),
                    ("summary", "screen_summary.json"),
                    ("report", "screen_report.html"),
                )
            }
        self.log.info("Screen report: %s", refs["report"]["uri"])
        self.log.info(
            "Screen: %s rows in, %s accepted, %s quarantined (%.4f; max %.4f)",
            result.summary["rows_in"],
            result.summary["rows_accepted"],
            result.summary["rows_quarantined"],
            result.summary["suspect_fraction"],
            self.max_suspect_fraction,
        )
        result.raise_if_failed()  # after storing the quarantine: nothing is lost when it stops
        return {**refs, "suspect_fraction": float(result.summary["suspect_fraction"])}


def ref_uri(ref: Any) -> str:
    return ArtifactRef.from_dict(ref).uri
