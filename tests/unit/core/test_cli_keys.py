"""`airflow-mlops keys generate`: a key pair in files, and the connection the signing hook reads.

End to end: the printed commands are run by a real shell (and the real `airflow connections
add`), the hook loads the key from the connection they make, a model is signed with it and
verified with the public key file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from airflow_mlops.cli import main
from airflow_mlops.exceptions import SignatureVerificationError
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.security.signing import (
    generate_key_pair,
    public_key_fingerprint,
    public_key_from_private,
    sign_model,
    verify_model,
)

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _generate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", "generate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "weights" / "values.pkl").write_bytes(pickle.dumps({"a": [1.5, 2.5]}, protocol=4))
    return model


def _printed_command(out: str, start: str) -> str:
    """The shell command of ``out`` that begins with ``start``, continuation lines joined."""
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(start))
    command = []
    for line in lines[first:]:
        command.append(line.strip())
        if not line.endswith("\\"):
            break
    return "\n".join(command)


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, this venv's commands first; no Airflow setting of the test session
    (unit-test mode, its home) leaks in, only ``env``'s."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={**inherited, "PATH": path, **env},
        timeout=120,
    )


def _fingerprint(out: str) -> str:
    match = re.search(r"^  fingerprint  ([0-9a-f]{64})$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def test_the_printed_connection_signs_a_model_that_the_public_key_file_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "new" / "keys"
    code, out, err = _generate(capsys, "--out", str(out_dir), "--conn-id", "sign_e2e")
    assert code == 0, err
    private, public = out_dir / "signing_key.pem", out_dir / "signing_key.pub.pem"
    assert _mode(out_dir) == 0o700 and f"created {out_dir}" in err
    assert _mode(private) == 0o600 and _mode(public) == 0o644
    assert public_key_from_private(private.read_bytes()) == public.read_bytes()  # one pair
    for body_line in private.read_text().splitlines()[1:-1]:
        assert body_line not in out + err  # the private key is never printed
    assert _fingerprint(out) == public_key_fingerprint(public.read_bytes())

    # the JSON form, made by the printed command in a real shell, read by the signing hook
    export = _printed_command(out, "export AIRFLOW_CONN_SIGN_E2E=")
    assert str(private) in export
    shell = _bash(f'{export}\nprintf %s "$AIRFLOW_CONN_SIGN_E2E"')
    assert shell.returncode == 0, shell.stderr
    conn = json.loads(shell.stdout)
    assert conn["conn_type"] == "mlops_signing" and conn["password"] == private.read_text()
    monkeypatch.setenv("AIRFLOW_CONN_SIGN_E2E", shell.stdout)
    key = ModelSigningHook(signing_conn_id="sign_e2e", method="key").get_key(need_private=True)
    assert key.signer is not None

    model = _model(tmp_path)
    info = sign_model(model, tmp_path / "model.sig", key.signer)
    assert info.public_key_fingerprint == _fingerprint(out)
    assert verify_model(model, tmp_path / "model.sig", public.read_bytes()).fingerprint == _fingerprint(out)
    assert main(["model", "verify", str(model), "--public-key", str(public)]) == 0

    # the verify-only connection printed holds exactly the public key file, and verifies too
    verify_only = _printed_command(out, "or: export AIRFLOW_CONN_SIGN_E2E=")
    shell = _bash(f'{verify_only.removeprefix("or: ")}\nprintf %s "$AIRFLOW_CONN_SIGN_E2E"')
    assert json.loads(shell.stdout)["extra"]["public_key"] == public.read_text()
    monkeypatch.setenv("AIRFLOW_CONN_SIGN_E2E", shell.stdout)
    trust = ModelSigningHook(signing_conn_id="sign_e2e").get_key(need_private=False).trust
    assert verify_model(model, tmp_path / "model.sig", trust).fingerprint == _fingerprint(out)

    # another key's public key does not verify the signature: the pair is what was checked
    other = tmp_path / "other.pub.pem"
    other.write_bytes(generate_key_pair()[1])
    with pytest.raises(SignatureVerificationError):
        verify_model(model, tmp_path / "model.sig", other.read_bytes())


def test_the_printed_airflow_connections_add_line_reads_the_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fast: the line as the shell hands it to `airflow` (a stand-in that prints its arguments)."""
    code, out, _ = _generate(capsys, "--out", str(tmp_path / "my keys"))  # a path to quote
    assert code == 0
    private = tmp_path / "my keys" / "signing_key.pem"
    stub = "airflow() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\"; }\n"
    shell = _bash(stub + _printed_command(out, "airflow connections add mlops_signing"))
    assert shell.returncode == 0, shell.stderr
    argv = json.loads(shell.stdout)
    assert argv[:4] == ["connections", "add", "mlops_signing", "--conn-type"]
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options["--conn-type"] == "mlops_signing"
    assert options["--conn-password"] == private.read_text().rstrip("\n")  # $(cat) drops the newline
    assert json.loads(options["--conn-extra"]) == {"method": "key"}


@pytest.mark.integration  # the real Airflow command and metadata database: about 20 s
def test_the_printed_airflow_connections_add_stores_the_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real `airflow connections add`, against a fresh metadata database."""
    airflow = BIN / "airflow"
    if not airflow.exists():
        pytest.skip("the airflow command is not installed beside this Python")
    code, out, err = _generate(capsys, "--out", str(tmp_path / "keys"))
    assert code == 0, err
    private, public = tmp_path / "keys" / "signing_key.pem", tmp_path / "keys" / "signing_key.pub.pem"
    home = tmp_path / "airflow-home"
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}

    def stored() -> dict:
        got = _bash("airflow connections get mlops_signing -o json", **env)
        assert got.returncode == 0, got.stdout + got.stderr
        return json.loads(got.stdout[got.stdout.index("[") :])[0]

    migrated = _bash("airflow db migrate", **env)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    added = _bash(_printed_command(out, "airflow connections add mlops_signing"), **env)
    assert added.returncode == 0, added.stdout + added.stderr
    conn = stored()
    assert conn["conn_type"] == "mlops_signing"
    assert conn["password"].strip() == private.read_text().strip()
    assert public_key_from_private(conn["password"]) == public.read_bytes()
    assert conn["extra_dejson"] == {"method": "key"}

    assert _bash("airflow connections delete mlops_signing", **env).returncode == 0
    verify_only = out.split("2. A verify-only connection", 1)[1]
    added = _bash(_printed_command(verify_only, "airflow connections add mlops_signing"), **env)
    assert added.returncode == 0, added.stdout + added.stderr
    conn = stored()
    assert not conn["password"]  # no private key on a verify-only connection
    assert conn["extra_dejson"]["public_key"] == public.read_text()


def test_an_existing_pair_is_never_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(capsys, "--out", str(tmp_path))[0] == 0
    private, public = tmp_path / "signing_key.pem", tmp_path / "signing_key.pub.pem"
    before = private.read_bytes(), public.read_bytes()
    code, out, err = _generate(capsys, "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert str(private) in err and "--force" in err and "refusing to overwrite" in err
    assert (private.read_bytes(), public.read_bytes()) == before

    # one file of the pair is enough to refuse, and the other is not created
    private.unlink()
    code, _, err = _generate(capsys, "--out", str(tmp_path))
    assert code == 2 and str(public) in err and str(private) not in err
    assert not private.exists() and public.read_bytes() == before[1]


def test_force_replaces_the_pair_with_fresh_private_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(capsys, "--out", str(tmp_path))[0] == 0
    private, public = tmp_path / "signing_key.pem", tmp_path / "signing_key.pub.pem"
    old = private.read_bytes()
    private.chmod(0o644)  # a new file replaces it: the old file's mode is not kept
    code, out, err = _generate(capsys, "--out", str(tmp_path), "--force")
    assert code == 0, err
    assert private.read_bytes() != old and _mode(private) == 0o600 and _mode(public) == 0o644
    assert public_key_from_private(private.read_bytes()) == public.read_bytes()
    assert "previous pair is replaced" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing_key.pem", "signing_key.pub.pem"]


def test_a_symbolic_link_at_the_key_path_is_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "signing_key.pem").symlink_to(victim)
    code, _, err = _generate(capsys, "--out", str(keys))
    assert code == 2 and "already exist" in err
    assert victim.read_text() == "keep me"
    assert not (keys / "signing_key.pub.pem").exists()

    assert _generate(capsys, "--out", str(keys), "--force")[0] == 0
    assert victim.read_text() == "keep me"  # the link was replaced, not its target
    assert not (keys / "signing_key.pem").is_symlink() and _mode(keys / "signing_key.pem") == 0o600


def test_the_private_key_is_created_exclusively_with_mode_0600_whatever_the_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)  # the mode must not depend on the umask to be private
    try:
        code, _, err = _generate(capsys, "--out", str(tmp_path / "k"))
    finally:
        os.umask(old_umask)
    assert code == 0, err
    private = tmp_path / "k" / "signing_key.pem"
    calls = [c for c in opened if c[0] == str(private)]
    assert len(calls) == 1
    _, flags, mode = calls[0]
    assert flags & os.O_EXCL and flags & os.O_CREAT and mode == 0o600
    assert _mode(private) == 0o600 and _mode(tmp_path / "k") == 0o700
    assert _mode(tmp_path / "k" / "signing_key.pub.pem") == 0o644


@pytest.mark.parametrize("name", ["", "..", "a/b", "../up", "-x"])
def test_a_name_that_is_not_a_plain_file_name_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = _generate(capsys, "--out", str(tmp_path / "k"), f"--name={name}")
    assert code == 2 and out == "" and "--name" in err
    assert not (tmp_path / "k").exists() and not list(tmp_path.rglob("*.pem"))


def test_a_conn_id_airflow_refuses_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _generate(capsys, "--out", str(tmp_path / "k"), "--conn-id", "bad id;rm")
    assert code == 2 and "--conn-id" in err
    assert not (tmp_path / "k").exists()  # checked before anything is written


def test_a_conn_id_that_is_no_shell_name_gets_no_export_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _generate(capsys, "--out", str(tmp_path), "--conn-id", "ml-signing")
    assert code == 0
    assert "export AIRFLOW_CONN_" not in out and "not a shell variable name" in out
    assert "airflow connections add ml-signing --conn-type mlops_signing" in out
    assert 'connection: "ml-signing"' in out  # the spec must name a connection other than the default


def test_out_that_is_a_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    code, _, err = _generate(capsys, "--out", str(tmp_path / "afile"))
    assert code == 2 and "is not a directory" in err
    code, _, err = _generate(capsys, "--out", str(tmp_path / "afile" / "keys"))
    assert code == 2 and "cannot create the key directory" in err


def test_an_unwritable_directory_is_a_user_error_with_exit_status_2() -> None:
    """A real process; root (who may write anywhere) runs it as nobody, through setpriv."""
    command = [sys.executable, "-m", "airflow_mlops.cli", "keys", "generate"]
    root = Path(tempfile.mkdtemp(prefix="mlops-keys-"))
    locked = root / "locked"
    locked.mkdir()
    try:
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: no unprivileged user to run as")
            root.chmod(0o755)
            locked.chmod(0o755)  # root's directory: nobody may enter it, not write in it
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:
            locked.chmod(0o555)
        done = subprocess.run(
            [*command, "--out", str(locked)], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"cannot write the key pair in {locked}" in done.stderr and "Permission denied" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert list(locked.iterdir()) == []  # nothing half-written
    finally:
        locked.chmod(0o700)
        shutil.rmtree(root)


def test_default_names_and_the_default_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _generate(capsys)
    assert code == 0
    assert (tmp_path / "keys" / "signing_key.pem").is_file()
    assert "airflow connections add mlops_signing " in out and "export AIRFLOW_CONN_MLOPS_SIGNING=" in out
    assert "connection:" not in out  # the spec's default connection needs no change
