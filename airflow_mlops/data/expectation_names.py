"""The Great Expectations expectations the validation stage runs, by the names a spec writes.

The spec language takes its vocabulary from here (``data.expectations`` may name only these), and
:mod:`airflow_mlops.data.validation` runs them. Standard library only: the spec loader imports it.
"""

from __future__ import annotations

# Great Expectations 1.x core expectations.
SUPPORTED_EXPECTATIONS: tuple[str, ...] = (
    "expect_column_to_exist",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_match_regex",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_median_to_be_between",
    "expect_column_stdev_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between",
    "expect_column_distinct_values_to_be_in_set",
    "expect_table_row_count_to_be_between",
    "expect_table_column_count_to_equal",
    "expect_table_columns_to_match_set",
    "expect_compound_columns_to_be_unique",
)


def gx_class_name(expectation: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    return "".join(part.capitalize() for part in expectation.split("_"))
