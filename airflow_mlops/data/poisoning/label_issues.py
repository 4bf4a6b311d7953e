"""``label_issues`` of a classification target: confident learning on out-of-fold class
probabilities of models that learn from the batch *and* the trusted reference, with the number of
issues per class estimated from the batch and, when a reference is given, corrected by what the
same models make of clean rows.

How a row becomes a suspect, per class ``i`` of the labels (a binary or multiclass target):

1. **Probabilities** (:func:`~.fitting.pooled_oof_proba`): every batch row and every reference
   row is scored by the fold models that did not see it (trees and a logistic regression,
   averaged), fitted on the batch's other folds and the reference's other folds. A clean batch
   row and a reference row are scored alike.
2. **How many** rows labelled ``i`` belong to another class: the calibrated confident joint of
   confident learning (Northcutt et al., 2021). A row labelled ``i`` counts for class ``j`` when
   its probability of ``j`` reaches ``t_j``, the mean probability the rows of class ``j`` give
   their own class (the reference's rows when it is given: they are clean), and ``j`` is the
   likeliest such class; each row of the confident joint is rescaled to the class's row count.
   Without a reference that mean measures class ``j`` only while most rows labelled ``j`` are its
   own: when the count says at least :data:`DOMINATED_SHARE` of them came from other classes
   (flips into a rare class can outnumber its rows ten to one), ``t_j`` is taken again from the
   rows labelled ``j`` that are kept, and the count redone until the suspects settle.
3. **Which moves are acted on.** The confident joint's ``[i, j]`` is a *move*: rows that look
   like class ``j`` labelled ``i``. Every data set holds rows that look like another class
   (genuinely ambiguous ones, a kind of one class that mimics another: a few per cent of a rare
   class), and no model tells those from moved rows one by one; an attack moves a *share* of a
   class. So the moves out of ``j`` are acted on when together they are at least
   :data:`SOURCE_SHARE` of the rows ``j`` holds by the joint (its column: a rare class swamped by
   flips into it lost its rows from its own size, not from its label's), and the moves into ``i``
   when together they are at least :data:`DESTINATION_SHARE` of the rows labelled ``i``, each
   beyond :data:`NOISE_Z` Poisson standard errors.
   **Without a reference** each move is first bounded by the *anchor rows* of the class it came
   from (:func:`_anchor_bound`): the :data:`ANCHOR_SHARE` of ``j``'s rows the models find
   likeliest to be ``j``. Where the classes do not overlap these are all ``j``'s rows, and a
   random move took the same share of them as of the class, so the share labelled ``i`` among
   them (plus :data:`ANCHOR_Z` standard errors) bounds the move. Where classes overlap, the
   confident joint also counts the genuine rows near the other class, which the anchors do not
   hold: the bound leaves most of them alone (a clean batch at make_classification's class_sep
   0.5: 7 % of a class taken, not 17 %). A move confined to rows near the boundary is bounded
   too; nothing without a reference tells it from overlap.
   **With a reference**, its clean rows, scored by the same models, say how many rows of a class
   look like another class without any poison: the count beyond that share, plus
   :data:`BASELINE_Z` standard errors, is acted on too, from a smaller practical size
   (:data:`REFERENCE_SOURCE_SHARE`, :data:`REFERENCE_DESTINATION_SHARE`). A class the batch holds
   more rows of than the reference's share says (beyond :data:`EXCESS_Z` standard errors of
   sampling noise) has taken in at least that many rows of other classes: flips into a rare class
   can outnumber its genuine rows, and models that learn from the batch then find them
   plausible; the class's count still says so. A class's estimate is the larger of the batch's
   own and the one beyond the reference, except in a class the reference vouches for: one whose
   batch count is within :data:`CLEAN_Z` standard errors of the reference's share (measured on
   at least :data:`MIN_REFERENCE_AMBIGUOUS` of its rows) with no excess, where its own estimate
   is at least :data:`CLEAN_MIN_SHARE` of its rows. Its batch looks like
   clean data, and its own estimate would take the rows that look like another class in clean
   data too: where classes overlap (noisy outcomes), a tenth of a class or more.
4. **Which rows**: the estimated number of rows labelled ``i`` with the largest margin by which
   another class is more likely than ``i`` (``max_j p_j - p_i``), among the rows whose label is
   not the likeliest class. Rows another check quarantines (out of distribution, conflicting
   copies) are left out of steps 2 to 4: their labels are no evidence that other rows moved.
   The row's score is ``p_i - max_j p_j`` (below 0: another class is more likely); the class's
   cut sits just above the highest score flagged.

A trusted reference adds evidence: its rows train every fold's models, and its clean scores tell
the screen how many ambiguous rows to expect (and, where it has measured that share, that a
class's count is no more than clean data shows). No p-value floor depends on its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.fitting import pooled_oof_proba
from airflow_mlops.data.poisoning.stats import finite_or_none, plain, quantiles

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.data.poisoning.features import Encoder

# Standard errors of the reference's ambiguous-row share taken off a class's estimate, beyond the
# share itself (the estimate of a clean batch then stays at 0 in most classes).
BASELINE_Z = 1.0
# The variance added to the baseline's (a reference that finds no ambiguous row still leaves
# sampling noise in the batch's count).
ERROR_FLOOR = 1.0
# Standard errors of sampling noise a class's excess over its reference share must exceed.
EXCESS_Z = 2.5
# A class whose batch count of rows that look like another class is within this many standard
# errors of the reference's share (and which shows no excess) is left alone: its batch looks like
# the clean reference. Only where the reference holds at least MIN_REFERENCE_AMBIGUOUS such rows of
# the class: a share measured, not a small reference's zero.
CLEAN_Z = 4.0
MIN_REFERENCE_AMBIGUOUS = 10
# ... and only where acting would take a material share of the class (at least this share of its
# rows): a handful of rows costs little to lose, and in a large class they may be the flips of a
# rare one (5 frauds of 90 relabelled legitimate are 0.15 % of the legitimate rows, as many as the
# reference's ambiguous share predicts, yet a twentieth of the frauds).
CLEAN_MIN_SHARE = 0.01
# The least label move acted on. A poisoning attack moves a share of a class's rows to another
# label; every data set also holds rows that look like another class (genuinely ambiguous, or a
# kind of one class that mimics another), and no model tells those from moved rows one by one.
# So a move of rows that look like class ``j`` but are labelled ``i`` is acted on only when it is
# a practical share: of the rows of ``j``, the class they would have come from (``SOURCE``), or of
# the rows labelled ``i`` (``DESTINATION``), counted over all classes on that side.
# Without a reference: the batch's own estimate, beyond NOISE_Z Poisson standard errors.
SOURCE_SHARE = 0.02
DESTINATION_SHARE = 0.25
NOISE_Z = 1.0
# With a reference: the moves beyond what its clean rows show (the baseline above) need less.
REFERENCE_SOURCE_SHARE = 0.01
REFERENCE_DESTINATION_SHARE = 0.10
# Thresholds from the batch (no reference, or one without every class): a class's threshold is
# the mean probability its labelled rows give it, which measures the class only while most of its
# rows are its own. When the estimate says at least this share of the rows labelled with a class
# came from others (flips into a rare class outnumber its rows), that mean measures the moved
# rows: the class's threshold is taken again from its rows that are kept, and the estimate redone
# (at most THRESHOLD_ROUNDS times, until the suspects settle). Confident learning assumes each
# label's own class is the larger part of its rows; this is where that fails.
DOMINATED_SHARE = 0.5
THRESHOLD_ROUNDS = 5
# Without a reference, a move of rows labelled ``i`` that look like class ``j`` is bounded by the
# anchor rows of ``j``: the ANCHOR_SHARE of the rows it holds (at least ANCHOR_LEAST) the models
# find likeliest to be ``j``. Where classes do not overlap those rows are all ``j``'s, so the
# share labelled ``i`` among them (plus ANCHOR_Z Poisson standard errors) is the share of ``j``'s
# rows a random move took; where classes overlap, the confident joint also counts the genuine
# rows near the other class (a sixth of a clean batch at class_sep 0.5), the anchors do not.
ANCHOR_SHARE = 0.05
ANCHOR_LEAST = 20
ANCHOR_Z = 2.0


@dataclass
class LabelModel:
    """Class probabilities of the batch's rows from models that never saw them, and what
    confident learning makes of them.

    ``source`` says what the models learnt from: ``"batch and reference"`` (the reference's
    rows are scored too: ``ref_*``) or ``"batch"``.
    """

    status: str
    classes: list[Any]
    y: np.ndarray  # class code per row, -1 where unlabelled
    proba: np.ndarray  # (n, classes) probabilities (NaN rows where unlabelled)
    prior: np.ndarray  # class rates of the rows the models learnt from
    thresholds: np.ndarray  # per class: mean self-confidence (confident learning)
    score: np.ndarray  # p_label - max p_other (NaN unlabelled); below 0: another class likelier
    suggested: np.ndarray  # the likeliest class where it is not the label (-1: the label is)
    source: str = "batch"
    # The reference's rows and their out-of-fold probabilities (same fold models).
    ref_y: np.ndarray | None = None
    ref_proba: np.ndarray | None = None
    # Where the per-class thresholds come from: "reference" (its clean rows, every class among
    # them) or "batch" (the rows labelled with each class; see DOMINATED_SHARE).
    thresholds_from: str = "batch"

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: pd.Series,
        labelled: np.ndarray,
        encoder: Encoder,
        groups: np.ndarray,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
        reference_x: np.ndarray | None = None,
        reference_labels: np.ndarray | None = None,
    ) -> LabelModel:
        """Out-of-fold probabilities from models fitted on the batch and the reference (when
        given); skipped when fewer than two classes are labelled or a class has fewer rows than
        ``folds`` (batch and reference together)."""
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        values = labels.to_numpy()[rows]
        has_ref = reference_x is not None and reference_labels is not None and len(reference_labels) > 0
        both = (
            np.concatenate([values.astype(object), reference_labels.astype(object)])  # type: ignore[union-attr]
            if has_ref
            else values
        )
        classes = _classes_of(both)
        lookup = {str(c): j for j, c in enumerate(classes)}
        codes = np.array([lookup[str(v)] for v in values], dtype=np.int64)
        ref_y = np.array([lookup[str(v)] for v in reference_labels], dtype=np.int64) if has_ref else None  # type: ignore[union-attr]
        y = np.full(n, -1, dtype=np.int64)
        y[rows] = codes
        k = len(classes)
        counts = np.bincount(codes, minlength=k) if k else np.zeros(0, dtype=np.int64)
        if ref_y is not None:
            counts = counts + np.bincount(ref_y, minlength=k)
        if k < 2:
            status = f"skipped: {k} class(es) among the labelled rows, need at least 2"
        elif counts.min() < folds:
            status = f"skipped: a class has {int(counts.min())} labelled rows, need at least folds={folds}"
        else:
            status = "ran"
        if status != "ran":
            empty = np.full((n, max(k, 1)), np.nan)
            nan = np.full(n, np.nan)
            return cls(status, classes, y, empty, np.zeros(k), np.zeros(k), nan, np.full(n, -1))
        batch_proba, ref_proba = pooled_oof_proba(
            x[rows],
            codes,
            k,
            encoder,
            folds=folds,
            max_fit_rows=max_fit_rows,
            seed=seed,
            groups=groups[rows],
            reference_x=reference_x if has_ref else None,
            reference_y=ref_y,
        )
        prior = counts / counts.sum()
        thresholds_from = "batch"
        if ref_y is not None and ref_proba is not None and np.bincount(ref_y, minlength=k).min() > 0:
            thresholds, thresholds_from = _mean_self_confidence(ref_proba, ref_y, k), "reference"
        else:
            thresholds = _mean_self_confidence(batch_proba, codes, k)
        proba = np.full((n, k), np.nan)
        proba[rows] = batch_proba
        score = np.full(n, np.nan)
        suggested = np.full(n, -1, dtype=np.int64)
        score[rows], suggested[rows] = _margins(batch_proba, codes)
        model = cls("ran", classes, y, proba, prior, thresholds, score, suggested)
        model.thresholds_from = thresholds_from
        if ref_y is not None:
            model.source, model.ref_y, model.ref_proba = "batch and reference", ref_y, ref_proba
        return model

    def estimated_issues(self, exclude: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per class: the batch's rows, its estimated issues (the calibrated confident joint:
        ``moves[i, j]`` rows labelled ``i`` that belong to ``j``), and the estimate acted on.

        Without a reference, the moves of a practical size (:data:`SOURCE_SHARE`,
        :data:`DESTINATION_SHARE`), each at most what the anchor rows of the class it came from
        show (:func:`_anchor_bound`; ``anchor_bounded``). With one, also the moves beyond the share of the reference's
        clean rows the same count finds, plus :data:`BASELINE_Z` standard errors (or a class's
        excess over its reference share), of the smaller practical size
        (:data:`REFERENCE_SOURCE_SHARE`, :data:`REFERENCE_DESTINATION_SHARE`), the larger of the
        two; nothing in a class whose batch count the reference's share explains
        (:data:`CLEAN_Z`, :data:`MIN_REFERENCE_AMBIGUOUS`, :data:`CLEAN_MIN_SHARE`;
        ``as_clean_reference``). Rows in ``exclude`` (quarantined by another check) are not
        counted.

        Thresholds from the batch: a class whose estimate is at least :data:`DOMINATED_SHARE` of
        the rows labelled with it has its threshold taken again from the rows labelled with it
        that are kept (not suspect), and the estimate redone, until the suspects settle (at most
        :data:`THRESHOLD_ROUNDS` times). ``thresholds`` and ``dominated`` say what was used."""
        import numpy as np

        estimate = self._estimate(self.thresholds, exclude)
        dominated = np.zeros(len(self.classes), dtype=bool)
        if self.thresholds_from == "batch":
            dominated = estimate["issues"] >= DOMINATED_SHARE * np.maximum(estimate["rows"], 1.0)
        if dominated.any():
            labelled = self.y >= 0 if exclude is None else (self.y >= 0) & ~exclude
            suspects = self._take(estimate["issues"], exclude)[0]
            for _ in range(THRESHOLD_ROUNDS):
                kept = labelled & ~suspects
                thresholds = self.thresholds.copy()
                for j in np.flatnonzero(dominated):
                    own = kept & (self.y == j)
                    if own.any():
                        thresholds[j] = self.proba[own, j].mean()
                estimate = self._estimate(thresholds, exclude)
                again = self._take(estimate["issues"], exclude)[0]
                if np.array_equal(again, suspects):
                    break
                suspects = again
        return {**estimate, "dominated": dominated}

    def _estimate(self, thresholds: np.ndarray, exclude: np.ndarray | None) -> dict[str, np.ndarray]:
        """:meth:`estimated_issues` with the given per-class thresholds."""
        import numpy as np

        k = len(self.classes)
        lab = self.y >= 0
        if exclude is not None:
            lab &= ~exclude
        rows = np.bincount(self.y[lab], minlength=k).astype(float)
        moves = _calibrated_joint(self.proba[lab], self.y[lab], thresholds, k)
        # The rows each class holds by the joint (its column: the rows labelled with it that stay,
        # and those labelled with others that belong to it): the size a move out of it is
        # measured against. Flips into a rare class can outnumber its own rows, and the rows
        # labelled with it are then no measure of how many it had to lose.
        sources = moves.sum(axis=0)
        np.fill_diagonal(moves, 0.0)
        raw = moves.sum(axis=1)
        # Without a reference, nothing says how many rows look like another class in clean data:
        # each move is bounded by what the anchor rows of the class it came from show.
        no_reference = self.ref_y is None or self.ref_proba is None
        bounded = (
            np.minimum(moves, _anchor_bound(self.proba[lab], self.y[lab], k, sources))
            if no_reference
            else moves
        )
        # The batch's own estimate: moves of a practical size beyond Poisson noise.
        own = _practical(bounded, rows, SOURCE_SHARE, DESTINATION_SHARE, NOISE_Z, sources)
        out = {
            "rows": rows,
            "sources": sources,
            "raw": raw,
            "moves": moves,
            "batch_estimate": own,
            "thresholds": thresholds,
        }
        if self.ref_y is None or self.ref_proba is None:
            return {**out, "anchor_bounded": bounded.sum(axis=1), "issues": own}
        ref_rows = np.bincount(self.ref_y, minlength=k).astype(float)
        ref_moves = _calibrated_joint(self.ref_proba, self.ref_y, thresholds, k)
        np.fill_diagonal(ref_moves, 0.0)
        ref_ambiguous = ref_moves.sum(axis=1)
        ref_share = np.divide(ref_ambiguous, ref_rows, out=np.zeros(k), where=ref_rows > 0)
        # Binomial error of the batch's ambiguous rows and of the share measured on the reference.
        error = np.sqrt(
            rows * ref_share + rows**2 * ref_share * (1 - ref_share) / np.maximum(ref_rows, 1) + ERROR_FLOOR
        )
        beyond = np.maximum(0.0, raw - ref_share * rows - BASELINE_Z * error)
        # A class the batch holds more of than the reference says it should has taken in at least
        # that many rows of other classes (flips into a rare class, which its models then learn).
        share = ref_rows / ref_rows.sum()
        total = rows.sum()
        spread = np.sqrt(total * share * (1 - share) + total**2 * share * (1 - share) / ref_rows.sum())
        inflow = np.maximum(0.0, rows - share * total - EXCESS_Z * spread)
        beyond = np.maximum(beyond, inflow)
        # Which classes the moves beyond the baseline came from: the batch's moves in excess of the
        # reference's shares, scaled to each class's estimate (an estimate that is all inflow, with
        # no such excess, stands as it is).
        ref_pair_share = np.divide(
            ref_moves, ref_rows[:, None], out=np.zeros_like(ref_moves), where=ref_rows[:, None] > 0
        )
        excess = np.maximum(0.0, moves - ref_pair_share * rows[:, None])
        totals = excess.sum(axis=1)
        scaled = np.divide(
            excess * beyond[:, None], totals[:, None], out=np.zeros_like(excess), where=totals[:, None] > 0
        )
        reference = np.where(
            totals > 0,
            _practical(scaled, rows, REFERENCE_SOURCE_SHARE, REFERENCE_DESTINATION_SHARE, 0.0, sources),
            beyond,
        )
        # A class the batch holds no more rows that look like another class of than the
        # reference's clean rows show (within CLEAN_Z standard errors), and no excess of, is what
        # a clean batch looks like: acting on its own estimate would take rows that look like
        # another class in clean data too (overlapping classes, noisy outcomes). Only where the
        # reference holds at least MIN_REFERENCE_AMBIGUOUS such rows of the class: a share
        # measured, not a small reference's zero; and only where the batch's own estimate is a
        # material share of the class (CLEAN_MIN_SHARE): a few rows may be a rare class's flips.
        clean = (
            (raw <= ref_share * rows + CLEAN_Z * error)
            & (inflow <= 0)
            & (ref_ambiguous >= MIN_REFERENCE_AMBIGUOUS)
            & (own >= CLEAN_MIN_SHARE * rows)
        )
        return {
            **out,
            "reference_share": ref_share,
            "inflow": inflow,
            "beyond_reference": reference,
            "as_clean_reference": clean,
            "issues": np.where(clean, 0.0, np.maximum(own, reference)),
        }

    def issues(self, exclude: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Suspect rows and the details: per class, the estimated number of rows whose label is
        wrong, taken by the largest margin among the rows whose label is not the likeliest. Rows
        in ``exclude`` (quarantined by another check: out of distribution) are neither counted
        nor taken."""
        estimate = self.estimated_issues(exclude)
        mask, cuts, candidate = self._take(estimate["issues"], exclude)
        per_class = {
            str(plain(c)): {
                "rows": int((self.y == j).sum()),
                "prior": float(self.prior[j]),
                "mean_self_confidence": float(estimate["thresholds"][j]),
                **({"threshold_from_rows_kept": True} if estimate["dominated"][j] else {}),
                "estimated_issues": round(float(estimate["raw"][j]), 2),
                **(
                    {"reference_ambiguous_share": float(estimate["reference_share"][j])}
                    if "reference_share" in estimate
                    else {}
                ),
                **(
                    {"excess_over_reference_share": round(float(estimate["inflow"][j]), 2)}
                    if "inflow" in estimate
                    else {}
                ),
                **(
                    {"as_in_the_clean_reference": True}
                    if "as_clean_reference" in estimate and estimate["as_clean_reference"][j]
                    else {}
                ),
                **(
                    {"bounded_by_anchor_rows": round(float(estimate["anchor_bounded"][j]), 2)}
                    if "anchor_bounded" in estimate
                    else {}
                ),
                "acted_on_by_batch": round(float(estimate["batch_estimate"][j]), 2),
                **(
                    {"acted_on_beyond_reference": round(float(estimate["beyond_reference"][j]), 2)}
                    if "beyond_reference" in estimate
                    else {}
                ),
                "acted_on": round(float(estimate["issues"][j]), 2),
                "cut": finite_or_none(cuts[j]),
                "suspects": int((mask & (self.y == j)).sum()),
                "score_quantiles": quantiles(self.score[self.y == j]),
            }
            for j, c in enumerate(self.classes)
        }
        how = (
            "the calibrated confident joint of the batch; a move of rows from one class to another "
            f"label acted on when at least {SOURCE_SHARE:.0%} of the class they come from or "
            f"{DESTINATION_SHARE:.0%} of the label they went to"
        )
        if self.ref_y is None:
            how += (
                f", each move at most what the anchor rows of its class show (the {ANCHOR_SHARE:.0%} "
                f"of its rows likeliest to be it, plus {ANCHOR_Z:g} standard errors)"
            )
        if self.ref_y is not None:
            how += (
                "; with the reference, also the moves beyond the share of its clean rows it counts "
                f"(plus {BASELINE_Z:g} standard error) of at least {REFERENCE_SOURCE_SHARE:.0%} / "
                f"{REFERENCE_DESTINATION_SHARE:.0%}"
            )
        detail = {
            "method": "confident learning on out-of-fold probabilities (gradient-boosted trees and "
            "a logistic regression, averaged) of models fitted on "
            + ("the batch and the reference" if self.ref_y is not None else "the batch"),
            "model_source": self.source,
            "threshold": f"per class: the estimated number of issues ({how}), taken by margin",
            "candidates": int(candidate.sum()),
            "classes": per_class,
            "cuts": [finite_or_none(c) for c in cuts],
        }
        return mask, detail

    def _take(
        self, issues: np.ndarray, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per class, the ``issues`` rows with the lowest score among the candidates (rows whose
        label is not the likeliest class, not in ``exclude``): the mask, each class's cut (just
        above the highest score taken) and the candidates."""
        import numpy as np

        k = len(self.classes)
        mask = np.zeros(len(self.y), dtype=bool)
        cuts = np.full(k, -math.inf)
        candidate = (self.y >= 0) & (self.suggested >= 0)
        if exclude is not None:
            candidate &= ~exclude
        for j in range(k):
            take = round(float(issues[j]))
            rows = np.flatnonzero(candidate & (self.y == j))
            if take <= 0 or not len(rows):
                continue
            chosen = rows[np.argsort(self.score[rows], kind="stable")[:take]]
            mask[chosen] = True
            cuts[j] = float(np.nextafter(self.score[chosen].max(), np.inf))
        return mask, cuts, candidate

    def row_cut(self, detail: dict[str, Any]) -> np.ndarray:
        import numpy as np

        cuts = np.array([-np.inf if c is None else c for c in detail["cuts"]], dtype=float)
        return np.where(self.y >= 0, cuts[np.maximum(self.y, 0)], np.nan)


def _classes_of(values: np.ndarray) -> list[Any]:
    """The distinct labels, sorted (as strings when mixed), each as its first occurrence."""
    import numpy as np

    keys = values.astype(str) if values.dtype == object else values
    _, first = np.unique(keys, return_index=True)
    return [plain(values[i]) for i in first]


def _mean_self_confidence(proba: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Per class, the mean probability the rows labelled with it give it (confident learning's
    per-class threshold)."""
    import numpy as np

    return np.array([proba[y == j, j].mean() if (y == j).any() else 1.0 for j in range(k)])


def _margins(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``p_label - max_other p``, and the likeliest class where it is not the label
    (-1 where the label is the likeliest)."""
    import numpy as np

    ar = np.arange(len(proba))
    own = proba[ar, y]
    others = proba.copy()
    others[ar, y] = -np.inf
    best = others.argmax(axis=1)
    score = own - others[ar, best]
    return score, np.where(score < 0, best, -1)


def _calibrated_joint(proba: np.ndarray, y: np.ndarray, thresholds: np.ndarray, k: int) -> np.ndarray:
    """The calibrated confident joint: ``[i, j]`` estimates how many rows labelled ``i`` belong to
    ``j``. A row counts for the likeliest class whose probability reaches its threshold; each
    given class's counts are rescaled to its number of rows."""
    import numpy as np

    above = proba >= thresholds[None, :]
    suggested = np.where(above.any(axis=1), np.where(above, proba, -1.0).argmax(axis=1), -1)
    counted = suggested >= 0
    joint = np.zeros((k, k))
    np.add.at(joint, (y[counted], suggested[counted]), 1.0)
    rows = np.bincount(y, minlength=k).astype(float)
    totals = joint.sum(axis=1)
    return np.divide(
        joint * rows[:, None], totals[:, None], out=np.zeros_like(joint), where=totals[:, None] > 0
    )


def _off_diagonal(proba: np.ndarray, y: np.ndarray, thresholds: np.ndarray, k: int) -> np.ndarray:
    """Per given class, the calibrated confident joint's off-diagonal sum: how many of its rows
    belong to another class."""
    import numpy as np

    joint = _calibrated_joint(proba, y, thresholds, k)
    return joint.sum(axis=1) - np.diag(joint)


def _anchor_bound(proba: np.ndarray, y: np.ndarray, k: int, sources: np.ndarray) -> np.ndarray:
    """The most rows labelled ``i`` that can have come from class ``j`` (``[i, j]``; the diagonal
    unbounded), by the anchor rows of ``j``: the :data:`ANCHOR_SHARE` of the rows ``j`` holds
    (``sources[j]``, at least :data:`ANCHOR_LEAST`) that the models find likeliest to be ``j``.
    Where the classes do not overlap, those rows are all of class ``j``, and a label other than
    ``j`` among them is a moved one: a move that took a share of ``j``'s rows at random took the
    same share of its anchor rows. The share labelled ``i`` there, plus :data:`ANCHOR_Z`
    Poisson standard errors, times the rows ``j`` holds, bounds the move (the transition
    estimate of anchor points: Patrini et al., 2017; Xia et al., 2019)."""
    import numpy as np

    bound = np.full((k, k), np.inf)
    for j in range(k):
        size = int(min(len(y), max(ANCHOR_LEAST, round(ANCHOR_SHARE * sources[j]))))
        if size <= 0:
            continue
        anchors = np.argpartition(-proba[:, j], size - 1)[:size]
        labelled = np.bincount(y[anchors], minlength=k).astype(float)
        bound[:, j] = (labelled + ANCHOR_Z * np.sqrt(labelled + 1.0)) / size * sources[j]
    np.fill_diagonal(bound, np.inf)
    return bound


def _practical(
    moves: np.ndarray,
    rows: np.ndarray,
    source: float,
    destination: float,
    z: float,
    sources: np.ndarray,
) -> np.ndarray:
    """Per given class, the rows of ``moves`` (``[i, j]``: labelled ``i``, belonging to ``j``,
    no diagonal) of a practical size: the moves out of class ``j`` when all of them together are
    at least ``source`` of ``sources[j]`` (the rows it holds by the joint), and the moves into
    label ``i`` when they are at least ``destination`` of ``rows[i]`` (the rows labelled ``i``),
    each beyond ``z`` Poisson standard errors of the count."""
    import numpy as np

    out_of, into = moves.sum(axis=0), moves.sum(axis=1)
    from_source = out_of >= source * sources + z * np.sqrt(out_of)
    to_destination = into >= destination * rows + z * np.sqrt(into)
    kept = from_source[None, :] | to_destination[:, None]
    return np.where(kept, moves, 0.0).sum(axis=1)
