"""The binary screen the poisoning and screen-report tests share: the fraud data's features,
every check, and a screen with the tests' defaults."""

from __future__ import annotations

import pandas as pd

from airflow_mlops.data.generate import FEATURES, TARGET
from airflow_mlops.data.poisoning import ScreenResult, screen_data

F = list(FEATURES)
ALL = ["duplicates", "label_issues", "out_of_distribution", "class_balance", "feature_shift"]


def screen(df: pd.DataFrame, **kwargs) -> ScreenResult:
    kwargs.setdefault("checks", ["duplicates", "label_issues"])
    kwargs.setdefault("max_suspect_fraction", 0.02)
    return screen_data(df, target=TARGET, features=F, **kwargs)
