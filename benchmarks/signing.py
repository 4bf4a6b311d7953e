"""Sign + verify throughput of airflow-mlops's model signing, side by side in one run with raw
hashing of the same files and with the ``model_signing`` command line.

    .venv/bin/python benchmarks/signing.py [--gib 2] [--files 4] [--repeat 3] [--out FILE]

Writes ``--files`` large files of random bytes (plus a few small ones, like a real model
directory) totalling ``--gib`` GiB into a temporary directory, reads them once so every contender
sees the page cache warm, then times (best of ``--repeat``):

- raw hashing: sha256 of every file, one file after the other, and the same with one thread per
  core (the floor any file-by-file signer can reach);
- ``sign_model`` and ``verify_model`` (airflow_mlops.security.signing: OpenSSF model signing, every
  file hashed, no ignored paths);
- ``model_signing sign key`` / ``model_signing verify key`` (the library's own CLI, a subprocess).

Prints the table and the ratios against raw hashing (target: sign and verify each within 1.2x of
the faster raw hashing).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CHUNK = 8 << 20


def _write_model(root: Path, gib: float, files: int) -> int:
    root.mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {python_function: {}}\n")
    (root / "requirements.txt").write_text("torch==2.13.0\n")
    (root / "config.json").write_text(json.dumps({"layers": list(range(100))}))
    per_file = int(gib * (1 << 30)) // files
    block = os.urandom(CHUNK)
    for i in range(files):
        with open(root / f"shard-{i:02d}.safetensors", "wb") as fh:
            written = 0
            while written < per_file:
                n = min(CHUNK, per_file - written)
                fh.write(block[:n] if i % 2 else block[::-1][:n])  # distinct content per file
                written += n
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def raw_sequential(root: Path) -> None:
    for path in _files(root):
        _sha256(path)


def raw_parallel(root: Path) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_sha256, _files(root)))


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    from airflow_mlops.security.signing import generate_key_pair, sign_model, verify_model

    cli = shutil.which("model_signing") or str(Path(sys.executable).parent / "model_signing")
    work = Path(tempfile.mkdtemp(prefix="mlops-sign-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    try:
        model = work / "model"
        size = _write_model(model, args.gib, args.files)
        private, public = generate_key_pair()
        (work / "private.pem").write_bytes(private)
        (work / "public.pem").write_bytes(public)
        raw_sequential(model)  # warm the page cache for everyone
        sig, cli_sig = work / "model.sig", work / "cli.sig"

        def ours_sign() -> None:
            sign_model(model, sig, private)

        def ours_verify() -> None:
            verify_model(model, sig, public)

        def cli_sign() -> None:
            subprocess.run(
                [cli, "--log-level", "ERROR", "sign", "key", str(model), "--no-ignore-git-paths",
                 "--private_key", str(work / "private.pem"), "--signature", str(cli_sig)],
                check=True, capture_output=True,
            )  # fmt: skip

        def cli_verify() -> None:
            subprocess.run(
                [cli, "--log-level", "ERROR", "verify", "key", str(model), "--no-ignore-git-paths",
                 "--public_key", str(work / "public.pem"), "--signature", str(cli_sig)],
                check=True, capture_output=True,
            )  # fmt: skip

        ours_sign()
        cli_sign()  # both signatures exist before the verify timings
        results = {
            "raw sha256, sequential": _best(lambda: raw_sequential(model), args.repeat),
            "raw sha256, one thread per core": _best(lambda: raw_parallel(model), args.repeat),
            "airflow-mlops sign_model": _best(ours_sign, args.repeat),
            "airflow-mlops verify_model": _best(ours_verify, args.repeat),
            "model_signing CLI sign key": _best(cli_sign, args.repeat),
            "model_signing CLI verify key": _best(cli_verify, args.repeat),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = min(results["raw sha256, sequential"], results["raw sha256, one thread per core"])
    gib = size / (1 << 30)
    print(f"{gib:.2f} GiB in {args.files + 3} files, best of {args.repeat}, page cache warm; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    print(f"{'':36} {'seconds':>8} {'GiB/s':>7} {'x raw':>7}")
    for name, seconds in results.items():
        print(f"{name:36} {seconds:8.2f} {gib / seconds:7.2f} {seconds / floor:7.2f}")
    ratios = {
        "sign_vs_raw": results["airflow-mlops sign_model"] / floor,
        "verify_vs_raw": results["airflow-mlops verify_model"] / floor,
        "sign_vs_cli": results["airflow-mlops sign_model"] / results["model_signing CLI sign key"],
        "verify_vs_cli": results["airflow-mlops verify_model"] / results["model_signing CLI verify key"],
    }
    met = ratios["sign_vs_raw"] <= 1.2 and ratios["verify_vs_raw"] <= 1.2
    print(
        f"sign {ratios['sign_vs_raw']:.2f}x / verify {ratios['verify_vs_raw']:.2f}x the faster raw hashing "
        f"(target <= 1.2x: {'met' if met else 'NOT met'}); vs the model_signing CLI: sign "
        f"{ratios['sign_vs_cli']:.2f}x, verify {ratios['verify_vs_cli']:.2f}x"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"gib": gib, "files": args.files + 3, "seconds": results, "ratios": ratios}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
