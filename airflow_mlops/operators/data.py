"""Operators for the data stages: validation, and the poisoning screen (in :mod:`.data_screen`,
re-exported)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.data_screen import PoisoningScreenOperator
from airflow_mlops.operators.links import ArtifactReportLink
from airflow_mlops.operators.run_events import admitted_events, retrain_reason, triggering_data

__all__ = [
    "DataValidateOperator",
    "PoisoningScreenOperator",
    "admitted_events",
    "ref_uri",
    "retrain_reason",
    "triggering_data",
]


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
        from airflow_mlops.data import validate_task as task
        from airflow_mlops.data.io import check_table, write_table

        store = self.artifact_store()
        with self.scratch() as tmp:
            # Read and check everything before storing anything: bad input leaves no artifact.
            df, source = self._read_batch(context, tmp)
            check_table(df, source=source, columns=self.columns, target=self.target)
            reference = self._read_reference(df, source, store, tmp) if self.reference else None
            done = task.validate_batch(
                df,
                reference,
                expectations=self.expectations,
                infer_from_reference=self.infer_from_reference,
                columns=self.columns,
                source=source,
                reference_source=self.reference,
                title=f"Data validation: {self.pipeline}",
                context={"run": self.airflow_run(context), "task": self.task_id},
            )
            write_table(df, tmp / "batch.parquet")
            (tmp / "validation_report.json").write_text(
                done.payload_json(source=source, reference=self.reference)
            )
            (tmp / "validation_report.html").write_text(done.html, encoding="utf-8")
            refs = {
                name: store.put_file(
                    tmp / file, self.artifact_key(context, file), producer=self.task_id, **meta
                ).to_dict()
                for name, file, meta in (
                    ("data", "batch.parquet", {"source": source, "rows": len(df)}),
                    ("report", "validation_report.json", {}),
                    ("html_report", "validation_report.html", {}),
                )
            }
        report = done.report
        self.log.info("Validation %s: %s", "passed" if report.success else "FAILED", report.summary())
        self.log.info("Validation report (HTML): %s", refs["html_report"]["uri"])
        if not report.success and self.on_failure == "fail":
            report.raise_if_failed()
        return {**refs, "success": report.success}

    def _read_reference(self, df: Any, source: str, store: Any, tmp: Any) -> Any:
        """``data.reference``, read and checked against the batch (see the class docstring)."""
        from airflow_mlops.data.io import read_source
        from airflow_mlops.data.validate_task import check_reference

        assert self.reference
        reference = read_source(
            self.reference,
            tmp / "reference",
            s3_client=self._s3_client(self.reference, store),
            allowed_roots=self.allowed_roots,
            what="data.reference",
        )
        self.record_input(self.reference)
        check_reference(
            df,
            reference,
            source=source,
            reference_source=self.reference,
            columns=self.columns,
            target=self.target,
        )
        return reference

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
        from airflow_mlops.data.io import read_source, read_table
        from airflow_mlops.data.validate_task import join_batches
        from airflow_mlops.exceptions import DataError

        items = triggering_data(context)
        store = self.artifact_store() if items else None
        admitted = [e for events in (admitted_events(context) or {}).values() for e in events]
        for asset, events in (context.get("triggering_asset_events") or {}).items():
            for event in events:
                held = "" if event in admitted else " (held back by the retrain gate: not read)"
                self.log.info(
                    "This run was started by asset event %s at %s%s", asset.uri, event.timestamp, held
                )
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
            df = join_batches(frames, [i["uri"] for i in items])
            return df, ",".join(i["uri"] for i in items)
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


def ref_uri(ref: Any) -> str:
    return ArtifactRef.from_dict(ref).uri
