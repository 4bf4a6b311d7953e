"""What a screen returns (:class:`ScreenResult`), how many suspects it may hold, and the
accounting that no row was lost (security invariant 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, PoisoningDetectedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The columns the quarantine adds to the input's.
ROW_INDEX_COLUMN = "_row_index"
REASONS_COLUMN = "_reasons"
SCORES_COLUMN = "_scores"


@dataclass(frozen=True, eq=False)
class ScreenResult:
    """The outcome of :func:`screen_data`.

    :ivar accepted: the rows that passed every check (original index and columns).
    :ivar quarantined: the suspect rows, original columns plus ``_row_index`` (position in the
        input), ``_reasons`` (semicolon-joined reasons) and ``_scores`` (JSON: the score of each
        check that flagged the row, and the suggested label of a label issue).
    :ivar summary: JSON-serialisable: ``rows_in``, ``rows_accepted``, ``rows_quarantined``,
        ``suspect_fraction``, ``max_suspect_fraction``, ``check_counts`` (suspect rows per check),
        ``checks`` (status, thresholds and score quantiles per check), ``dataset_findings``,
        ``hashes`` (sha256 of the input, accepted and quarantined rows) and ``passed``.
    :ivar passed: the suspect fraction is at most ``max_suspect_fraction`` and there are no
        dataset findings.
    :ivar scores: per check, the score of every input row (numpy arrays, for the report).
    """

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, Any]
    passed: bool
    scores: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        """One paragraph saying what the screen found, with the counts and the threshold."""
        s = self.summary
        counts = ", ".join(f"{name}={n}" for name, n in s["check_counts"].items())
        verdict = "passed" if self.passed else "failed"
        over = ">" if s["suspect_fraction"] > s["max_suspect_fraction"] else "<="
        allowed = s.get("max_suspect_rows")
        text = (
            f"poisoning screen {verdict}: {s['rows_quarantined']} of {s['rows_in']} rows suspect "
            f"(suspect_fraction {s['suspect_fraction']:.4f} {over} max_suspect_fraction "
            f"{s['max_suspect_fraction']:.4f}"
            + (f", at most {allowed} of {s['rows_in']} rows allowed" if allowed is not None else "")
            + f"); suspects per check: {counts or 'none'}"
        )
        if s["dataset_findings"]:
            text += "; dataset findings: " + "; ".join(s["dataset_findings"])
        return text

    def raise_if_failed(self) -> None:
        """Raise :class:`PoisoningDetectedError` when the screen did not pass.

        :raises PoisoningDetectedError: naming the suspects per check, the fraction and the threshold.
        """
        if not self.passed:
            raise PoisoningDetectedError(
                self.message() + ". The suspect rows are in the quarantine with their reasons; "
                "inspect them, then fix the data or adjust the poisoning settings of the spec."
            )


def allowed_suspects(rows: int, max_fraction: float) -> int:
    """How many suspect rows a batch of ``rows`` may hold before the screen stops the run.

    ``max_suspect_fraction`` of the rows, with the sampling noise of a small batch tolerated: the
    95th percentile of ``Binomial(rows, max_fraction)`` (a batch whose rows are suspect at exactly
    the allowed rate exceeds it once in twenty). At 60 rows and 2 % that is 3 rows, not 1; at
    100,000 rows 2.07 %. The suspects are quarantined either way: they never reach training.
    """
    from scipy.stats import binom

    if rows <= 0 or max_fraction <= 0:
        return 0
    if max_fraction >= 1:
        return rows
    return int(max(math.floor(rows * max_fraction), binom.ppf(0.95, rows, max_fraction)))


def check_accounting(
    df: pd.DataFrame,
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    accepted_pos: np.ndarray,
    quarantined_pos: np.ndarray,
) -> dict[str, str]:
    """Invariant 5: every input row is in exactly one frame, unchanged. Returns the hashes."""
    import hashlib

    import numpy as np
    import pandas as pd

    n = len(df)
    covered = np.zeros(n, dtype=np.int64)
    np.add.at(covered, accepted_pos, 1)
    np.add.at(covered, quarantined_pos, 1)
    # One hash over the three frames: pandas hashes an object column through its categories, each
    # hashed as its first value, so 2, 2.0 and "2" (one category) would hash as whichever came
    # first in each frame apart. Together, that is always the input's first (as it is alone).
    parts = [frame for frame in (df, accepted, quarantined[list(df.columns)]) if len(frame)]
    hashed = pd.util.hash_pandas_object(pd.concat(parts, ignore_index=True), index=False).to_numpy()
    row_in, row_acc, row_q = np.split(hashed, [n, n + len(accepted)])
    same = np.array_equal(np.sort(row_in), np.sort(np.concatenate([row_acc, row_q])))
    if len(accepted) + len(quarantined) != n or not (covered == 1).all() or not same:
        raise DataError(
            f"poisoning screen accounting error: {len(accepted)} accepted + {len(quarantined)} "
            f"quarantined != {n} rows in; refusing to continue (this is a bug, please report it)"
        )

    def digest(values: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()

    return {
        "method": "sha256 over pandas row hashes (index excluded), in row order",
        "input": digest(row_in),
        "accepted": digest(row_acc),
        "quarantined": digest(row_q),
    }
