"""`airflow-mlops model sign | verify | scan`: the supply-chain checks on the command line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from airflow_mlops.cli import main
from airflow_mlops.security.attestation import EVALUATION_PREDICATE, sign_statement, statement
from airflow_mlops.security.signing import generate_key_pair


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    private, public = generate_key_pair()
    root = tmp_path_factory.mktemp("keys")
    (root / "private.pem").write_bytes(private)
    (root / "public.pem").write_bytes(public)
    return root / "private.pem", root / "public.pem", private


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "weights" / "model_config.json").write_text(json.dumps({"w": [1, 2, 3]}))
    (model / "weights" / "values.pkl").write_bytes(pickle.dumps({"a": [1.5, 2.5]}, protocol=4))
    return model


def _signed(tmp_path: Path, key_files) -> Path:
    model = _model(tmp_path)
    assert main(["model", "sign", str(model), "--private-key", str(key_files[0])]) == 0
    return model


def _verify(model: Path, key_files, *extra: str) -> int:
    return main(["model", "verify", str(model), "--public-key", str(key_files[1]), *extra])


def test_sign_then_verify(tmp_path: Path, key_files, capsys: pytest.CaptureFixture[str]) -> None:
    model = _signed(tmp_path, key_files)
    assert (tmp_path / "model.sig").is_file()
    assert _verify(model, key_files) == 0
    out = capsys.readouterr()
    assert "verified" in out.out
    assert key_files[2].decode().splitlines()[1] not in out.out + out.err  # the key never printed


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        (lambda m: (m / "weights" / "model_config.json").write_text('{"w": [1, 2, 4]}'), "model_config.json"),
        (lambda m: (m / "extra.bin").write_bytes(b"x"), "extra.bin"),
        (lambda m: (m / "MLmodel").unlink(), "MLmodel"),
        (lambda m: (m / "MLmodel").rename(m / "MLmodel2"), "MLmodel"),
    ],
    ids=["byte-changed", "file-added", "file-removed", "file-renamed"],
)
def test_a_tampered_model_does_not_verify_and_the_file_is_named(
    tmp_path: Path, key_files, capsys: pytest.CaptureFixture[str], tamper, fragment: str
) -> None:
    model = _signed(tmp_path, key_files)
    tamper(model)
    capsys.readouterr()
    assert _verify(model, key_files) == 1
    err = capsys.readouterr().err
    assert "does NOT verify" in err and fragment in err


def test_another_key_or_a_truncated_signature_does_not_verify(
    tmp_path: Path, key_files, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _signed(tmp_path, key_files)
    _, other = generate_key_pair()
    (tmp_path / "other.pem").write_bytes(other)
    assert main(["model", "verify", str(model), "--public-key", str(tmp_path / "other.pem")]) == 1
    sig = tmp_path / "model.sig"
    sig.write_bytes(sig.read_bytes()[: len(sig.read_bytes()) // 2])
    assert _verify(model, key_files) == 1
    assert capsys.readouterr().err.count("does NOT verify") == 2


def test_an_attestation_for_another_digest_does_not_verify(
    tmp_path: Path, key_files, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_mlops.artifacts import sha256_directory

    model = _signed(tmp_path, key_files)
    private = key_files[2]
    good = tmp_path / "good.intoto.json"
    good.write_text(
        json.dumps(sign_statement(statement(sha256_directory(model)[0], EVALUATION_PREDICATE, {}), private))
    )
    other = tmp_path / "other.intoto.json"
    other.write_text(json.dumps(sign_statement(statement("0" * 64, EVALUATION_PREDICATE, {}), private)))
    assert _verify(model, key_files, "--evaluation-attestation", str(good)) == 0
    assert "evaluation attestation verified" in capsys.readouterr().out
    assert _verify(model, key_files, "--evaluation-attestation", str(other)) == 1
    assert "belongs to another model" in capsys.readouterr().err


def test_scan_passes_a_plain_model_and_reports_a_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path)
    assert main(["model", "scan", str(model)]) == 0
    assert "no findings" in capsys.readouterr().out
    evil = tmp_path / "evil.pkl"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    evil.write_bytes(pickle.dumps(Payload()))
    assert main(["model", "scan", str(model), str(evil), "--json"]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in reports] == [str(model), str(evil)]
    assert not reports[0]["findings"] and reports[1]["findings"]
    assert "system" in json.dumps(reports[1]["findings"])
    assert main(["model", "scan", str(tmp_path / "missing")]) == 1


# --- clear errors, credentials redacted -----------------------------------------------------------

SECRET = "s3cr3t-Pa55w0rd"


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for name in ("AIRFLOW_CONN_NOSUCH_SIGNING", "AIRFLOW_CONN_NOSUCH_MLFLOW"):
        monkeypatch.delenv(name, raising=False)


def test_rollback_without_a_signing_connection_says_which_and_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_connections: None
) -> None:
    code = main(
        [
            *("model", "rollback", "fraud", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"),
            *("--signing-conn-id", "nosuch_signing"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "'nosuch_signing' is not defined" in err and "AIRFLOW_CONN_NOSUCH_SIGNING" in err
    assert "--public-key" in err and "airflow connections add nosuch_signing" in err


@pytest.mark.parametrize("command", ["history", "rollback", "bom"])
def test_a_missing_mlflow_connection_says_which_and_how(
    command: str, key_files, capsys: pytest.CaptureFixture[str], no_connections: None
) -> None:
    args = ["model", command, "fraud", "--mlflow-conn-id", "nosuch_mlflow"]
    if command == "rollback":
        args += ["--public-key", str(key_files[1])]
    if command == "bom":
        args.insert(3, "1")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "'nosuch_mlflow' is not defined" in err and "--tracking-uri" in err


@pytest.mark.parametrize("command", ["history", "rollback"])
def test_a_tracking_uri_with_credentials_is_never_echoed(
    command: str, key_files, capsys: pytest.CaptureFixture[str], no_connections: None
) -> None:
    uri = f"http://alice:{SECRET}@127.0.0.1:9/?token={SECRET}"
    args = ["model", command, "fraud", "--tracking-uri", uri]
    if command == "rollback":
        args += ["--public-key", str(key_files[1])]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 1
    assert SECRET not in captured.err + captured.out and "Traceback" not in captured.err


def test_an_unexpected_error_is_one_redacted_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_mlops.registry import audit

    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"cannot reach https://bob:{SECRET}@mlflow/api?api_key={SECRET}")

    monkeypatch.setattr(audit, "audit_history", boom)
    assert main(["model", "history", "fraud", "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"]) == 1
    err = capsys.readouterr().err
    assert SECRET not in err and "https://***@mlflow/api?api_key=***" in err and "RuntimeError" in err


def test_log_records_of_the_model_commands_are_redacted(
    tmp_path: Path, key_files, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    model = _signed(tmp_path, key_files)  # runs main(): the redaction is installed
    assert model.is_dir()
    with caplog.at_level(logging.INFO):
        logging.getLogger("mlflow.x").warning("cannot reach %s", f"http://u:{SECRET}@h/?token={SECRET}")
    assert SECRET not in caplog.text and "http://***@h/?token=***" in caplog.text
