"""Tests for model signing with model_signing and EC keys: round trip and every way to tamper."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_mlops.exceptions import SignatureVerificationError, SigningError
from airflow_mlops.security import signing
from airflow_mlops.security.signing import (
    SignatureInfo,
    generate_key_pair,
    public_key_fingerprint,
    sign_model,
    verify_model,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "sub" / "config.json").write_text('{"layers": 2}')
    return root


@pytest.fixture
def signed(model_dir: Path, keys: tuple[bytes, bytes], tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A signed model: (model_dir, signature_path, public_pem)."""
    private_pem, public_pem = keys
    signature = tmp_path / "signatures" / "model.sig"
    sign_model(model_dir, signature, private_pem)
    return model_dir, signature, public_pem


def _secret_fragments(private_pem: bytes) -> list[str]:
    """The PEM body lines: any of them in a message would leak key material."""
    return [line for line in private_pem.decode().splitlines() if line and not line.startswith("-----")]


# --- keys ---------------------------------------------------------------------------------


def test_rsa_keys_are_refused_with_a_clear_message(model_dir: Path, tmp_path: Path) -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(SigningError, match="elliptic-curve") as excinfo:
        sign_model(model_dir, tmp_path / "model.sig", rsa_pem)
    assert not (tmp_path / "model.sig").exists()
    for fragment in _secret_fragments(rsa_pem):
        assert fragment not in str(excinfo.value)


# --- signing ------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(model_dir: Path, keys: tuple[bytes, bytes], tmp_path: Path) -> None:
    private_pem, public_pem = keys
    signature = tmp_path / "out" / "model.sig"

    info = sign_model(model_dir, signature, private_pem)

    assert isinstance(info, SignatureInfo)
    assert info.signature_path == str(signature)
    assert info.sha256 == hashlib.sha256(signature.read_bytes()).hexdigest()
    assert info.public_key_fingerprint == public_key_fingerprint(public_pem)
    assert info.method == "key"
    assert info.to_dict() == {
        "signature_path": str(signature),
        "sha256": info.sha256,
        "public_key_fingerprint": info.public_key_fingerprint,
        "method": "key",
    }
    bundle = json.loads(signature.read_text())
    assert "dsseEnvelope" in bundle
    signer = verify_model(model_dir, signature, public_pem)
    assert (signer.method, signer.fingerprint, signer.identity) == (
        "key",
        public_key_fingerprint(public_pem),
        None,
    )
    assert verify_model(str(model_dir), str(signature), public_pem.decode()) == signer


def test_encrypted_key_signs_with_password(model_dir: Path, tmp_path: Path) -> None:
    private_pem, public_pem = generate_key_pair(password=b"pa55word")
    signature = tmp_path / "model.sig"

    info = sign_model(model_dir, signature, private_pem, password=b"pa55word")

    assert info.public_key_fingerprint == public_key_fingerprint(public_pem)
    verify_model(model_dir, signature, public_pem)
    with pytest.raises(SigningError) as excinfo:
        sign_model(model_dir, tmp_path / "other.sig", private_pem, password=b"not-the-pa55word")
    assert "not-the-pa55word" not in str(excinfo.value)
    assert not (tmp_path / "other.sig").exists()


def test_signature_inside_the_model_dir_is_refused(model_dir: Path, keys: tuple[bytes, bytes]) -> None:
    for inside in (model_dir / "model.sig", model_dir / "sub" / "model.sig", model_dir):
        with pytest.raises(SigningError, match="inside the model directory"):
            sign_model(model_dir, inside, keys[0])
    assert not (model_dir / "model.sig").exists()
    assert not (model_dir / "sub" / "model.sig").exists()


def test_missing_or_empty_model_dir_is_refused(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)

    with pytest.raises(SigningError, match="not a directory"):
        sign_model(tmp_path / "missing", tmp_path / "a.sig", keys[0])
    with pytest.raises(SigningError, match="contains no files"):
        sign_model(tmp_path / "empty", tmp_path / "b.sig", keys[0])


def test_key_file_is_private_and_deleted(
    model_dir: Path, keys: tuple[bytes, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_signing import signing as ms_signing

    seen: list[tuple[Path, int, bytes]] = []
    original = ms_signing.Config.use_elliptic_key_signer

    def spy(
        self: ms_signing.Config, *, private_key: Path, password: bytes | None = None
    ) -> ms_signing.Config:
        path = Path(private_key)
        seen.append((path, stat.S_IMODE(path.stat().st_mode), path.read_bytes()))
        seen.append((path.parent, stat.S_IMODE(path.parent.stat().st_mode), b""))
        return original(self, private_key=private_key, password=password)  # type: ignore[arg-type]

    monkeypatch.setattr(ms_signing.Config, "use_elliptic_key_signer", spy)

    sign_model(model_dir, tmp_path / "model.sig", keys[0])

    (key_path, key_mode, key_bytes), (dir_path, dir_mode, _) = seen
    assert key_bytes == keys[0]
    assert key_mode == 0o600
    assert dir_mode == 0o700
    assert not key_path.exists()
    assert not dir_path.exists()


def test_failed_signing_keeps_the_old_signature_and_leaks_nothing(
    signed: tuple[Path, Path, bytes],
    keys: tuple[bytes, bytes],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_dir, signature, _ = signed
    before = signature.read_bytes()
    (model_dir / "link").symlink_to(tmp_path)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SigningError, match="symlink") as excinfo:
        sign_model(model_dir, signature, keys[0])

    assert signature.read_bytes() == before
    assert sorted(p.name for p in signature.parent.iterdir()) == ["model.sig"]  # no temp files left
    for fragment in _secret_fragments(keys[0]):
        assert fragment not in str(excinfo.value)
        assert fragment not in caplog.text
    assert excinfo.value.__cause__ is None


def test_key_material_never_reaches_logs_or_errors(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private_pem, _ = generate_key_pair(password=b"hunter2-password")
    caplog.set_level(logging.DEBUG)

    sign_model(model_dir, tmp_path / "ok.sig", private_pem, password=b"hunter2-password")
    errors = []
    for bad_pem in (private_pem[:-40], private_pem.replace(b"A", b"B", 3)):
        with pytest.raises(SigningError) as excinfo:
            sign_model(model_dir, tmp_path / "bad.sig", bad_pem, password=b"hunter2-password")
        errors.append(str(excinfo.value))
        assert excinfo.value.__cause__ is None

    text = caplog.text + "\n".join(errors)
    assert "hunter2-password" not in text
    for fragment in _secret_fragments(private_pem):
        assert fragment not in text
    assert "Signed model" in caplog.text


def test_redact_removes_whole_keys_and_pem_lines() -> None:
    private_pem, _ = generate_key_pair()
    line = _secret_fragments(private_pem)[1]

    text = signing._redact(
        f"boom {line} and {private_pem.decode()} pw=topsecret!", [private_pem, b"topsecret!"]
    )

    assert line not in text
    assert "topsecret!" not in text
    assert text.startswith("boom <redacted>")


# --- verification -------------------------------------------------------------------------


def test_changed_byte_fails_verification(signed: tuple[Path, Path, bytes]) -> None:
    model_dir, signature, public_pem = signed
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(SignatureVerificationError, match="does not match its signature") as excinfo:
        verify_model(model_dir, signature, public_pem)
    assert "changed: model.safetensors" in str(excinfo.value)


@pytest.mark.parametrize("added", ["extra.pkl", "sub/new.json", ".gitignore", ".git/hooks/post-checkout"])
def test_added_file_fails_verification(signed: tuple[Path, Path, bytes], added: str) -> None:
    model_dir, signature, public_pem = signed
    path = model_dir / added
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("surprise")

    with pytest.raises(SignatureVerificationError, match="added, removed or changed") as excinfo:
        verify_model(model_dir, signature, public_pem)
    assert f"added: {added}" in str(excinfo.value)


def test_deleted_file_fails_verification(signed: tuple[Path, Path, bytes]) -> None:
    model_dir, signature, public_pem = signed
    (model_dir / "sub" / "config.json").unlink()

    with pytest.raises(SignatureVerificationError, match=r"removed: sub/config.json") as excinfo:
        verify_model(model_dir, signature, public_pem)
    assert "sub/config.json" in str(excinfo.value)


def test_other_key_fails_verification(signed: tuple[Path, Path, bytes]) -> None:
    model_dir, signature, _ = signed
    _, other_public = generate_key_pair()

    with pytest.raises(SignatureVerificationError, match="different key"):
        verify_model(model_dir, signature, other_public)


def test_signature_resigned_by_attacker_key_fails(signed: tuple[Path, Path, bytes], tmp_path: Path) -> None:
    model_dir, signature, public_pem = signed
    (model_dir / "backdoor.pkl").write_bytes(b"\x80\x04N.")
    attacker_private, _ = generate_key_pair()
    sign_model(model_dir, signature, attacker_private)  # attacker replaces the signature

    with pytest.raises(SignatureVerificationError, match="different key"):
        verify_model(model_dir, signature, public_pem)


def test_forged_key_hint_with_wrong_signature_fails(signed: tuple[Path, Path, bytes]) -> None:
    model_dir, signature, public_pem = signed
    bundle = json.loads(signature.read_text())
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    signature.write_text(json.dumps(bundle))

    with pytest.raises(SignatureVerificationError, match="does not verify with the trusted public key"):
        verify_model(model_dir, signature, public_pem)


def test_missing_signature_fails(model_dir: Path, keys: tuple[bytes, bytes], tmp_path: Path) -> None:
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify_model(model_dir, tmp_path / "nowhere.sig", keys[1])


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage \x00\xff", b"{}", b'{"mediaType": "x", "verificationMaterial": {}}', b"[1, 2]"],
)
def test_malformed_signature_fails(signed: tuple[Path, Path, bytes], content: bytes) -> None:
    model_dir, signature, public_pem = signed
    signature.write_bytes(content)

    with pytest.raises(SignatureVerificationError, match="malformed"):
        verify_model(model_dir, signature, public_pem)


def test_signature_that_ignores_paths_is_refused(
    model_dir: Path, keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    # signed with model_signing's defaults, which leave git files out of the signature
    from model_signing import signing as ms_signing

    private_pem, public_pem = keys
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(private_pem)
    signature = tmp_path / "default.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=key_file).sign(model_dir, signature)

    with pytest.raises(SignatureVerificationError, match=r"leaves paths out.*\.gitignore"):
        verify_model(model_dir, signature, public_pem)


def test_verify_refuses_a_bad_public_key_or_missing_model(
    signed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    model_dir, signature, _ = signed

    with pytest.raises(SignatureVerificationError, match="trusted public key cannot be loaded"):
        verify_model(model_dir, signature, b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SignatureVerificationError, match="not a directory"):
        verify_model(tmp_path / "missing", signature, signed[2])


def test_verification_reads_nothing_but_the_given_paths(signed: tuple[Path, Path, bytes]) -> None:
    model_dir, signature, public_pem = signed
    # a renamed model directory still verifies: the name is not part of what is signed
    renamed = model_dir.with_name("model-copy")
    os.rename(model_dir, renamed)

    assert verify_model(renamed, signature, public_pem).fingerprint == public_key_fingerprint(public_pem)


def test_importing_the_security_modules_loads_no_heavy_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow_mlops.security.scanning, airflow_mlops.security.signing; "
        "print(sorted(m for m in ('numpy', 'torch', 'model_signing', 'cryptography', 'safetensors') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"


DEEP = 100_000


def _deep_list(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "content",
    [
        _deep_list(),
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": '
        + b'{"a": ' * DEEP
        + b"1"
        + b"}" * DEEP
        + b"}",
        b'{"dsseEnvelope": {"payload": "x", "signatures": ' + _deep_list() + b"}}",
        b"[" * DEEP,  # unterminated
    ],
    ids=["list", "in-bundle", "in-envelope", "unterminated"],
)
def test_a_deeply_nested_signature_fails_closed_with_a_message(
    signed: tuple[Path, Path, bytes], content: bytes
) -> None:
    model_dir, signature, public_pem = signed
    signature.write_bytes(content)
    with pytest.raises(SignatureVerificationError, match="deeper than 64 levels") as info:
        verify_model(model_dir, signature, public_pem)
    assert "verification failed" in str(info.value)


def test_a_deeply_nested_signed_statement_fails_closed(signed: tuple[Path, Path, bytes]) -> None:
    import base64
    import json

    model_dir, signature, public_pem = signed
    bundle = json.loads(signature.read_bytes())
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(_deep_list()).decode()
    signature.write_text(json.dumps(bundle))
    with pytest.raises(SignatureVerificationError, match=r"statement .*deeper than 64 levels"):
        verify_model(model_dir, signature, public_pem)


def test_an_ordinary_signature_is_well_within_the_bounds(signed: tuple[Path, Path, bytes]) -> None:
    from airflow_mlops.security.trust import MAX_JSON_DEPTH, _too_deep

    model_dir, signature, public_pem = signed
    assert not _too_deep(signature.read_bytes(), 12)
    assert MAX_JSON_DEPTH >= 32
    verify_model(model_dir, signature, public_pem)
