"""benchmarks/train_gpu.py runs end to end (tiny, on the CPU here) and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_gpu.py"), "--rows", "6000", "--epochs", "2"]
    cmd += ["--batch-size", "512", "--device", "cpu", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no CUDA device" in proc.stdout  # forced onto the CPU: it says the GPU numbers are missing
    results = json.loads(out.read_text())
    assert results["trainer_samples_per_second"] > 0 and results["plain_samples_per_second"] > 0
    expected = results["trainer_samples_per_second"] / results["plain_samples_per_second"]
    assert abs(results["ratio"] - expected) < 0.01
    assert results["precision"] == "fp32"
    assert f"ratio {results['ratio']:.2f}x" in proc.stdout
    assert 0.5 < results["plain_val_roc_auc"] <= 1.0
    assert torch.cuda.is_available() or "CPU" in results["device"]
