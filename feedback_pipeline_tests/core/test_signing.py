"""Signed releases: a rewritten file with a rewritten manifest no longer verifies."""

from __future__ import annotations

import base64
import json
import os

import pytest

from feedback_pipeline.core.release import sha256_bytes, verify_release_dir, write_release
from feedback_pipeline.core.signing import (
    KEY_ENV,
    KEY_FILE_ENV,
    SIGNATURE_FILE,
    TRUSTED_ENV,
    public_bytes,
    resolve_signing_key,
    sign_manifest,
    trusted_keys,
)
from feedback_pipeline.core.vault import VaultKeyError


def key_env(seed: bytes) -> dict[str, str]:
    return {KEY_ENV: base64.urlsafe_b64encode(seed).decode()}


KEY = resolve_signing_key(key_env(b"\x01" * 32))
OTHER = resolve_signing_key(key_env(b"\x02" * 32))


def release(tmp_path, key=KEY, version="ds-v1"):
    files = {"preference_pairs.parquet": b"rows", "README.md": b"card"}
    return write_release(tmp_path / "releases", version, files, {"dataset_version": version},
                         sign=lambda text: sign_manifest(text, key))


def make_writable(folder):
    for path in folder.iterdir():
        os.chmod(path, 0o644)


def test_a_signed_release_verifies_and_a_rewritten_file_and_manifest_do_not(tmp_path):
    folder = release(tmp_path)
    assert (folder / SIGNATURE_FILE).is_file()
    assert verify_release_dir(folder, trusted_keys(KEY, env={})) == []
    make_writable(folder)
    (folder / "preference_pairs.parquet").write_bytes(b"poisoned rows")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["preference_pairs.parquet"] = sha256_bytes(b"poisoned rows")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    problems = verify_release_dir(folder, trusted_keys(KEY, env={}))
    assert problems == [f"{SIGNATURE_FILE}: the signature does not match manifest.json"]


def test_a_release_re_signed_by_an_untrusted_key_or_unsigned_fails(tmp_path):
    forged = release(tmp_path, key=OTHER)
    [problem] = verify_release_dir(forged, trusted_keys(KEY, env={}))
    assert "not a trusted signing key" in problem
    rotated = {TRUSTED_ENV: base64.urlsafe_b64encode(public_bytes(OTHER.public)).decode()}
    assert verify_release_dir(forged, trusted_keys(KEY, env=rotated)) == []
    unsigned = write_release(tmp_path / "releases", "ds-v2", {"a.parquet": b"x"},
                             {"dataset_version": "ds-v2"})
    assert verify_release_dir(unsigned, trusted_keys(KEY, env={})) == [
        f"{SIGNATURE_FILE}: missing (the release is unsigned)"]


def test_the_key_file_is_made_once_owner_only_and_never_inside_the_data_root(tmp_path):
    path = tmp_path / "keys" / "signing.key"
    first = resolve_signing_key({KEY_FILE_ENV: str(path)}, data_root=tmp_path / "data")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert resolve_signing_key({KEY_FILE_ENV: str(path)}).key_id == first.key_id
    inside = tmp_path / "data" / "signing.key"
    with pytest.raises(VaultKeyError, match="outside the data root"):
        resolve_signing_key({KEY_FILE_ENV: str(inside)}, data_root=tmp_path / "data")
    assert not inside.exists()
    with pytest.raises(VaultKeyError, match="32 bytes"):
        resolve_signing_key(key_env(b"short"))
