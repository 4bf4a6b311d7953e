"""Print what the demo produced: the promoted model version, its metrics and a fresh signature check.

Exits non-zero unless the alias points at a version whose signature verifies now.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--public-key", default=str(ROOT / ".stack" / "keys" / "signing_key.pub.pem"))
    args = parser.parse_args()

    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version, fetch_verified_version
    from airflow_mlops.security.signing import public_key_fingerprint

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    mv = champion_version(client, args.model, args.alias)
    if mv is None:
        print(f"FAILED: model {args.model!r} has no @{args.alias} version", file=sys.stderr)
        return 1
    public = Path(args.public_key).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        fetch_verified_version(client, args.model, str(mv.version), public, tmp)  # raises if tampered
    run = client.get_run(mv.run_id)
    metrics = {k[len("eval_") :]: v for k, v in sorted(run.data.metrics.items()) if k.startswith("eval_")}
    tags = mv.tags or {}
    print()
    print("Promoted model")
    print(f"  model      : {args.model}")
    print(f"  version    : {mv.version}   (alias @{args.alias})")
    print("  metrics    : " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    print(f"  gates      : {tags.get('mlops.gates')}")
    print(f"  signature  : verified now against key {public_key_fingerprint(public)[:16]}...")
    print(f"  model sha256 : {tags.get('mlops.model_sha256')}")
    print(f"  data sha256  : {run.data.tags.get('mlops.data_sha256')}")
    print(f"  MLflow run   : {mv.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
