"""Folder defaults: the nearest ``mlops-defaults.yaml`` above a spec, and how it merges under it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from airflow_mlops.spec.files import read_spec_text
from airflow_mlops.spec.messages import validate_data
from airflow_mlops.spec.models import DEFAULTS_FILE_NAME, Defaults, FolderDefaults, PipelineSpec, TaskSettings
from airflow_mlops.spec.yaml_positions import parse_yaml


@dataclass(frozen=True)
class LoadedDefaults:
    """A folder's ``mlops-defaults.yaml``, validated."""

    path: Path
    model: FolderDefaults
    text: str = ""  # what the model was validated from (part of the parse cache's key)

    @property
    def allowed_roots(self) -> list[str]:
        return [
            r if "://" in r else str((self.path.parent / os.path.expanduser(r)).resolve())
            for r in self.model.allowed_roots
        ]


def load_folder_defaults(path: str | os.PathLike[str]) -> LoadedDefaults:
    p = Path(path)
    text = read_spec_text(p)
    data, located = parse_yaml(text, str(p))
    return LoadedDefaults(p, validate_data(data, located, FolderDefaults), text)


def find_folder_defaults(
    spec_path: str | os.PathLike[str], cache: dict[Path, LoadedDefaults | None] | None = None
) -> LoadedDefaults | None:
    """The nearest ``mlops-defaults.yaml`` in the spec's folder or above it (nearest wins)."""
    cache = {} if cache is None else cache
    folder = Path(spec_path).resolve().parent
    visited = []
    found: LoadedDefaults | None = None
    for candidate in (folder, *folder.parents):
        if candidate in cache:
            found = cache[candidate]
            break
        visited.append(candidate)
        if (candidate / DEFAULTS_FILE_NAME).is_file():
            found = load_folder_defaults(candidate / DEFAULTS_FILE_NAME)
            break
    for v in visited:
        cache[v] = found
    return found


def apply_folder_defaults(spec: PipelineSpec, folder: FolderDefaults) -> PipelineSpec:
    """Merge a folder's defaults under a spec: the spec's own keys win, tags add up."""

    def merged(lower: BaseModel | None, upper: BaseModel | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in (lower, upper):
            if model is not None:
                out.update({k: getattr(model, k) for k in model.model_fields_set})
        return out

    stages = {
        stage: TaskSettings.model_validate(merged(folder.stages.get(stage), spec.stages.get(stage)))
        for stage in sorted(set(folder.stages) | set(spec.stages))
    }
    update: dict[str, Any] = {
        "defaults": Defaults.model_validate(merged(folder.defaults, spec.defaults)),
        "stages": stages,
        "tags": list(dict.fromkeys([*folder.tags, *spec.tags])),
    }
    if "owner" not in spec.model_fields_set and folder.owner:
        update["owner"] = folder.owner
    return spec.model_copy(update=update)
