"""docker-compose.e2e.yaml (scripts/compose_e2e.sh): it swaps only the images that cannot be pulled
and the network, so the stack the e2e check runs is the one users run."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.core.test_compose import COMPOSE, ROOT, compose_config, wiring_problems

E2E = ROOT / "docker-compose.e2e.yaml"
STANDIN_AIRFLOW = "airflow-mlops-standin/airflow:3.3.2-python3.11"


def _without_e2e_changes(service: dict[str, Any], swapped: bool) -> dict[str, Any]:
    service = copy.deepcopy(service)
    for key in ("network_mode", "extra_hosts", "networks"):
        service.pop(key, None)
    for key in ("volumes", "ports", "expose"):  # merging reorders them; the order means nothing
        if key in service:
            service[key] = sorted(map(str, service[key]))
    if "build" in service:
        service["build"].pop("network", None)
        service["build"].pop("args", None)
        service.pop("image", None)  # built: the same tag either way (checked below)
    elif swapped:
        service.pop("image")
    return service


def test_the_override_changes_only_images_and_the_network() -> None:
    profiles = ("gpu",)
    base = compose_config(COMPOSE, profiles=profiles)
    e2e = compose_config(COMPOSE, E2E, profiles=profiles)
    assert set(base["services"]) == set(e2e["services"])
    names = set(e2e["services"])
    for name, service in e2e["services"].items():
        original = base["services"][name]
        swapped = service.get("image", "").startswith("airflow-mlops-standin/")
        assert _without_e2e_changes(service, swapped) == _without_e2e_changes(original, swapped), name
        assert service["network_mode"] == "host", name
        hosts = service["extra_hosts"]
        hosts = hosts if isinstance(hosts, dict) else dict(h.split(":", 1) for h in hosts)
        assert {n: hosts.get(n) for n in names} == dict.fromkeys(names, "127.0.0.1"), name
        if "build" in original:
            assert service["build"]["network"] == "host", name
            assert service["image"] == original["image"], name
            if service["build"]["dockerfile"] == "images/airflow/Dockerfile":
                assert service["build"]["args"] == {"AIRFLOW_IMAGE": STANDIN_AIRFLOW}, name
        else:
            # Every pulled image is swapped for a stand-in that the repository builds.
            standin = service["image"].removeprefix("airflow-mlops-standin/").split(":")[0]
            assert (ROOT / "images" / "standins" / standin / "Dockerfile").is_file(), name
    # No network is created: the default network is the engine's own host network.
    assert e2e["networks"] == {"default": {"external": True, "name": "host"}}
    # The wiring checks still hold for the stack the e2e check runs.
    assert wiring_problems(e2e, profiles=profiles) == []


def test_every_standin_dockerfile_builds_from_the_local_bases() -> None:
    for dockerfile in sorted((ROOT / "images" / "standins").glob("*/Dockerfile")):
        froms = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
        assert froms in (["${BASE_IMAGE}"], ["${TORCH_IMAGE}"]), (dockerfile, froms)
