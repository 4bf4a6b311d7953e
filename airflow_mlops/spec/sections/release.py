"""The spec's ``security`` and ``registry`` sections: signing, the rollout, the approval."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.connections import MLFLOW_CONN_ID, SIGNING_CONN_ID
from airflow_mlops.spec.sections.base import Duration, StrictModel
from airflow_mlops.spec.sections.evaluation import METRIC_RANGES, ChampionComparison, MetricName


class SigningConfig(StrictModel):
    method: Literal["key", "certificate", "sigstore"] = Field(
        "key",
        description="`key`: an elliptic-curve key pair. `certificate`: a key with its X.509 signing "
        "certificate and chain; verifiers trust the root CA bundle (and optionally an identity). "
        "`sigstore`: keyless signing with an OIDC identity (Fulcio certificate, Rekor log); "
        "verifiers trust the identity and its issuer. The connection must hold this method "
        "(extra `method`); another is refused.",
    )
    connection: str = Field(
        SIGNING_CONN_ID,
        description="Airflow connection holding the signing identity: the PEM private key "
        "(password) and the public key (extra `public_key`); for `certificate` also extra "
        "`certificate`, `certificate_chain`, `ca_bundle`, `identity`; for `sigstore` extra "
        "`identity`, `oidc_issuer` and an optional token (password). See docs/security.md.",
    )


class SecurityConfig(StrictModel):
    """Model scanning and signing. Scanning always runs; it cannot be switched off."""

    signing: SigningConfig = Field(default_factory=SigningConfig)
    allowed_pickle_globals: list[str] = Field(
        default_factory=list,
        description="Extra `module.name` globals the pickle scanner accepts (default: none).",
    )


class RolloutGate(StrictModel):
    """The later gate of a shadow or canary rollout, run on each live window of the monitor DAG."""

    min_rows: int = Field(
        500, ge=1, description="Rows of one live window both models must score before it decides."
    )
    min_agreement: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of rows on which candidate and champion decide alike: the same class (binary: "
        "each at its own threshold), or for a regression a prediction within `max_relative_error` of the "
        "champion's; null: not checked.",
    )
    max_relative_error: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Regression: a row agrees when |candidate - champion| <= max_relative_error x "
        "max(|champion|, the window's mean |champion|).",
    )
    compare_to_champion: dict[MetricName, ChampionComparison] = Field(
        default_factory=dict,
        description="On labelled windows: how far the candidate may fall behind the champion on the "
        "same live rows, e.g. `{roc_auc: {max_regression: 0.02}}`. An unlabelled window cannot "
        "decide these and waits for the next.",
    )
    max_windows: int = Field(
        7,
        ge=1,
        le=365,
        description="Windows without a decision (too few rows, no labels) before the rollout is "
        "aborted: a rollout that cannot decide ends, it never becomes champion by default.",
    )

    @model_validator(mode="after")
    def _decides_something(self) -> RolloutGate:
        if self.min_agreement is None and not self.compare_to_champion:
            raise ValueError("the rollout gate checks nothing: set min_agreement or compare_to_champion")
        for metric, comparison in self.compare_to_champion.items():
            low, high = METRIC_RANGES[metric]
            if comparison.max_regression >= high - low:
                raise ValueError(
                    f"compare_to_champion.{metric}.max_regression {comparison.max_regression:g} lets any "
                    "candidate pass"
                )
        return self


class RolloutConfig(StrictModel):
    """`direct`, `shadow` (the candidate sees traffic mirrored, its answers unused) or `canary`
    (the serving layer sends it a share of traffic); see docs/spec.md."""

    strategy: Literal["direct", "shadow", "canary"] = Field("direct")
    alias: str | None = Field(
        None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="The rollout alias the candidate gets first; default: `shadow` or `canary`.",
    )
    traffic: float | None = Field(
        None,
        gt=0,
        le=0.5,
        description="`canary`: the share of requests the serving layer sends to the canary "
        "(registered-model tag `mlops.<alias>.traffic_share`); default 0.1.",
    )
    gate: RolloutGate = Field(default_factory=RolloutGate)

    @property
    def rollout_alias(self) -> str | None:
        return None if self.strategy == "direct" else (self.alias or self.strategy)

    @property
    def traffic_share(self) -> float | None:
        if self.strategy != "canary":
            return None
        return 0.1 if self.traffic is None else self.traffic

    @model_validator(mode="after")
    def _settings_fit_strategy(self) -> RolloutConfig:
        if self.traffic is not None and self.strategy != "canary":
            raise ValueError(f"`traffic` applies to `strategy: canary`, not {self.strategy!r}")
        if self.strategy == "direct" and ("gate" in self.model_fields_set or self.alias):
            raise ValueError(
                "`alias` and `gate` apply to `shadow` and `canary`; `direct` moves the alias at once"
            )
        return self


class ApprovalConfig(StrictModel):
    """A human-in-the-loop approval (Airflow 3's ApprovalOperator) before the alias moves."""

    timeout: Duration | None = Field(
        dt.timedelta(days=1),
        description="How long to wait for an answer; no answer in time rejects (the alias stays). "
        "null: wait without limit.",
    )
    assigned_users: list[str] = Field(
        default_factory=list,
        description="Airflow user ids (or names) who may answer; empty: anyone allowed to respond.",
    )
    subject: str | None = Field(
        None, description="Headline of the request; default names the model and version."
    )

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be positive")
        return value


class RegistryConfig(StrictModel):
    """MLflow model registry."""

    model_name: str = Field(min_length=1, max_length=256)
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    connection: str = Field(
        MLFLOW_CONN_ID, description="Airflow connection with the MLflow tracking server URL (host)."
    )
    experiment: str | None = Field(None, description="MLflow experiment; default: the pipeline name.")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig,
        description="How a blessed version reaches users: `direct` (the alias moves at once), "
        "`shadow` or `canary` (a rollout alias first; the monitor's live windows decide).",
    )
    approval: ApprovalConfig | None = Field(
        None,
        description="A person approves in the Airflow UI (human-in-the-loop) before the alias moves; "
        "the approver is recorded.",
    )

    @model_validator(mode="after")
    def _rollout_alias_differs(self) -> RegistryConfig:
        if self.rollout.strategy != "direct" and self.rollout.rollout_alias == self.alias:
            raise ValueError(
                f"rollout.alias {self.rollout.rollout_alias!r} is the champion alias; name the "
                "rollout alias differently (default: the strategy's name)"
            )
        return self


# `monitoring.reference` values that are not locations.
