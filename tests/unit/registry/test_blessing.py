"""registry/blessing.py: the gates' verdict for one model digest, as the version tag promotion reads."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_mlops.exceptions import PromotionBlockedError
from airflow_mlops.registry.blessing import TAG_BLESSING, Blessing

SHA = "ab" * 32


def test_a_blessing_round_trips_through_its_tag() -> None:
    blessing = Blessing(
        SHA, passed=True, compared=True, champion_version="3", report={"uri": "r"}, by="dag/run"
    )
    again = Blessing.of_version(
        SimpleNamespace(version="4", name="m", tags={TAG_BLESSING: blessing.to_tag()})
    )
    assert again == blessing
    assert json.loads(blessing.to_tag())["model_sha256"] == SHA and blessing.at  # stamped when made


def test_the_first_model_rule_and_old_tags_read_with_their_defaults() -> None:
    read = Blessing.from_dict({"model_sha256": SHA, "passed": True, "compared": True, "champion_version": ""})
    assert read.champion_version is None and read.evidence == "evaluation" and read.report is None


@pytest.mark.parametrize(
    "data",
    [
        {"passed": True, "compared": True},  # no digest
        {"model_sha256": "ab" * 31, "passed": True, "compared": True},  # not a sha256
        {"model_sha256": SHA, "passed": "yes", "compared": True},  # a string is not a verdict
        {"model_sha256": SHA, "passed": True, "compared": 1},
        [SHA],  # not an object
    ],
)
def test_a_malformed_blessing_blocks(data: object) -> None:
    with pytest.raises(PromotionBlockedError, match="cannot be trusted"):
        Blessing.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("tags", [{}, None, {TAG_BLESSING: ""}, {TAG_BLESSING: "{not json"}])
def test_a_version_without_a_readable_blessing_is_never_promoted(tags: object) -> None:
    with pytest.raises(PromotionBlockedError, match=r"blessing|not JSON"):
        Blessing.of_version(SimpleNamespace(version="1", name="m", tags=tags))
