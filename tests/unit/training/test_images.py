"""The trainer image holds every module the trainer imports, and nothing of Airflow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TRAINER_DOCKERFILE = ROOT / "images" / "trainer" / "Dockerfile"
AIRFLOW_DOCKERFILE = ROOT / "images" / "airflow" / "Dockerfile"

# Import everything the job can reach (the CLI, both models, the user-entrypoint contract), then
# list the project's modules that got loaded, as files.
PROBE = """
import runpy, sys
import airflow_mlops.training.__main__, airflow_mlops.training.job, airflow_mlops.training.trainer
import airflow_mlops.training.model, airflow_mlops.training.ranking
import airflow_mlops.training.flavors, airflow_mlops.training.estimators
import airflow_mlops.security.scanning.skops_policy  # the sklearn flavor loads through it
import airflow_mlops.allowed_roots  # the local artifact store opens files through it (lazily)
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] in ("airflow_mlops", "airflow", "mlflow", "pydantic", "yaml"):
        print(name, getattr(module, "__file__", None))
"""


def copies(dockerfile: Path) -> list[tuple[str, str]]:
    """``(repository path, destination)`` of each file or folder the final stage COPYs from the
    build context (not --from=... stages)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    pairs: list[tuple[str, str]] = []
    for line in final.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        pairs += [(source, args[-1]) for source in args[:-1]]
    return pairs


def lands_at(path: str, pairs: list[tuple[str, str]], prefix: str = "/opt/trainer/") -> bool:
    """Whether the repository file ``path`` ends up at ``prefix + path`` in the image."""
    for source, dest in pairs:
        if path == source and dest.endswith("/"):
            if dest + Path(path).name == prefix + path:
                return True
        elif path.startswith(source.rstrip("/") + "/") and dest.rstrip("/") == prefix + source.rstrip("/"):
            return True
    return False


def test_trainer_image_copies_the_import_closure_of_the_trainer() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    ).stdout.split("\n")
    modules = dict(line.split(" ", 1) for line in out if line)
    assert not [m for m in modules if not m.startswith("airflow_mlops")], "the trainer imports Airflow/MLflow"
    files = {str(Path(f).resolve().relative_to(ROOT)) for f in modules.values() if f and f != "None"}
    assert "airflow_mlops/artifacts.py" in files and "airflow_mlops/training/job.py" in files
    pairs = copies(TRAINER_DOCKERFILE)
    sources = [source for source, _ in pairs]
    missing = sorted(f for f in files if not lands_at(f, pairs))
    assert missing == [], f"images/trainer/Dockerfile does not COPY {missing} to /opt/trainer/<path>"
    assert not lands_at(
        "airflow_mlops/labels.py", [("airflow_mlops/labels.py", "/opt/trainer/airflow_mlops/data/")]
    )
    # And only trainer code: no operator, hook or factory module goes into the image.
    assert all(s.startswith(("airflow_mlops/training", "airflow_mlops/__init__", "airflow_mlops/exceptions",
                             "airflow_mlops/artifacts", "airflow_mlops/progress", "airflow_mlops/digests",
                             "airflow_mlops/tasks", "airflow_mlops/metrics", "airflow_mlops/security/",
                             "airflow_mlops/labels", "airflow_mlops/allowed_roots")) for s in sources), sources  # fmt: skip


def test_images_are_multi_stage_non_root_and_labelled() -> None:
    for dockerfile in (TRAINER_DOCKERFILE, AIRFLOW_DOCKERFILE):
        text = dockerfile.read_text()
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2, dockerfile
        for label in ("title", "description", "version", "licenses"):
            assert f"org.opencontainers.image.{label}=" in text, (dockerfile, label)
    trainer = TRAINER_DOCKERFILE.read_text()
    assert re.search(r"^USER 1000:1000$", trainer, re.M)
    assert 'ENTRYPOINT ["python", "-m", "airflow_mlops.training"]' in trainer
    assert "cuda" in trainer.split("\n", 10)[-1].lower()  # a CUDA torch base
    assert re.findall(r"^USER (\S+)", AIRFLOW_DOCKERFILE.read_text(), re.M)[-1] == "airflow"
