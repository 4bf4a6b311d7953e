"""The gates' verdict for one exact model digest (the version tag ``mlops.blessing``).

Written at registration from the evaluation gates' result; promotion checks it, with the
signature and the scan of a fresh download of the registered artifact, and that the champion is
still the one the blessing compared with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import PromotionBlockedError
from airflow_mlops.registry.audit import now

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

TAG_BLESSING = "mlops.blessing"


@dataclass(frozen=True)
class Blessing:
    """The gates' verdict for one exact model digest.

    :param compared: whether champion comparisons were configured. When they were,
        ``champion_version`` is the champion the candidate was held against (None: there was none
        yet, the first-model rule applied) and promotion requires the champion to be unchanged.
    :param evidence: where the verdict came from: ``evaluation`` (the train DAG's gates) or
        ``rollout`` (a shadow/canary gate on live data).
    """

    model_sha256: str
    passed: bool
    compared: bool
    champion_version: str | None
    report: Mapping[str, Any] | None = None
    by: str = ""
    at: str = field(default_factory=now)
    evidence: str = "evaluation"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "report": dict(self.report) if self.report else None}

    def to_tag(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "blessing") -> Blessing:
        try:
            sha = data["model_sha256"]
            passed = data["passed"]
            compared = data["compared"]
            champion = data.get("champion_version")
        except (KeyError, TypeError) as exc:
            raise PromotionBlockedError(
                f"{where} is malformed (missing {exc}); it cannot be trusted"
            ) from None
        if (
            not isinstance(sha, str)
            or len(sha) != 64
            or not isinstance(passed, bool)
            or not isinstance(compared, bool)
        ):
            raise PromotionBlockedError(f"{where} is malformed ({dict(data)!r}); it cannot be trusted")
        return cls(
            model_sha256=sha,
            passed=passed,
            compared=compared,
            champion_version=None if champion in (None, "") else str(champion),
            report=data.get("report") or None,
            by=str(data.get("by") or ""),
            at=str(data.get("at") or ""),
            evidence=str(data.get("evidence") or "evaluation"),
        )

    @classmethod
    def of_version(cls, mv: ModelVersion) -> Blessing:
        """The blessing recorded on a model version; its absence blocks."""
        where = f"version {mv.version} of {mv.name!r}"
        raw = (mv.tags or {}).get(TAG_BLESSING)
        if not raw:
            raise PromotionBlockedError(
                f"{where} carries no blessing (tag {TAG_BLESSING}): it was not registered by a "
                "pipeline whose gates judged this exact model, so it is never promoted"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PromotionBlockedError(f"{where}: its {TAG_BLESSING} tag is not JSON ({exc})") from None
        return cls.from_dict(data, where=f"the blessing of {where}")
