"""A deterministic synthetic card-fraud data set, for the examples, the tests and the benchmarks.

Nothing is downloaded: every row comes from a seeded :class:`numpy.random.Generator`, so the same
arguments always give the same frame (and :func:`write_example_data` the same files).

The data is an imbalanced binary classification problem (about 2 % fraud) with three kinds of
fraud: *card testing* (bursts of tiny payments from young accounts), *account takeover* (large
payments at night, at risky merchants, from established accounts) and a few *mimics* (8 % of the
fraud) drawn from the legitimate distribution, which no model can find. Every feature overlaps
between the classes, so no one column separates them, and the mix is non-linear (both tiny and
large amounts are suspicious). Measured on 20,000 + 20,000 rows: a small MLP (sklearn, 64-32) reaches
a holdout ROC AUC of about 0.93, a logistic regression about 0.92.

==================  ========================================================================
column              legitimate | card testing | account takeover
==================  ========================================================================
amount              log-normal, median ~37 | ~6 | ~245 (float, >= 0, cents)
merchant_risk       Beta(2, 8) | Beta(3, 6) | Beta(6, 5) (float in [0, 1])
hour                around 14h, sd 4.5 (both legit and card testing) | 90 % around 2-3h (int 0..23)
country             6 codes; fraud over-represented in BR and NG (string)
account_age_days    Gamma(2, 450), mean ~900 | Gamma(2, 40), mean ~80 | like legit (int >= 0)
n_tx_24h            Poisson(2) | Poisson(8) | Poisson(3) (int >= 0)
is_fraud            the label (int 0/1)
==================  ========================================================================

``shift`` moves every feature's distribution (bigger amounts, riskier merchants, later hours,
more BR/NG, newer accounts, more transactions) and raises the fraud rate a little: it is how the
drifted "live" batch is made.

Command line::

    python -m airflow_mlops.data.generate --out DIR --start 2026-01-01 --days 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

TARGET = "is_fraud"
NUMERIC_FEATURES: tuple[str, ...] = ("amount", "merchant_risk", "hour", "account_age_days", "n_tx_24h")
CATEGORICAL_FEATURES: tuple[str, ...] = ("country",)
FEATURES: tuple[str, ...] = ("amount", "merchant_risk", "hour", "country", "account_age_days", "n_tx_24h")
COLUMNS: tuple[str, ...] = (*FEATURES, TARGET)

FRAUD_RATE = 0.02
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "BR", "NG")
_LEGIT_COUNTRY_P = (0.44, 0.16, 0.14, 0.12, 0.08, 0.06)
_FRAUD_COUNTRY_P = (0.30, 0.10, 0.08, 0.08, 0.20, 0.24)
# Where ``shift`` moves the country mix to (fraction ``shift / (1 + shift)`` of the way).
_SHIFTED_COUNTRY_P = (0.25, 0.10, 0.10, 0.10, 0.25, 0.20)
# Shares of the fraud kinds (the rest, 8 %, mimics legitimate transactions).
_P_CARD_TESTING = 0.45
_P_TAKEOVER = 0.47

REFERENCE_ROWS = 20_000
LIVE_SHIFT = 1.0

# Independent random streams of write_example_data, keyed [seed, stream, day ordinal].
_STREAM_REFERENCE = 1
_STREAM_LIVE = 2
_STREAM_TRAIN = 3
_STREAM_POISON = 4


def derive_seed(*keys: int) -> int:
    """One 63-bit seed from several integers (a stable, well-mixed :class:`numpy.random.SeedSequence`)."""
    import numpy as np

    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _country_p(base: Sequence[float], shift: float) -> np.ndarray:
    import numpy as np

    w = shift / (1.0 + shift)
    p = (1.0 - w) * np.asarray(base, dtype=float) + w * np.asarray(_SHIFTED_COUNTRY_P, dtype=float)
    return p / p.sum()


def generate_fraud_data(n_rows: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Generate ``n_rows`` synthetic card transactions with an ``is_fraud`` label (~2 % positive).

    :param n_rows: number of rows (>= 1).
    :param seed: the random seed; the same seed gives the same frame.
    :param shift: 0 for the training distribution; > 0 moves every feature (drifted data).
    :returns: a frame with the columns of :data:`COLUMNS`, in that order.
    """
    import numpy as np
    import pandas as pd

    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    rng = np.random.default_rng(seed)
    n = n_rows

    fraud = rng.random(n) < FRAUD_RATE * (1.0 + 0.25 * shift)
    # The kinds of fraud (see the module docstring); mimics keep the legitimate draws.
    kind = rng.random(n)
    testing = fraud & (kind < _P_CARD_TESTING)
    takeover = fraud & (kind >= _P_CARD_TESTING) & (kind < _P_CARD_TESTING + _P_TAKEOVER)
    patterned = testing | takeover

    def pick(legit: np.ndarray, card_testing: np.ndarray, account_takeover: np.ndarray) -> np.ndarray:
        return np.where(testing, card_testing, np.where(takeover, account_takeover, legit))

    log_amount = pick(rng.normal(3.6, 0.9, n), rng.normal(1.8, 0.5, n), rng.normal(5.5, 0.6, n))
    amount = np.round(np.exp(log_amount + 0.4 * shift), 2)

    merchant_risk = pick(
        rng.beta(2.0 + shift, 8.0, n), rng.beta(3.0 + shift, 6.0, n), rng.beta(6.0 + shift, 5.0, n)
    )

    day_hour = rng.normal(14.0 + 2.0 * shift, 4.5, n)
    night_hour = np.where(rng.random(n) < 0.9, rng.normal(2.5, 2.0, n), day_hour)
    hour = np.mod(np.rint(pick(day_hour, day_hour, night_hour)), 24).astype("int64")

    legit_country = rng.choice(len(COUNTRIES), size=n, p=_country_p(_LEGIT_COUNTRY_P, shift))
    fraud_country = rng.choice(len(COUNTRIES), size=n, p=_country_p(_FRAUD_COUNTRY_P, shift))
    country = np.asarray(COUNTRIES, dtype=object)[np.where(patterned, fraud_country, legit_country)]

    established = rng.gamma(2.0, 450.0, n)
    age = pick(established, rng.gamma(2.0, 40.0, n), established) / (1.0 + 0.5 * shift)
    account_age_days = np.floor(age).astype("int64")

    n_tx_24h = pick(rng.poisson(2.0, n), rng.poisson(8.0, n), rng.poisson(3.0, n)) + rng.poisson(shift, n)

    df = pd.DataFrame(
        {
            "amount": amount.astype("float64"),
            "merchant_risk": merchant_risk.astype("float64"),
            "hour": hour,
            "country": pd.Series(country, dtype=object),
            "account_age_days": account_age_days,
            "n_tx_24h": n_tx_24h.astype("int64"),
            TARGET: fraud.astype("int64"),
        }
    )
    log.debug("Generated %s rows (seed=%s, shift=%s, fraud rate %.4f)", n, seed, shift, fraud.mean())
    return df


def inject_poison(
    df: pd.DataFrame, *, seed: int, n_conflicting_duplicates: int, n_label_flips: int
) -> pd.DataFrame:
    """Poison a frame made by :func:`generate_fraud_data`, for demos and tests of the screens.

    * Label flips: ``n_label_flips`` rows *deep inside their class* (all of their 10 nearest
      neighbours share their label, on :func:`~airflow_mlops.data.poisoning.build_feature_matrix`)
      get the opposite label: half of them fraud -> legitimate (hiding fraud) as far as such
      fraud rows exist, the rest legitimate -> fraud. No two flipped rows are neighbours.
    * Conflicting duplicates: ``n_conflicting_duplicates`` other rows are copied with the
      opposite label and appended at the end.

    The original rows keep their positions. The positions of the poison are recorded in
    ``result.attrs["poison"]`` (``label_flips``, ``conflicting_duplicates`` and
    ``duplicate_sources``, lists of row positions); :func:`~airflow_mlops.data.io.write_table`
    does not write ``attrs`` to the file.

    :raises ValueError: negative counts, or not enough rows to poison.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.data.poisoning import build_feature_matrix

    if n_conflicting_duplicates < 0 or n_label_flips < 0:
        raise ValueError("n_conflicting_duplicates and n_label_flips must be >= 0")
    rng = np.random.default_rng(seed)
    out = df.reset_index(drop=True).copy()
    y = out[TARGET].to_numpy(copy=True)
    n = len(out)
    k = 10
    flipped: list[int] = []
    blocked = np.zeros(n, dtype=bool)

    if n_label_flips:
        from sklearn.neighbors import NearestNeighbors

        if n <= k:
            raise ValueError(f"need more than {k} rows to inject label flips, got {n}")
        x = build_feature_matrix(out, FEATURES)
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        own = idx == np.arange(n)[:, None]
        own[~own.any(axis=1), -1] = True
        neigh = idx[~own].reshape(n, k)
        deep = (y[neigh] == y[:, None]).all(axis=1)

        def take(candidates: np.ndarray, count: int) -> None:
            for i in rng.permutation(candidates):
                if len(flipped) >= count:
                    return
                if not blocked[i]:
                    flipped.append(int(i))
                    blocked[i] = True
                    blocked[neigh[i]] = True

        take(np.flatnonzero(deep & (y == 1)), n_label_flips // 2)
        take(np.flatnonzero(deep & (y == 0)), n_label_flips)
        if len(flipped) < n_label_flips:
            raise ValueError(
                f"only {len(flipped)} rows deep inside their class; asked for {n_label_flips} flips"
            )
        y[flipped] = 1 - y[flipped]
        out[TARGET] = y

    sources: list[int] = []
    if n_conflicting_duplicates:
        free = np.flatnonzero(~blocked)
        if len(free) < n_conflicting_duplicates:
            raise ValueError(f"only {len(free)} rows free to duplicate; asked for {n_conflicting_duplicates}")
        sources = sorted(int(i) for i in rng.choice(free, size=n_conflicting_duplicates, replace=False))
        dups = out.iloc[sources].copy()
        dups[TARGET] = 1 - dups[TARGET]
        out = pd.concat([out, dups], ignore_index=True)

    out.attrs["poison"] = {
        "label_flips": sorted(flipped),
        "conflicting_duplicates": list(range(n, n + len(sources))),
        "duplicate_sources": sources,
    }
    log.debug("Injected %s label flips and %s conflicting duplicates", len(flipped), len(sources))
    return out


def write_example_data(
    out_dir: str | os.PathLike[str],
    *,
    start: dt.date,
    days: int,
    rows_per_day: int = 4000,
    seed: int = 7,
) -> dict[str, str]:
    """Write the example data set of the quickstart and the example DAGs.

    * ``reference.parquet``: 20,000 clean rows, the training distribution.
    * ``train/<YYYY-MM-DD>/batch.parquet``: one batch of ``rows_per_day`` rows per day from
      ``start``, each with a little poison (``rows_per_day // 400`` label flips and as many
      conflicting duplicates: about 0.75 % of the rows, well below the default 2 % threshold).
    * ``live/batch.parquet``: ``rows_per_day`` rows of drifted data (``shift=1.0``).

    Each file depends only on ``seed`` (and its date), so re-running gives the same files and
    a day's batch is the same whatever ``start`` and ``days`` are.

    :returns: ``{"reference": path, "live": path, "train/<YYYY-MM-DD>": path, ...}``.
    """
    from airflow_mlops.data.io import write_table

    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    out = Path(out_dir)
    paths: dict[str, str] = {}

    reference = generate_fraud_data(REFERENCE_ROWS, seed=derive_seed(seed, _STREAM_REFERENCE))
    paths["reference"] = str(out / "reference.parquet")
    write_table(reference, paths["reference"])

    n_poison = rows_per_day // 400
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        batch = generate_fraud_data(rows_per_day, seed=derive_seed(seed, _STREAM_TRAIN, day.toordinal()))
        batch = inject_poison(
            batch,
            seed=derive_seed(seed, _STREAM_POISON, day.toordinal()),
            n_conflicting_duplicates=n_poison,
            n_label_flips=n_poison,
        )
        key = f"train/{day.isoformat()}"
        paths[key] = str(out / "train" / day.isoformat() / "batch.parquet")
        write_table(batch, paths[key])

    live = generate_fraud_data(rows_per_day, seed=derive_seed(seed, _STREAM_LIVE), shift=LIVE_SHIFT)
    paths["live"] = str(out / "live" / "batch.parquet")
    write_table(live, paths["live"])
    log.info("Wrote example data to %s: reference, %s training batch(es), live", out, days)
    return paths


def write_live_window(
    out_dir: str | os.PathLike[str],
    day: dt.date,
    *,
    shift: float = 0.0,
    rows: int = 4000,
    seed: int = 7,
) -> str:
    """Write one day's live window, ``live/<YYYY-MM-DD>/batch.parquet``, with its labels.

    ``shift=0`` draws from the training distribution (a window with no drift); ``shift=1`` is
    the drifted live data. The rows depend only on ``seed``, ``day`` and ``shift``.

    :returns: the path written.
    """
    from airflow_mlops.data.io import write_table

    window = generate_fraud_data(
        rows, seed=derive_seed(seed, _STREAM_LIVE, day.toordinal(), round(shift * 1000)), shift=shift
    )
    path = Path(out_dir) / "live" / day.isoformat() / "batch.parquet"
    write_table(window, path)  # atomic: temporary name, then rename
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m airflow_mlops.data.generate --out DIR --start DATE --days N``."""
    import json

    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops.data.generate",
        description="Write the synthetic card-fraud example data (reference, daily training batches, live).",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=7, help="number of daily training batches (default 7)")
    parser.add_argument("--rows-per-day", type=int, default=4000, help="rows per batch (default 4000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = write_example_data(
        args.out, start=args.start, days=args.days, rows_per_day=args.rows_per_day, seed=args.seed
    )
    print(json.dumps(paths, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
