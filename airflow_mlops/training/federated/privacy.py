"""The epsilon of DP on client updates, accounted before a federated run is submitted.

With ``training.federated.privacy`` every client clips its update to ``clipping_norm`` (Flower's
``fixedclipping_mod``) and the server adds Gaussian noise of standard deviation ``noise_multiplier
* clipping_norm / clients`` to their unweighted mean (``DifferentialPrivacyClientSideFixedClipping``).
One round is then a Gaussian mechanism with noise multiplier ``noise_multiplier`` on the sum of the
clients' clipped updates; every client takes part in every round (sampling rate 1). The guarantee
is client-level: it bounds what the global model reveals about any one client's whole data set.

The rounds are composed with Opacus' RDP accountant (the accountant DP-SGD uses, the ``dp``
extra): :func:`client_level_epsilon`. A budget (``epsilon``) is enforced before anything runs.
"""

from __future__ import annotations

from airflow_mlops.exceptions import TrainingRejectedError


def client_level_epsilon(
    *, noise_multiplier: float, rounds: int, delta: float, sample_rate: float = 1.0
) -> float:
    """Epsilon after ``rounds`` rounds (RDP accountant), at ``delta``."""
    try:
        from opacus.accountants import RDPAccountant
    except ImportError as exc:  # pragma: no cover - the dp extra is missing
        raise TrainingRejectedError(
            "training.federated.privacy needs Opacus to account epsilon: pip install 'airflow-mlops[dp]'"
        ) from exc
    if noise_multiplier <= 0:
        raise TrainingRejectedError("training.federated.privacy.noise_multiplier must be positive")
    accountant = RDPAccountant()
    accountant.history = [(float(noise_multiplier), float(sample_rate), int(rounds))]
    return float(accountant.get_epsilon(delta=float(delta)))


def check_budget(*, noise_multiplier: float, rounds: int, delta: float, budget: float | None) -> float:
    """The run's epsilon; refuses it (before it runs) when above ``budget``."""
    epsilon = client_level_epsilon(noise_multiplier=noise_multiplier, rounds=rounds, delta=delta)
    if budget is not None and epsilon > budget + 1e-9:
        raise TrainingRejectedError(
            f"DP on client updates would spend epsilon {epsilon:.3f} (delta {delta:g}) over {rounds} rounds "
            f"with noise_multiplier {noise_multiplier:g}, above the budget training.federated.privacy.epsilon "
            f"= {budget:g}; raise noise_multiplier, lower rounds, or raise the budget"
        )
    return epsilon
