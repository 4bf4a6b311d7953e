"""The poisoning screen's default settings: one place for the spec's defaults, the screen
operator's and :func:`airflow_mlops.data.poisoning.screen_data`'s (standard library only, so the
spec loader reads it without loading the screen)."""

from __future__ import annotations

CHECKS = ("duplicates", "label_issues")
MAX_SUSPECT_FRACTION = 0.02
NEIGHBOURS = 10  # deprecated and ignored: k of the old label-flip screen
OUTLIER_THRESHOLD = 8.0
MAX_CLASS_SHIFT = 0.5
MAX_FEATURE_SHIFT = 0.1
FOLDS = 5
MAX_FIT_ROWS = 50_000
SEED = 0
