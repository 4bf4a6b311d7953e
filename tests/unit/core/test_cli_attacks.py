"""The command line under hostile input: no raw traceback, no credential, a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.cli import main

SECRET = "s3cr3t-Pa55word"


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlops.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "uri",
    [f"http://alice:{SECRET}@127.0.0.1:1", f"http://127.0.0.1:1/?token={SECRET}&x=1"],
)
def test_an_unreachable_credentialed_tracking_uri_is_a_clean_error(uri: str) -> None:
    for command in (["history", "m"], ["bom", "m", "1"], ["rollback", "m", "--public-key", os.devnull]):
        done = _run(
            "model", *command, "--tracking-uri", uri, env={"MLFLOW_TRACKING_PASSWORD": "pw-" + SECRET}
        )
        assert done.returncode == 1, done
        for stream in (done.stdout, done.stderr):
            assert SECRET not in stream and "Traceback" not in stream
        assert "127.0.0.1:1" in done.stderr


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    from airflow_mlops.security.signing import generate_key_pair

    private, public = generate_key_pair()
    (tmp_path / "k.pem").write_bytes(private)
    (tmp_path / "pub.pem").write_bytes(public)
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.txt").write_text("a")
    assert main(["model", "sign", str(model), "--private-key", str(tmp_path / "k.pem")]) == 0
    bad = {
        "deep": b"[" * 200_000 + b"]" * 200_000,
        "nan": b'{"payloadType": "x", "payload": NaN, "signatures": []}',
        "infinity": b'{"a": -Infinity}',
        "bigint": b'{"a": ' + b"9" * 100_000 + b"}",
        "duplicate": b'{"payload": "a", "payload": "b"}',
        "nonutf8": b'{"a": "\xff\xfe"}',
    }
    out = {"model": model, "pub": tmp_path / "pub.pem", "key": tmp_path / "k.pem"}
    for name, data in bad.items():
        (tmp_path / f"{name}.json").write_bytes(data)
        out[name] = tmp_path / f"{name}.json"
    return out


@pytest.mark.parametrize("bad", ["deep", "nan", "infinity", "bigint", "duplicate", "nonutf8"])
def test_hostile_signatures_and_attestations_fail_with_a_message(
    files: dict[str, Path], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model, pub = str(files["model"]), str(files["pub"])
    for extra in (["--signature", str(files[bad])], ["--evaluation-attestation", str(files[bad])]):
        assert main(["model", "verify", model, "--public-key", pub, *extra]) == 1
        err = capsys.readouterr().err
        assert "does NOT verify" in err and "Traceback" not in err and len(err) < 3000


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "dir"])
def test_a_device_fifo_or_folder_is_never_read_as_a_document(
    files: dict[str, Path], tmp_path: Path, special: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = special
    if special == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif special == "dir":
        path = str(tmp_path)
    model, pub = str(files["model"]), str(files["pub"])
    assert main(["model", "verify", model, "--public-key", pub, "--evaluation-attestation", path]) == 1
    assert "not a regular file" in capsys.readouterr().err or special == "dir"
    with pytest.raises(SystemExit) as exited:
        main(["model", "verify", model, "--public-key", path])
    assert "regular file" in str(exited.value) or "cannot be read" in str(exited.value)


def test_an_unexpected_error_of_a_spec_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import airflow_mlops.cli.spec as cli_spec

    def boom(file: str) -> int:
        raise RuntimeError(f"bug reading http://bob:{SECRET}@h/ " + "x" * 10_000)

    monkeypatch.setattr(cli_spec, "render", boom)
    assert main(["spec", "render", "spec.yaml"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and SECRET not in err and "Traceback" not in err and len(err) < 2500
