"""Benchmark: model scan time and peak memory, this project vs. picklescan and modelscan.

Two pickles, written once into a work directory:

- ``array``: a big float64 numpy array (default 1 GiB), ``pickle.dump`` protocol 4;
- ``floats``: a list of Python floats (default 200 MB of pickle, ~22 million BINFLOAT opcodes).

Each side runs in a fresh process (so peak RSS is its own), measured as wall time and peak
resident memory above the interpreter's baseline (``VmHWM`` of the child after the scan minus its
value after importing the scanner, before the scan). Peers run from another interpreter
(``--peer-python``, a venv with ``picklescan`` and ``modelscan``), so they never touch the
project's pinned dependencies. Prints a table and the ratios; ``--out`` writes JSON.

    .venv/bin/python benchmarks/scanning.py --peer-python /tmp/peers/bin/python --out results.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
side, path = sys.argv[1], sys.argv[2]
if side == "airflow-mlops":
    from airflow_mlops.security.scanning import scan_model_dir
    run = lambda: scan_model_dir(path)
    check = lambda r: r.ok
elif side == "picklescan":
    from picklescan.scanner import scan_file_path
    run = lambda: scan_file_path(path)
    check = lambda r: r.infected_files == 0 and r.scan_err is False
else:
    from modelscan.modelscan import ModelScan
    run = lambda: ModelScan().scan(path)
    check = lambda r: not r.get("issues") and not r.get("errors")
base = hwm_kib()
start = time.perf_counter()
result = run()
elapsed = time.perf_counter() - start
peak = hwm_kib()
print(json.dumps({"seconds": elapsed, "peak_kib": peak, "baseline_kib": base, "clean": bool(check(result))}))
"""


def write_inputs(work: Path, array_mb: int, floats_mb: int) -> dict[str, Path]:
    """Write the two pickles (streamed, so writing them needs little memory)."""
    import numpy as np

    work.mkdir(parents=True, exist_ok=True)
    paths = {"array": work / f"array_{array_mb}mb.pkl", "floats": work / f"floats_{floats_mb}mb.pkl"}
    if not paths["array"].exists():
        arr = np.random.default_rng(0).random(array_mb * (1 << 20) // 8)
        with paths["array"].open("wb") as fh:
            pickle.dump(arr, fh, protocol=4)
        del arr
    if not paths["floats"].exists():
        n = floats_mb * 1_000_000 // 9  # one BINFLOAT opcode is 9 bytes
        values = [i * 0.5 + 0.25 for i in range(n)]
        with paths["floats"].open("wb") as fh:
            pickle.dump(values, fh, protocol=4)
        del values
    return paths


def run_side(python: str, side: str, path: Path) -> dict[str, float | bool]:
    env_cmd = [python, "-c", _CHILD, side, str(path)]
    out = subprocess.run(env_cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_above_baseline_mb"] = (result["peak_kib"] - result["baseline_kib"]) / 1024
    result["peak_mb"] = result["peak_kib"] / 1024
    return result


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/airflow_mlops_scan_bench"))
    parser.add_argument("--array-mb", type=int, default=1024)
    parser.add_argument("--floats-mb", type=int, default=200)
    parser.add_argument("--peer-python", default=None, help="interpreter with picklescan and modelscan")
    parser.add_argument("--sides", default="airflow-mlops,picklescan,modelscan")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    paths = write_inputs(args.work, args.array_mb, args.floats_mb)
    sides = [s for s in args.sides.split(",") if s]
    results: dict[str, dict[str, dict[str, float | bool]]] = {}
    for case, path in paths.items():
        results[case] = {}
        for side in sides:
            python = sys.executable if side == "airflow-mlops" else args.peer_python
            if python is None:
                continue
            results[case][side] = run_side(python, side, path)
    print(f"{'case':<8} {'side':<14} {'file MB':>8} {'seconds':>9} {'peak MB':>9} {'peak-base MB':>12} clean")
    for case, by_side in results.items():
        size_mb = paths[case].stat().st_size / 1e6
        for side, r in by_side.items():
            print(
                f"{case:<8} {side:<14} {size_mb:>8.0f} {r['seconds']:>9.2f} {r['peak_mb']:>9.1f} "
                f"{r['peak_above_baseline_mb']:>12.1f} {r['clean']}"
            )
    ratios: dict[str, dict[str, float]] = {}
    for case, by_side in results.items():
        ours = by_side.get("airflow-mlops")
        for peer in ("picklescan", "modelscan"):
            if ours and peer in by_side:
                ratio = float(ours["seconds"]) / float(by_side[peer]["seconds"])
                ratios.setdefault(case, {})[peer] = ratio
                print(f"ratio, airflow-mlops / {peer} time on {case}: {ratio:.3f}x")
    summary = {
        "results": results,
        "ratios": ratios,
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
