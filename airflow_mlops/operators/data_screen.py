"""``data.screen``: the poisoning screen; suspects are quarantined with reasons, never dropped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.data import screen_defaults as defaults
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import ArtifactReportLink


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
        checks: Sequence[str] = defaults.CHECKS,
        max_suspect_fraction: float = defaults.MAX_SUSPECT_FRACTION,
        neighbours: int = defaults.NEIGHBOURS,
        outlier_threshold: float = defaults.OUTLIER_THRESHOLD,
        max_class_shift: float = defaults.MAX_CLASS_SHIFT,
        reference: str | None = None,
        positive_label: Any = 1,
        max_feature_shift: float = defaults.MAX_FEATURE_SHIFT,
        folds: int = defaults.FOLDS,
        max_fit_rows: int = defaults.MAX_FIT_ROWS,
        seed: int = defaults.SEED,
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
        from airflow_mlops.data.io import read_table
        from airflow_mlops.data.screen_task import SCREEN_OUTPUTS, write_screen_outputs

        store = self.artifact_store()
        with self.scratch() as tmp:
            df = read_table(self.fetch(self.data, tmp / "in"))
            features = self.features or [c for c in map(str, df.columns) if c != self.target]
            reference = (
                read_table(self.fetch_source(self.reference, tmp, "data.reference"), checked=True)
                if self.reference
                else None
            )
            result = self._screen(df, features, reference)
            write_screen_outputs(result, tmp, target=self.target, features=features)
            refs = {
                name: store.put_file(
                    tmp / file, self.artifact_key(context, file), producer=self.task_id
                ).to_dict()
                for name, file in SCREEN_OUTPUTS.items()
            }
        self.log.info("Screen report: %s", refs["report"]["uri"])
        summary = result.summary
        self.log.info(
            "Screen: %s rows in, %s accepted, %s quarantined (%.4f; max %.4f)",
            summary["rows_in"],
            summary["rows_accepted"],
            summary["rows_quarantined"],
            summary["suspect_fraction"],
            self.max_suspect_fraction,
        )
        result.raise_if_failed()  # after storing the quarantine: nothing is lost when it stops
        return {**refs, "suspect_fraction": float(summary["suspect_fraction"])}

    def _screen(self, df: Any, features: list[str], reference: Any) -> Any:
        """:func:`~airflow_mlops.data.poisoning.screen_data` with this task's settings."""
        from airflow_mlops.data.poisoning import screen_data

        return screen_data(
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
