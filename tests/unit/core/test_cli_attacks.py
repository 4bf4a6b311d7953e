"""The command line under hostile input: no raw traceback, no credential, a clear error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.cli import main
from airflow_mlops.redaction import RedactingRecordFactory, redact_credentials, redact_paths

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


def test_a_credential_env_value_is_masked_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-" + SECRET)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "k" + SECRET)
    assert SECRET not in redact_credentials(f"header was tok-{SECRET}; key k{SECRET}")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert redact_credentials("true") == "true"


def test_a_logged_traceback_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("tests.cli_attacks")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(RedactingRecordFactory(previous))
    try:
        try:
            raise ConnectionError(f"http://alice:{SECRET}@mlflow/api?token={SECRET}")
        except ConnectionError:
            logger.exception("the registry failed")
            logger.warning("again", exc_info=True, stack_info=True)
    finally:
        logging.setLogRecordFactory(previous)
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConnectionError" in err and "mlflow/api" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("sqlite:////srv/airflow/mlflow.db failed", "/srv/airflow"),
        ("artifact at mlflow-artifacts:/0/abc/artifacts", "0/abc"),
        ("dbfs:/Volumes/team/x", "Volumes"),
        ("./mlruns/0/abc", "mlruns"),
        ("C:\\Users\\svc\\mlflow", "Users"),
        (f"{{'Authorization': 'Basic {SECRET}'}}", SECRET),
        (f"Authorization: Bearer {SECRET}", SECRET),
        (f'{{"password": "{SECRET}"}}', SECRET),
    ],
)
def test_paths_and_credentials_in_other_spellings_are_redacted(text: str, leak: str) -> None:
    assert leak not in redact_paths(text)


def test_http_links_and_plain_words_stay() -> None:
    for text in (
        "see https://docs.example.org/a/b",
        "urn:airflow-mlops:predicate:evaluation:v1",
        "ratio 1/2 at 10:30",
    ):
        assert redact_paths(text) == text


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
