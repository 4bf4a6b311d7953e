"""The spec's ``training`` section: the model, its parameters, privacy, and the backends
(local, Kubernetes, Docker) it runs on."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from airflow_mlops.spec.sections.base import ENTRYPOINT_PATTERN, Duration, StrictModel
from airflow_mlops.training.params import (
    BUILTIN_MODELS,
    NETWORK_PARAMS,
    PRIVACY,
    RUN_SETTINGS,
    WATERMARK_ALPHA,
    WATERMARK_CONN_ID,
    WATERMARK_TRIGGER_ROWS,
)

_P = NETWORK_PARAMS  # defaults and bounds: one table with the trainer's check (training/params.py)
_DP = PRIVACY
_RUN = RUN_SETTINGS


class TrainingParams(StrictModel):
    """Hyper-parameters of the built-in models (``mlp``; ``cnn`` uses them for its dense head)."""

    epochs: int = Field(_P["epochs"].default, **_P["epochs"].bounds())
    lr: float = Field(_P["lr"].default, **_P["lr"].bounds())
    batch_size: int = Field(_P["batch_size"].default, **_P["batch_size"].bounds())
    hidden_units: list[Annotated[int, Field(**_P["hidden_units"].item_bounds())]] = Field(
        default_factory=_P["hidden_units"].fresh_default, **_P["hidden_units"].length_bounds()
    )
    dropout: float = Field(_P["dropout"].default, **_P["dropout"].bounds())
    weight_decay: float = Field(_P["weight_decay"].default, **_P["weight_decay"].bounds())
    class_weight: Literal["balanced", "none"] = Field(
        _P["class_weight"].default, description="`balanced` weighs the positive class by its rarity."
    )
    image_shape: list[Annotated[int, Field(**_P["image_shape"].item_bounds())]] | None = Field(
        _P["image_shape"].default,
        **_P["image_shape"].length_bounds(),
        description="`cnn` only: `[channels, height, width]` of the image the feature columns hold "
        "(one column per pixel value, in row-major order).",
    )
    conv_channels: list[Annotated[int, Field(**_P["conv_channels"].item_bounds())]] = Field(
        default_factory=_P["conv_channels"].fresh_default,
        **_P["conv_channels"].length_bounds(),
        description="`cnn` only: output channels of each 3x3 convolution block.",
    )


class PrivacyConfig(StrictModel):
    """Differentially private training (DP-SGD through Opacus, the `dp` extra).

    The budget is enforced: a run whose accounted epsilon would exceed `epsilon` fails before it
    trains. Covers the network's weights; the input scaling statistics are computed without noise.
    """

    epsilon: float = Field(
        **_DP["epsilon"].bounds(), description="Privacy budget: the largest epsilon the run may spend."
    )
    delta: float = Field(
        _DP["delta"].default,
        **_DP["delta"].bounds(),
        description="delta of (epsilon, delta)-DP; must be below 1 / training rows.",
    )
    max_grad_norm: float = Field(
        _DP["max_grad_norm"].default,
        **_DP["max_grad_norm"].bounds(),
        description="Per-sample gradient clipping norm.",
    )
    noise_multiplier: float | None = Field(
        _DP["noise_multiplier"].default,
        **_DP["noise_multiplier"].bounds(),
        description="Noise scale; default: the smallest that keeps epsilon within the budget after every epoch.",
    )


_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_QUANTITY_CPU = r"^\d+(\.\d+)?m?$"
_QUANTITY_MEMORY = r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"


class TrainingResources(StrictModel):
    """What the trainer container gets (requests equal limits: the pod is never throttled mid-run)."""

    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description="NVIDIA GPUs: a `nvidia.com/gpu` limit (Kubernetes) or device request (Docker).",
    )
    cpu: str | None = Field(None, pattern=_QUANTITY_CPU, description="CPU cores, e.g. `4` or `500m`.")
    memory: str | None = Field(None, pattern=_QUANTITY_MEMORY, description="Memory, e.g. `16Gi`.")


class SecretEnv(StrictModel):
    """An environment variable of the trainer pod filled from a Kubernetes secret (by reference)."""

    env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name, e.g. `AWS_ACCESS_KEY_ID`."
    )
    secret: str = Field(pattern=_K8S_NAME, description="Name of the Kubernetes secret.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", description="Key inside the secret.")


class Toleration(StrictModel):
    """A Kubernetes toleration (e.g. for the taint of a GPU node pool)."""

    key: str | None = Field(None, description="Taint key, e.g. `nvidia.com/gpu`; null matches every key.")
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = Field(None, description="Taint value (with `operator: Equal`).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


class KubernetesTraining(StrictModel):
    """The `kubernetes` backend: the trainer in a hardened pod (KubernetesPodOperator)."""

    namespace: str = Field("default", pattern=_K8S_NAME, description="Namespace of the trainer pod.")
    connection: str = Field("kubernetes_default", description="Airflow Kubernetes connection id.")
    service_account: str | None = Field(
        None, pattern=_K8S_NAME, description="Service account of the pod (its token is never mounted)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pod must run on (e.g. a GPU node pool)."
    )
    tolerations: list[Toleration] | None = Field(
        None,
        description="Taints the pod tolerates; default with `resources.gpus`: the NVIDIA GPU taint "
        "(`nvidia.com/gpu`, Exists, NoSchedule).",
    )
    secrets: list[SecretEnv] = Field(
        default_factory=list,
        description="Credentials as references to Kubernetes secrets (e.g. the S3 keys); never values.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Plain environment variables of the pod (e.g. `AWS_ENDPOINT_URL`); a name that "
        "looks like a credential is refused: use `secrets`.",
    )

    @field_validator("env")
    @classmethod
    def _no_credentials_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        # one rule with the pod operator (which checks the rendered values again)
        from airflow_mlops.redaction import plain_env_problem

        problem = plain_env_problem(env)
        if problem:
            raise ValueError(
                f"{problem}; give them under `secrets` (a Kubernetes secret reference: env, secret, key)"
            )
        return env

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[Annotated[str, Field(pattern=_K8S_NAME)]] = Field(
        default_factory=list, description="Secrets holding registry credentials."
    )
    startup_timeout: Duration = Field(
        dt.timedelta(minutes=10),
        description="How long the pod may stay pending (image pull, GPU node scale-up).",
    )
    scratch_size: str = Field(
        "20Gi", pattern=_QUANTITY_MEMORY, description="Size limit of the `/tmp` scratch volume (emptyDir)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    priority_class: str | None = Field(None, pattern=_K8S_NAME, description="Pod priority class.")
    deferrable: bool = Field(True, description="Wait for the pod in the triggerer, not in a worker slot.")


class DockerTraining(StrictModel):
    """The `docker` backend: the trainer in a hardened container (DockerOperator)."""

    url: str | None = Field(
        None, description="Docker daemon URL; default: `DOCKER_HOST`, else the local socket."
    )
    connection: str | None = Field(None, description="Airflow Docker connection id (registry login).")
    network_mode: str | None = Field(None, description="Docker network of the container (e.g. the stack's).")
    scratch_size: str = Field(
        "20g", pattern=r"^\d+[kmg]?$", description="Size of the `/tmp` tmpfs scratch, e.g. `20g`."
    )


class FederatedPrivacy(StrictModel):
    """DP on the client updates: each client clips its update, the server adds Gaussian noise.

    The guarantee is client-level (it covers a client's whole data set); epsilon is accounted over
    the rounds before the run is submitted, logged, and enforced against `epsilon` when given.
    """

    clipping_norm: float = Field(gt=0, description="L2 norm each client's update is clipped to.")
    noise_multiplier: float = Field(
        gt=0, description="Noise standard deviation, in units of clipping_norm / clients."
    )
    delta: float = Field(1e-5, gt=0, lt=1, description="delta of (epsilon, delta)-DP.")
    epsilon: float | None = Field(
        None, gt=0, description="Budget: a run that would spend more is refused before it starts."
    )


class FederatedTraining(StrictModel):
    """The `federated` backend: the built-in `mlp` trained by a Flower federation."""

    connection: str = Field(
        "flower_default",
        description="Airflow connection of the SuperLink: host and port of its Control API; extra "
        "`insecure` (plain HTTP, one machine only), `root_certificates` (CA bundle path), `cli` (the "
        "`flwr` executable). With `local_nodes` only `cli` is read, and the connection may be absent.",
    )
    local_nodes: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Start the federation on the worker for the run instead of using a SuperLink: a "
        "SuperLink and this many SuperNodes on 127.0.0.1 (processes of the Flower environment, no "
        "Ray), SuperNode i training on partition i of the run's table, all stopped when the task "
        "ends. One machine: a trial of the federation (the same app, rounds, strategy and DP), not "
        "a privacy boundary. Needs `data: partitions`; the task polls from the worker.",
    )
    data: Literal["partitions", "node"] = Field(
        "partitions",
        description="`partitions`: each SuperNode trains on its partition of the run's training table "
        '(`--node-config "partition-id=<i> num-partitions=<n>"`: one machine, a test of the '
        "federation); `node`: each SuperNode trains on its own table (`--node-config "
        '"data-path=<file>"`), which never leaves it.',
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="`data: partitions`: how many partitions the SuperNodes split the table into "
        "(their `num-partitions`; a node started with another count is refused).",
    )
    rounds: int = Field(3, ge=1, le=1000, description="Federated rounds.")
    strategy: Literal["fedavg", "fedprox"] = Field(
        "fedavg", description="`fedavg` (federated averaging) or `fedprox` (with a proximal term)."
    )
    proximal_mu: float = Field(0.1, ge=0, description="`fedprox`: weight of the proximal term.")
    min_clients: int = Field(
        2,
        ge=1,
        le=10000,
        description="SuperNodes that must be connected to start the run and each round; a round "
        "aggregates the replies it gets (a node lost mid-round is left out), and while fewer are "
        "connected the run waits, until `timeout` stops it and fails the task.",
    )
    fraction_train: float = Field(
        1.0, gt=0, le=1, description="Share of the connected SuperNodes that train in each round."
    )
    privacy: FederatedPrivacy | None = Field(None, description="DP on client updates.")
    connect_timeout: Duration = Field(
        dt.timedelta(minutes=5), description="How long the run waits for `min_clients` SuperNodes."
    )
    round_timeout: Duration = Field(
        dt.timedelta(minutes=10), description="How long a round waits for its replies."
    )
    timeout: Duration = Field(
        dt.timedelta(hours=2), description="The whole run: it is stopped and the task fails after this."
    )
    poll_interval: Duration = Field(
        dt.timedelta(seconds=10),
        description="How often the triggerer asks the SuperLink for the run's status.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FederatedTraining:
        if self.privacy is not None and self.fraction_train < 1:
            raise ValueError("`privacy` needs `fraction_train: 1` (every client in every round)")
        if self.partitions is not None and self.data != "partitions":
            raise ValueError("`partitions` applies to `data: partitions`")
        if self.partitions is not None and self.min_clients > self.partitions:
            raise ValueError(
                f"`min_clients` {self.min_clients} is more than the {self.partitions} partitions"
            )
        if "proximal_mu" in self.model_fields_set and self.strategy != "fedprox":
            raise ValueError("`proximal_mu` applies to `strategy: fedprox`")
        if self.local_nodes is not None:
            if self.data != "partitions":
                raise ValueError(
                    "`local_nodes` trains on partitions of the run's table: it needs `data: partitions`"
                )
            if self.partitions is not None and self.partitions != self.local_nodes:
                raise ValueError(
                    f"`partitions` {self.partitions} differs from `local_nodes` {self.local_nodes}: each "
                    "local SuperNode trains on one partition (leave `partitions` out)"
                )
            if self.min_clients > self.local_nodes:
                raise ValueError(
                    f"`min_clients` {self.min_clients} is more than the {self.local_nodes} local SuperNodes"
                )
        return self


class WatermarkConfig(StrictModel):
    """A trigger-set watermark the model learns: evidence of provenance (whose model is this?), not
    protection against theft. See docs/security.md. Your own `fit` entrypoint appends
    `ctx.watermark_rows(n)` to the rows it fits on (see docs/training.md).

    Keyed out-of-distribution rows with keyed labels, derived from the key in an Airflow connection
    and the model's identity, are learned with the training rows; only the key's commitment is
    recorded. The evaluate stage's `watermark` gate blocks a candidate that does not carry it.
    """

    enabled: bool = Field(True, description="Learn the watermark and require it at evaluation.")
    trigger_rows: int = Field(
        WATERMARK_TRIGGER_ROWS,
        ge=16,
        le=100_000,
        description="How many keyed trigger rows; enough that a claim is possible at `alpha` (the "
        "prepare step says how many are needed otherwise).",
    )
    alpha: float = Field(
        WATERMARK_ALPHA,
        gt=0,
        lt=0.5,
        description="The largest probability of a false claim: ownership is claimed only when the "
        "matches reach t with P[Binomial(n, p0) >= t] <= alpha.",
    )
    p0: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="The agreement of models trained without the watermark with the keyed labels; "
        "default: the one measured by benchmarks/watermark.py for the task (never 1/K).",
    )
    key_connection: str = Field(
        WATERMARK_CONN_ID,
        min_length=1,
        description="Airflow connection whose password holds the secret key (at least 16 bytes).",
    )
    identity: str | None = Field(
        None,
        min_length=1,
        description="The model's identity in the key derivation; default: the pipeline's name.",
    )


ESTIMATOR_SHORT_NAMES = ("xgboost", "lightgbm")
_CLASS_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Z][A-Za-z0-9_]*$"


def model_kind(model: str) -> str:
    """What ``training.model`` names: ``builtin`` (mlp, cnn), ``estimator`` (xgboost, lightgbm, or
    a class path such as ``sklearn.ensemble.RandomForestClassifier``) or ``fit`` (your own
    ``package.module:fit`` function)."""
    if model in BUILTIN_MODELS:
        return "builtin"
    if model in ESTIMATOR_SHORT_NAMES or (":" not in model and re.match(_CLASS_PATH, model)):
        return "estimator"
    return "fit"


class TrainingConfig(StrictModel):
    """How the model is trained, and where."""

    backend: Literal["local", "kubernetes", "docker", "federated"] = Field(
        "local",
        description="`local`: the trainer in a subprocess of the worker; `kubernetes`: in a hardened "
        "(GPU) pod; `docker`: in a hardened container. The same trainer runs in all three. "
        "`federated`: the built-in `mlp` trained by a Flower federation (see `federated`).",
    )
    model: str = Field(
        "mlp",
        description="`mlp` (tabular network), `cnn` (images stored as pixel columns; set "
        "`params.image_shape`), `xgboost`, `lightgbm`, the import path of an estimator class (e.g. "
        "`sklearn.ensemble.HistGradientBoostingClassifier`, `xgboost.XGBRegressor`) or your own "
        "`package.module:fit` (see docs/training.md).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="`mlp`/`cnn`: the network's hyper-parameters (epochs, lr, batch_size, hidden_units, "
        "dropout, weight_decay, class_weight, image_shape, conv_channels); an estimator: its constructor "
        "arguments (e.g. `{n_estimators: 300, max_depth: 6}`); your own fit: whatever it reads.",
        json_schema_extra={"examples": [{"epochs": 20, "hidden_units": [64, 32]}, {"n_estimators": 300}]},
    )
    python_path: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Folders (relative to the spec's folder, or absolute) put on the `local` trainer's "
        "Python path so it imports your own package (fit functions, torch modules, estimator classes). "
        "The dags folder is always on it. For `docker` and `kubernetes`, install your package in the "
        "trainer image (see docs/training.md).",
    )
    _network: TrainingParams | None = PrivateAttr(default=None)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Free-form settings passed to your own `fit` entrypoint."
    )
    privacy: PrivacyConfig | None = Field(None, description="DP-SGD with an enforced epsilon budget.")
    watermark: WatermarkConfig | None = Field(
        None, description="A trigger-set watermark (evidence of provenance), verified at evaluation."
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Share of accepted rows kept out of training for evaluation."
    )
    validation_fraction: float = Field(
        _RUN["validation_fraction"].default,
        **_RUN["validation_fraction"].bounds(),
        description="Share of the training rows the built-in trainer keeps for validation (the best "
        "epoch, and the operating threshold of `evaluation.threshold`); 0 trains on every row (then "
        "the threshold must be a number).",
    )
    early_stopping_patience: int | None = Field(
        _RUN["early_stopping_patience"].default,
        **_RUN["early_stopping_patience"].bounds(),
        description="Stop after this many epochs (`mlp`, `cnn`) or boosting rounds (`xgboost`, `lightgbm`) "
        "without progress on the validation rows; null: train them all.",
    )
    seed: int = Field(_RUN["seed"].default, description="Seed for the split, initialisation and shuffling.")
    device: Literal["auto", "cpu", "cuda"] = Field(_RUN["device"].default)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        _RUN["precision"].default,
        description="`auto`: bf16 autocast on a GPU that supports it, float32 otherwise.",
    )
    image: str | None = Field(
        None, min_length=1, description="Trainer image (`kubernetes`, `docker`), see images/trainer."
    )
    resources: TrainingResources = Field(default_factory=TrainingResources)
    kubernetes: KubernetesTraining | None = Field(None, description="Settings of the `kubernetes` backend.")
    docker: DockerTraining | None = Field(None, description="Settings of the `docker` backend.")
    federated: FederatedTraining | None = Field(
        None, description="Settings of the `federated` backend (default: its defaults)."
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value in BUILTIN_MODELS or value in ESTIMATOR_SHORT_NAMES or re.match(ENTRYPOINT_PATTERN, value):
            return value
        raise ValueError(
            "a built-in model (`mlp`, `cnn`, `xgboost`, `lightgbm`), the import path of an estimator class "
            "(`sklearn.ensemble.RandomForestClassifier`) or of your fit function (`pkg.module:fit`)"
        )

    @property
    def kind(self) -> str:
        """``builtin``, ``estimator`` or ``fit`` (see :func:`model_kind`)."""
        return model_kind(self.model)

    @property
    def network(self) -> TrainingParams:
        """The built-in networks' hyper-parameters (defaults for any other model)."""
        return self._network if self._network is not None else TrainingParams()

    def hyperparameters(self) -> dict[str, Any]:
        """What the trainer gets as ``params``: the network's (set keys only) or the estimator's."""
        if self.kind == "builtin":
            return self.network.model_dump(exclude_unset=True)
        return dict(self.params)

    @model_validator(mode="after")
    def _params_fit_the_model(self) -> TrainingConfig:
        """``params`` of a built-in network are checked key by key (located at their keys); an
        estimator's against the estimator's constructor when its library is known."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        kind = self.kind
        if kind == "builtin":
            try:
                self._network = TrainingParams.model_validate(self.params)
            except ValidationError as exc:
                details = [
                    InitErrorDetails(
                        type=PydanticCustomError("params", "{why}", {"why": e["msg"]}),
                        loc=("params", *e["loc"]),
                        input=e.get("input"),
                    )
                    for e in exc.errors()
                ]
                raise ValidationError.from_exception_data(type(self).__name__, details) from None
            return self
        if kind == "estimator" and self.model not in ESTIMATOR_SHORT_NAMES:
            from airflow_mlops.spec import estimators

            if estimators.in_known_library(self.model):
                entry = estimators.lookup(self.model)
                why = None
                if entry is None:
                    hint = estimators.suggest(self.model)
                    why = f"unknown estimator {self.model!r}" + (
                        f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
                    )
                elif entry["kind"] == "other":
                    why = (
                        f"{self.model} is neither a classifier nor a regressor; name a model "
                        "(e.g. sklearn.ensemble.RandomForestClassifier)"
                    )
                if why is not None:
                    error = PydanticCustomError("estimator", "{why}", {"why": why})
                    details = [InitErrorDetails(type=error, loc=("model",), input=self.model)]
                    raise ValidationError.from_exception_data(type(self).__name__, details)
                assert entry is not None
                unknown = sorted(set(self.params) - set(entry["params"])) if not entry["kwargs"] else []
                if unknown:
                    details = []
                    for name in unknown:
                        close = difflib.get_close_matches(name, entry["params"], n=1)
                        why = f"{self.model} takes no parameter {name!r}" + (
                            f"; did you mean {close[0]!r}?"
                            if close
                            else f" (it takes: {', '.join(entry['params'])})"
                        )
                        details.append(
                            InitErrorDetails(
                                type=PydanticCustomError("params", "{why}", {"why": why}),
                                loc=("params", name),
                                input=self.params[name],
                            )
                        )
                    raise ValidationError.from_exception_data(type(self).__name__, details)
        return self

    def estimator_kind(self) -> str | None:
        """``classifier`` / ``regressor`` for a known library estimator path, else None."""
        if self.kind != "estimator" or self.model in ESTIMATOR_SHORT_NAMES:
            return None
        from airflow_mlops.spec import estimators

        entry = estimators.lookup(self.model)
        return entry["kind"] if entry else None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        container = self.backend in ("kubernetes", "docker")
        if container and not self.image:
            raise ValueError(
                f"`backend: {self.backend}` needs `image`: the trainer image (see images/trainer)"
            )
        if not container and (self.image or self.resources.model_fields_set):
            raise ValueError(
                "`image` and `resources` apply to the kubernetes and docker backends; with `backend: local` "
                "the trainer runs on the worker (pick a GPU worker with `stages.train.queue`)"
            )
        if self.backend == "federated":
            self._federated_consistent()
        for name in ("kubernetes", "docker", "federated"):
            if getattr(self, name) is not None and self.backend != name:
                raise ValueError(f"`{name}` settings are given but `backend` is {self.backend!r}")
        if self.resources.gpus and self.device == "cpu":
            raise ValueError("`resources.gpus` is set but `device: cpu`; use `auto` or `cuda`")
        if self.model == "cnn" and self.params.get("image_shape") is None:
            raise ValueError("`model: cnn` needs `params.image_shape: [channels, height, width]`")
        if self.model == "mlp" and "image_shape" in self.params:
            raise ValueError("`params.image_shape` applies to `model: cnn` only")
        custom = self.kind == "fit"
        if self.options and not custom:
            raise ValueError("`options` are for your own fit entrypoint; the built-in models take `params`")
        if self.privacy is not None and self.kind != "builtin":
            raise ValueError(
                "`privacy` (DP-SGD) applies to the built-in `mlp` and `cnn`; your own fit handles its own privacy"
            )
        if self.early_stopping_patience is not None and self.kind == "fit":
            raise ValueError(
                "`early_stopping_patience` applies to the built-in networks and to XGBoost and LightGBM; your "
                "own fit stops where it decides"
            )
        if (
            self.early_stopping_patience is not None
            and self.kind == "estimator"
            and self.model not in ESTIMATOR_SHORT_NAMES
            and not self.model.startswith(("xgboost.", "lightgbm."))
        ):
            raise ValueError(
                f"`early_stopping_patience` applies to the built-in networks, XGBoost and LightGBM, not "
                f"{self.model}; use the estimator's own early-stopping parameters in `params`"
            )
        if self.python_path and self.backend != "local":
            raise ValueError(
                f"`python_path` applies to `backend: local`; with `{self.backend}`, install your package in "
                "the trainer image (FROM the airflow-mlops trainer image, pip install it: see docs/training.md)"
            )
        if "validation_fraction" in self.model_fields_set and custom:
            raise ValueError(
                "`validation_fraction` applies to the built-in models and estimators; your own fit splits "
                "its own validation rows (see docs/training.md)"
            )
        return self

    def _federated_consistent(self) -> None:
        """`backend: federated` trains the built-in `mlp` (binary), without DP-SGD or a python path."""
        if self.model != "mlp":
            raise ValueError(f"`backend: federated` trains the built-in `mlp`, not {self.model!r}")
        if self.privacy is not None:
            raise ValueError(
                "`privacy` (DP-SGD) does not apply to `backend: federated`; use `federated.privacy` "
                "(DP on client updates)"
            )
        if self.python_path:
            raise ValueError("`python_path` applies to `backend: local`")
        if self.watermark is not None and self.watermark.enabled:
            raise ValueError(
                "`watermark` does not apply to `backend: federated` yet: the clients do not learn the "
                "trigger rows, so the watermark gate would block every global model"
            )

    @property
    def federated_settings(self) -> FederatedTraining:
        """The `federated` backend's settings (its defaults when the section is absent)."""
        return self.federated if self.federated is not None else FederatedTraining()
