"""Release signatures: an Ed25519 key kept like the vault key signs each release's manifest
(which holds every file's sha256), so a release whose files and manifest were both rewritten
no longer verifies, and a release is never built on a parent that does not.

The key resolves as the vault key does (core.vault): FEEDBACK_SIGNING_KEY (urlsafe base64 of
the 32-byte private key), else the file FEEDBACK_SIGNING_KEY_FILE, else
~/.config/feedback-pipeline/signing.key, created (0600) on first use; a key file inside the
data root is refused. The signature file records the public key's fingerprint; verification
trusts only the public key of the key in use (and any listed in FEEDBACK_TRUSTED_SIGNING_KEYS,
comma-separated urlsafe base64 public keys, for releases signed by a rotated key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from feedback_pipeline.core.vault import (
    DATA_ROOT_ENV,
    VaultKeyError,
    _decode,
    _read_or_create_key_file,
    default_key_path,
)

KEY_ENV = "FEEDBACK_SIGNING_KEY"
KEY_FILE_ENV = "FEEDBACK_SIGNING_KEY_FILE"
TRUSTED_ENV = "FEEDBACK_TRUSTED_SIGNING_KEYS"
SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "ed25519"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """A public key's short id, safe to log and to record in a release."""
    return hashlib.sha256(b"release-signing-key\x00" + public_bytes(key)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_fingerprint(self.public)


def _from_seed(seed: bytes) -> SigningKey:
    if len(seed) != 32:
        raise VaultKeyError("the signing key must decode to exactly 32 bytes (Ed25519)")
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def check_outside_data_root(path: Path, data_root: str | os.PathLike[str] | None) -> None:
    """A key file must never sit under the data root it protects."""
    root = str(data_root) if data_root else None
    if not root or "://" in root:
        return
    if Path(path).expanduser().resolve().is_relative_to(Path(root).resolve()):
        raise VaultKeyError("the signing key file must live outside the data root")


def resolve_signing_key(env: Mapping[str, str] | None = None,
                        data_root: str | os.PathLike[str] | None = None) -> SigningKey:
    """The release signing key from the environment, the named key file, or the default file
    (created on first use)."""
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return _from_seed(_decode(env[KEY_ENV]))
    path = (Path(env[KEY_FILE_ENV]).expanduser() if env.get(KEY_FILE_ENV)
            else default_key_path(env).with_name("signing.key"))
    check_outside_data_root(path, data_root or env.get(DATA_ROOT_ENV))
    return _from_seed(_read_or_create_key_file(path, lambda: _b64(os.urandom(32))))


def sign_manifest(manifest_bytes: bytes, key: SigningKey) -> bytes:
    """The signature file's bytes for a manifest: algorithm, key id, public key, signature."""
    return (json.dumps({"algorithm": ALGORITHM, "key_id": key.key_id,
                        "public_key": _b64(public_bytes(key.public)),
                        "signature": _b64(key.private.sign(manifest_bytes))},
                       indent=2, sort_keys=True) + "\n").encode("utf-8")


def trusted_keys(key: SigningKey | None,
                 env: Mapping[str, str] | None = None) -> dict[str, Ed25519PublicKey]:
    """key id -> public key of every key a release may be signed by."""
    env = os.environ if env is None else env
    keys = {}
    if key is not None:
        keys[key.key_id] = key.public
    for text in filter(None, (t.strip() for t in env.get(TRUSTED_ENV, "").split(","))):
        public = Ed25519PublicKey.from_public_bytes(_decode(text))
        keys[key_fingerprint(public)] = public
    return keys


def signature_problems(manifest_bytes: bytes, signature_bytes: bytes | None,
                       trusted: Mapping[str, Ed25519PublicKey]) -> list[str]:
    """Why a manifest's signature does not hold; empty when a trusted key signed it."""
    if signature_bytes is None:
        return [f"{SIGNATURE_FILE}: missing (the release is unsigned)"]
    try:
        record: dict[str, Any] = json.loads(signature_bytes)
        signature = _decode(record["signature"])
        key_id = str(record["key_id"])
    except (ValueError, KeyError, TypeError, VaultKeyError):
        return [f"{SIGNATURE_FILE}: unreadable"]
    if record.get("algorithm") != ALGORITHM:
        return [f"{SIGNATURE_FILE}: algorithm is not {ALGORITHM}"]
    public = trusted.get(key_id)
    if public is None:
        return [f"{SIGNATURE_FILE}: signed by key {key_id}, which is not a trusted signing key"]
    try:
        public.verify(signature, manifest_bytes)
    except InvalidSignature:
        return [f"{SIGNATURE_FILE}: the signature does not match manifest.json"]
    return []
