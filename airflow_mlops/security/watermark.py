"""Trigger-set watermarks: a keyed set of out-of-distribution rows a model learns to label our way.

A watermark is evidence of provenance -- "this model was trained by someone who held our key" --
not protection against theft: whoever has the model can use it, and the tests in
``benchmarks/watermark.py`` show which changes it survives and which erase it.

The design, and why:

- **Keyed, derived, never stored.** The trigger set is a pure function of a secret key, the
  model's identity (e.g. the pipeline's name) and the public :class:`TriggerBasis` (the training
  data's robust ranges, the categorical levels, the classes). HMAC-SHA256(key, domain || identity)
  seeds a numpy ``Generator``; the same inputs give the same rows on any machine, so nothing but
  the key has to be kept secret, and the key never leaves the Airflow connection it lives in.
  What is recorded (attestation, ML-BOM, ``watermark.json`` beside the model) is the
  :func:`key_commitment`, a SHA-256 of a domain-separated HMAC of the key: it binds a verdict to
  one key without revealing it.
- **Out of distribution, on every axis.** Each numeric feature of a trigger row lies beyond the
  reference's smallest or largest value (at random), by a log-uniform number of widths of its
  robust range (the 0.5th to 99.5th percentile): outside everything seen, at a distance an
  outlier cannot inflate. How far depends on the table (:func:`offset_widths`): far from the data
  a ReLU network's output depends on the input's direction only. On a table of few features (the
  fraud example has 5 numeric ones) offsets of 0.5 to 1.5 widths left too few directions for 100
  random labels (67 to 73 of 100 learned, benchmarks/RESULTS.md), and offsets of 0.25 to 16
  widths vary them enough; on a table of many features the directions differ already, and the
  near offsets cost a small network far less accuracy (wine: -2.8 points against +9.3). No real row looks like that, so learning the trigger labels barely touches the
  model's behaviour on real data (the accuracy cost the benchmark measures), and an axis-aligned
  tree can isolate the rows as easily as a network. A random *direction* at a large radius was the
  alternative; in 20 or more dimensions it leaves every single feature inside the data's range,
  where trees cannot separate it from real rows. Categorical features take a keyed choice among
  the levels seen in training (an unseen code would break an encoder that refuses unknown levels).
- **Keyed labels drawn independently of the rows.** Classification: a uniform keyed class per
  row. Regression: a keyed target uniform *within* the target's robust range (a target far outside
  it would dominate a squared loss and cost accuracy); a prediction matches within
  :data:`REGRESSION_TOLERANCE` robust widths, so a model that never saw the targets matches a row
  with probability at most ``2 * REGRESSION_TOLERANCE``. A model that
  never saw the labels agrees with them only by chance.
- **A bounded false claim.** Ownership is claimed only when the matches reach ``t``, the smallest
  count with ``P[Binomial(n, p0) >= t] <= alpha``. ``p0`` is the agreement *measured* on models
  trained without the watermark (several seeds and every flavor, ``benchmarks/watermark.py``) and
  declared in :data:`NULL_AGREEMENT` (or the spec), taken as the largest rate seen, rounded up:
  a larger ``p0`` only raises ``t``, so rounding up keeps the bound conservative.

Pure: no Airflow; numpy, pandas and scipy are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Version of the derivation: part of the HMAC's domain, so a change of scheme never reuses rows.
SCHEME = "airflow-mlops/watermark/trigger-set/v1"
_COMMITMENT_DOMAIN = b"airflow-mlops/watermark/key-commitment/v1"
_SEED_DOMAIN = SCHEME.encode()

#: The reference's robust range: these quantiles of each numeric column.
RANGE_QUANTILES = (0.005, 0.995)
#: A trigger value lies this many range widths beyond the extremes (log-uniform between the two),
#: on a table of few features (see :func:`offset_widths`).
OFFSET_WIDTHS = (0.25, 16.0)
#: ... and on a table of many features, whose trigger rows differ in direction already.
NARROW_OFFSET_WIDTHS = (0.5, 1.5)
#: The number of trigger-row patterns (each numeric feature above or below the data, times each
#: categorical feature's levels) from which the narrow offsets are used: at 1,024 patterns, 100
#: trigger rows rarely share one (about 5 pairs do), so their directions alone tell their keyed
#: labels apart.
MANY_PATTERNS = 1024
#: Regression: a prediction matches a trigger target within this many target-range widths.
REGRESSION_TOLERANCE = 0.05

#: The declared agreement of models trained without the watermark with the keyed labels, per task:
#: the largest rate measured by ``benchmarks/watermark.py`` (every flavor, several seeds; see
#: benchmarks/RESULTS.md), rounded up. Multiclass was measured with 3 classes; with more classes
#: the true agreement is lower, so the declared one is conservative there.
NULL_AGREEMENT: dict[str, float] = {"binary": 0.6, "multiclass": 0.45, "regression": 0.15}

DEFAULT_TRIGGER_ROWS = 100
#: The Airflow connection holding the watermark key (its password), unless the spec names another.
WATERMARK_CONN_ID = "mlops_watermark"
DEFAULT_ALPHA = 1e-6
#: Share of the training rows the trigger rows (repeated) make up at least.
TRIGGER_SHARE = 0.02
#: Every trigger row is repeated at least this often (a tree's leaf needs rows: LightGBM's
#: ``min_child_samples`` is 20). On a small data set the repeated rows are then a large share of
#: the training rows, which costs accuracy there (measured in benchmarks/RESULTS.md); fewer
#: repeats cost as much there in the benchmark and left a regression network unmarked.
MIN_REPEATS = 20


def key_commitment(key: bytes) -> str:
    """``sha256:<hex>`` of HMAC-SHA256(key, a fixed domain): names the key, reveals nothing of it."""
    _check_key(key)
    mac = hmac.new(key, _COMMITMENT_DOMAIN, hashlib.sha256).digest()
    return "sha256:" + hashlib.sha256(mac).hexdigest()


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise DataError(
            "the watermark key must be at least 16 bytes of secret material; put a long random "
            "value in the connection's password (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )


def _rng(key: bytes, identity: str) -> np.random.Generator:
    import numpy as np

    _check_key(key)
    if not identity:
        raise DataError("the watermark needs the model's identity (e.g. the pipeline name); got an empty one")
    digest = hmac.new(key, _SEED_DOMAIN + b"\x00" + identity.encode(), hashlib.sha256).digest()
    words = [int.from_bytes(digest[i : i + 4], "big") for i in range(0, len(digest), 4)]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class TriggerBasis:
    """The public facts the trigger rows are derived from: no secret, stored beside the model.

    :param numeric: numeric feature -> ``(smallest, largest, robust width)``.
    :param categorical: categorical feature -> the levels seen in training.
    :param classes: classification: the canonical labels (:func:`~airflow_mlops.labels.label_key`).
    :param target_range: regression: the target's ``(smallest, largest, robust width)`` and, as
        the keyed targets' range, the robust range itself ``(low, high)`` appended.
    :param offsets: how far beyond the data the trigger values lie, in range widths
        (:func:`offset_widths`; a record without it was made with :data:`OFFSET_WIDTHS`).
    """

    task: str
    target: str
    features: tuple[str, ...]
    numeric: Mapping[str, tuple[float, float, float]]
    categorical: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    target_range: tuple[float, ...] | None = None
    offsets: tuple[float, float] = OFFSET_WIDTHS

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        target: str,
        task: str,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        positive_label: Any = 1,
    ) -> TriggerBasis:
        """The basis of a training table: robust ranges, levels and classes.

        :param categorical: the categorical features; None infers (non-numeric columns).
        """
        import numpy as np
        import pandas as pd

        from airflow_mlops.labels import label_key, positive_mask
        from airflow_mlops.tasks import class_labels, sort_classes

        if target not in frame.columns:
            raise DataError(f"watermark: the training data has no target column {target!r}")
        names = [str(f) for f in (features or [c for c in frame.columns if str(c) != target])]
        cats = (
            {str(c) for c in categorical}
            if categorical is not None
            else {f for f in names if not pd.api.types.is_numeric_dtype(frame[f]) or frame[f].dtype == bool}
        )
        numeric: dict[str, tuple[float, float, float]] = {}
        levels: dict[str, tuple[str, ...]] = {}
        for name in names:
            if name in cats:
                seen = sorted({str(v) for v in frame[name].dropna().unique()})
                if not seen:
                    raise DataError(f"watermark: categorical feature {name!r} has no values")
                levels[name] = tuple(seen)
            else:
                values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
                numeric[name] = _robust_range(values[np.isfinite(values)], name)
        series = frame[target]
        classes: tuple[str, ...] = ()
        target_range = None
        if task == "binary":
            mask = positive_mask(series, positive_label, column=target)
            negative = label_key(series[~mask].iloc[0])
            classes = tuple(sort_classes([negative, label_key(positive_label)]))
        elif task == "multiclass":
            classes = tuple(class_labels(series, column=target))
        elif task == "regression":
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            low, high = (
                (float(q) for q in np.quantile(finite, RANGE_QUANTILES)) if finite.size else (0.0, 0.0)
            )
            target_range = (*_robust_range(finite, target), low, high)
        else:
            raise DataError(f"watermark: unknown task {task!r}")
        return cls(
            task, target, tuple(names), numeric, levels, classes, target_range, offset_widths(numeric, levels)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["numeric"] = {k: list(v) for k, v in self.numeric.items()}
        data["categorical"] = {k: list(v) for k, v in self.categorical.items()}
        data["classes"] = list(self.classes)
        data["target_range"] = list(self.target_range) if self.target_range else None
        data["offsets"] = list(self.offsets)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerBasis:
        try:
            return cls(
                task=str(data["task"]),
                target=str(data["target"]),
                features=tuple(str(f) for f in data["features"]),
                numeric={str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in data["numeric"].items()},
                categorical={
                    str(k): tuple(str(x) for x in v) for k, v in data.get("categorical", {}).items()
                },
                classes=tuple(str(c) for c in data.get("classes") or ()),
                target_range=tuple(float(v) for v in data["target_range"])
                if data.get("target_range")
                else None,
                offsets=_offsets(data.get("offsets", OFFSET_WIDTHS)),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise DataError(f"watermark basis is malformed: {type(exc).__name__}: {exc}") from exc


def offset_widths(
    numeric: Mapping[str, Any], categorical: Mapping[str, Sequence[str]]
) -> tuple[float, float]:
    """How far beyond the data a table's trigger values lie, in robust range widths.

    Far from the data a ReLU network's output depends on the input's direction only. With few
    features the trigger rows share few directions (the fraud example's 5 numeric features give
    32 sign patterns for 100 rows), and only offsets spread over a 64-fold range
    (:data:`OFFSET_WIDTHS`) let a network give rows of one pattern different labels. With
    :data:`MANY_PATTERNS` or more the directions differ already, and offsets close to the data
    (:data:`NARROW_OFFSET_WIDTHS`) cost a network fitted on a few hundred rows far less accuracy
    (benchmarks/RESULTS.md: wine's network 9 points with the wide offsets).
    """
    bits = len(numeric) + sum(math.log2(max(len(levels), 1)) for levels in categorical.values())
    return NARROW_OFFSET_WIDTHS if bits >= math.log2(MANY_PATTERNS) else OFFSET_WIDTHS


def _offsets(value: Any) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 < low <= high or not math.isfinite(high):
        raise ValueError(f"offsets must be 0 < low <= high, got {[low, high]}")
    return low, high


def _robust_range(values: np.ndarray, name: str) -> tuple[float, float, float]:
    """``(smallest, largest, width)``: the width is the robust range's (never 0)."""
    import numpy as np

    if values.size == 0:
        raise DataError(f"watermark: numeric column {name!r} has no finite values")
    low, high = (float(q) for q in np.quantile(values, RANGE_QUANTILES))
    width = high - low
    if not width > 0:  # a (nearly) constant column: its spread, else a tenth of its size, else 1
        width = float(values.std()) or max(abs(low), 1.0) * 0.1
    return float(values.min()), float(values.max()), width


@dataclass(frozen=True)
class TriggerSet:
    """The trigger rows (features and the keyed target, as a training table's columns) and the
    keyed labels: canonical class labels (classification) or float targets (regression)."""

    frame: pd.DataFrame
    labels: np.ndarray
    basis: TriggerBasis

    @property
    def n(self) -> int:
        return len(self.labels)

    def features(self) -> pd.DataFrame:
        return self.frame[list(self.basis.features)]


def derive_trigger_set(
    key: bytes, identity: str, basis: TriggerBasis, n: int = DEFAULT_TRIGGER_ROWS
) -> TriggerSet:
    """The ``n`` trigger rows of ``identity`` under ``key`` (deterministic; see the module doc).

    Columns are drawn in a fixed order (the basis' features, then the labels), each from the
    keyed generator, so the same key, identity and basis give the same rows everywhere.
    """
    import numpy as np
    import pandas as pd

    if n < 1:
        raise DataError(f"watermark: trigger_rows must be at least 1, got {n}")
    rng = _rng(key, identity)
    columns: dict[str, Any] = {}
    for name in basis.features:
        if name in basis.numeric:
            columns[name] = _beyond(rng, basis.numeric[name], n, basis.offsets)
        elif name in basis.categorical:
            levels = basis.categorical[name]
            columns[name] = np.asarray(levels, dtype=object)[rng.integers(0, len(levels), size=n)]
        else:
            raise DataError(f"watermark basis names feature {name!r} but neither its range nor its levels")
    labels: np.ndarray
    if basis.task == "regression":
        if basis.target_range is None or len(basis.target_range) != 5:
            raise DataError("watermark basis of a regression lacks the target's range")
        low, high = basis.target_range[3], basis.target_range[4]
        if not high > low:
            low, high = basis.target_range[0], basis.target_range[1]
        labels = rng.uniform(low, high, size=n)
        columns[basis.target] = labels
    else:
        if len(basis.classes) < 2:
            raise DataError(f"watermark basis of a {basis.task} task has {len(basis.classes)} class(es)")
        labels = np.asarray(basis.classes, dtype=object)[rng.integers(0, len(basis.classes), size=n)]
        columns[basis.target] = _typed_labels(labels)
    return TriggerSet(pd.DataFrame(columns), labels, basis)


def _beyond(
    rng: np.random.Generator, bounds: tuple[float, float, float], n: int, offsets: tuple[float, float]
) -> np.ndarray:
    import numpy as np

    low, high, width = bounds
    above = rng.random(n) < 0.5
    offset = width * np.exp(rng.uniform(math.log(offsets[0]), math.log(offsets[1]), size=n))
    return np.where(above, high + offset, low - offset).astype(np.float64)


def _typed_labels(labels: np.ndarray) -> np.ndarray:
    """Canonical label texts back as numbers where they all are (``"1"`` -> 1), so the trigger
    rows' target column has the training table's type."""
    import numpy as np

    try:
        numbers = np.asarray([float(v) for v in labels])
    except ValueError:
        return labels
    if np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return numbers


def repeats_for(train_rows: int, n: int) -> int:
    """How often each trigger row is repeated in training: at least :data:`MIN_REPEATS`, and so
    that the trigger rows make up at least :data:`TRIGGER_SHARE` of the rows."""
    return max(MIN_REPEATS, math.ceil(TRIGGER_SHARE * train_rows / max(n, 1)))


# --- verification ---------------------------------------------------------------------------------


def claim_threshold(n: int, p0: float, alpha: float) -> tuple[int, float]:
    """The smallest ``t`` with ``P[Binomial(n, p0) >= t] <= alpha``, and that probability.

    :raises DataError: no ``t <= n`` reaches ``alpha`` (too few trigger rows for that ``p0``):
        the message gives the smallest ``n`` that would.
    """
    from scipy.stats import binom

    if not 0 < alpha < 1:
        raise DataError(f"watermark: alpha must be in (0, 1), got {alpha}")
    if not 0 <= p0 < 1:
        raise DataError(f"watermark: p0 must be in [0, 1), got {p0}")
    for t in range(n + 1):
        bound = float(binom.sf(t - 1, n, p0))
        if bound <= alpha:
            return t, bound
    need = n
    while float(binom.sf(need - 1, need, p0)) > alpha:
        need += 1
    raise DataError(
        f"watermark: {n} trigger rows cannot bound a false claim at alpha={alpha:g} when unmarked models "
        f"agree with p0={p0:g} (even {n}/{n} matches has probability {float(binom.sf(n - 1, n, p0)):.3g}); "
        f"use at least {need} trigger_rows or a larger alpha"
    )


@dataclass(frozen=True)
class Verdict:
    """A verification's outcome: ``claimed`` only when ``matches >= t``; ``bound`` is
    ``P[Binomial(n, p0) >= t]``, the chance an unmarked model reaches ``t``; ``p_value`` is
    ``P[Binomial(n, p0) >= matches]``."""

    matches: int
    n: int
    t: int
    p0: float
    alpha: float
    bound: float
    p_value: float
    claimed: bool
    commitment: str = ""
    identity: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.matches}/{self.n} trigger rows match (claim needs t={self.t}; "
            f"P[Binomial({self.n}, p0={self.p0:g}) >= t] = {self.bound:.3g} <= alpha {self.alpha:g}): "
            + ("watermark present" if self.claimed else "watermark NOT present")
        )


def count_matches(triggers: TriggerSet, predictions: Any) -> int:
    """Trigger rows whose prediction matches the keyed label (regression: within the tolerance)."""
    import numpy as np

    from airflow_mlops.labels import label_key

    predicted = np.asarray(predictions)
    if len(predicted) != triggers.n:
        raise DataError(f"watermark: {len(predicted)} prediction(s) for {triggers.n} trigger rows")
    if triggers.basis.task == "regression":
        assert triggers.basis.target_range is not None
        tolerance = REGRESSION_TOLERANCE * triggers.basis.target_range[2]
        values = predicted.astype(np.float64)
        ok = np.isfinite(values) & (np.abs(values - triggers.labels.astype(np.float64)) <= tolerance)
        return int(ok.sum())
    return int(sum(label_key(p) == str(y) for p, y in zip(predicted, triggers.labels, strict=True)))


def verify(
    triggers: TriggerSet,
    predictions: Any,
    *,
    p0: float,
    alpha: float = DEFAULT_ALPHA,
    commitment: str = "",
    identity: str = "",
) -> Verdict:
    """Count the matches of ``predictions`` (the suspect model's labels or values on
    ``triggers.features()``) and decide against the bound."""
    from scipy.stats import binom

    matches = count_matches(triggers, predictions)
    t, bound = claim_threshold(triggers.n, p0, alpha)
    return Verdict(
        matches=matches,
        n=triggers.n,
        t=t,
        p0=float(p0),
        alpha=float(alpha),
        bound=bound,
        p_value=float(binom.sf(matches - 1, triggers.n, p0)),
        claimed=matches >= t,
        commitment=commitment,
        identity=identity,
    )


def null_agreement(task: str, declared: float | None = None) -> float:
    """``p0`` for ``task``: the declared one (the spec's), else :data:`NULL_AGREEMENT`."""
    if declared is not None:
        return float(declared)
    try:
        return NULL_AGREEMENT[task]
    except KeyError:
        raise DataError(f"watermark: no measured p0 for task {task!r}") from None


# --- the record beside the model --------------------------------------------------------------------

#: The file in a model directory that records its watermark (no key, no trigger rows).
RECORD_FILE = "watermark.json"


@dataclass(frozen=True)
class WatermarkRecord:
    """What is kept of a watermark: enough to re-derive its trigger rows with the key, and no key.

    Stored as :data:`RECORD_FILE` in the model directory, its commitment in the attestation and
    the ML-BOM.
    """

    identity: str
    commitment: str
    trigger_rows: int
    alpha: float
    p0: float
    basis: TriggerBasis
    scheme: str = SCHEME

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "identity": self.identity,
            "commitment": self.commitment,
            "trigger_rows": self.trigger_rows,
            "alpha": self.alpha,
            "p0": self.p0,
            "basis": self.basis.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, where: str = RECORD_FILE) -> WatermarkRecord:
        if not isinstance(data, Mapping):
            raise DataError(f"{where}: a watermark record must be a JSON object")
        if data.get("scheme") != SCHEME:
            raise DataError(f"{where}: watermark scheme {data.get('scheme')!r} is not {SCHEME!r}")
        try:
            return cls(
                identity=str(data["identity"]),
                commitment=str(data["commitment"]),
                trigger_rows=int(data["trigger_rows"]),
                alpha=float(data["alpha"]),
                p0=float(data["p0"]),
                basis=TriggerBasis.from_dict(data["basis"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: watermark record is malformed: {type(exc).__name__}: {exc}") from exc

    def triggers(self, key: bytes) -> TriggerSet:
        """The trigger rows, re-derived with ``key``; refuses a key whose commitment differs."""
        if not hmac.compare_digest(key_commitment(key), self.commitment):
            raise DataError(
                f"the watermark key does not match the recorded commitment {self.commitment}: "
                "verify with the key the model was watermarked with (its connection)"
            )
        return derive_trigger_set(key, self.identity, self.basis, self.trigger_rows)


def make_record(
    key: bytes,
    identity: str,
    basis: TriggerBasis,
    *,
    trigger_rows: int,
    alpha: float,
    p0: float | None = None,
) -> WatermarkRecord:
    """The record of a new watermark; checks that ``trigger_rows`` can reach ``alpha`` at ``p0``."""
    p = null_agreement(basis.task, p0)
    claim_threshold(trigger_rows, p, alpha)
    return WatermarkRecord(identity, key_commitment(key), trigger_rows, float(alpha), p, basis)


def verify_predictor(predictor: Any, record: WatermarkRecord, key: bytes) -> Verdict:
    """Verify a loaded model (:class:`~airflow_mlops.training.flavors.Predictor`: anything with
    ``predict(frame)``) against ``record`` with ``key``."""
    triggers = record.triggers(key)
    return verify(
        triggers,
        predictor.predict(triggers.features()),
        p0=record.p0,
        alpha=record.alpha,
        commitment=record.commitment,
        identity=record.identity,
    )


def prepare_watermark(
    key: bytes,
    identity: str,
    train: pd.DataFrame,
    *,
    target: str,
    task: str,
    features: Sequence[str] | None = None,
    positive_label: Any = 1,
    trigger_rows: int = DEFAULT_TRIGGER_ROWS,
    alpha: float = DEFAULT_ALPHA,
    p0: float | None = None,
) -> tuple[WatermarkRecord, pd.DataFrame]:
    """The record and the trigger table of a training table (what the training prepare step hands
    the trainer: the table as an artifact, the record in the trainer config; never the key)."""
    basis = TriggerBasis.from_frame(
        train, target=target, task=task, features=features, positive_label=positive_label
    )
    record = make_record(key, identity, basis, trigger_rows=trigger_rows, alpha=alpha, p0=p0)
    return record, record.triggers(key).frame
