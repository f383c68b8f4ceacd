"""The re-identification vault: the token -> value mapping, encrypted at rest.

Each value is sealed with AES-256-GCM under a key derived from the vault key; the row's trace id,
token and kind are bound in as associated data, so a ciphertext moved to another row does not
open. The vault key comes from `FEEDBACK_VAULT_KEY` (urlsafe base64) or the file named by
`FEEDBACK_VAULT_KEY_FILE`, else from `~/.config/feedback-pipeline/vault.key` (created 0600 on
first use); it never lives under the data root. The only reader is `reidentify`, which appends
who asked, why and for what to an audit log before it returns anything. A lost or rotated key
degrades to `key_unavailable` rows; nothing else in the pipeline needs the key to read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_ENV = "FEEDBACK_VAULT_KEY"
KEY_FILE_ENV = "FEEDBACK_VAULT_KEY_FILE"
DATA_ROOT_ENV = "FEEDBACK_DATA_ROOT"
SEALED_COLUMNS = ["trace_id", "token", "kind", "key_id", "ciphertext"]
REVEALED_COLUMNS = ["trace_id", "token", "kind", "value", "status"]
SEALED_SCHEMA = pa.schema([("trace_id", pa.string()), ("token", pa.string()),
                           ("kind", pa.string()), ("key_id", pa.string()),
                           ("ciphertext", pa.binary())])
NONCE_BYTES = 12
_SEAL_INFO = b"feedback-pipeline/vault/aes-256-gcm/v1"
_CORPUS_INFO = b"feedback-pipeline/corpus-stable-tokens/v1"


class VaultKeyError(ValueError):
    """The vault key is malformed or stored somewhere it must not be."""


@dataclass(frozen=True)
class VaultKey:
    """The vault secret and its public fingerprint (`key_id`), which is safe to log."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"VaultKey(key_id={self.key_id!r})"

    @classmethod
    def from_secret(cls, secret: bytes) -> VaultKey:
        if len(secret) < 16:
            raise VaultKeyError("vault key must decode to at least 16 bytes")
        return cls(key_id=hashlib.sha256(b"vault-key-id\x00" + secret).hexdigest()[:16],
                   secret=secret)


def generate_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode(text: str) -> bytes:
    cleaned = text.strip()
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_",
                                validate=True)
    except (ValueError, TypeError) as exc:
        raise VaultKeyError("vault key is not urlsafe base64") from exc


def restrict_permissions(path: Path) -> None:
    """Owner-only: 0700 for directories, 0600 for files."""
    path = Path(path)
    os.chmod(path, 0o700 if path.is_dir() else 0o600)


def default_key_path(env: Mapping[str, str]) -> Path:
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "feedback-pipeline" / "vault.key"


def _check_outside_data_root(path: Path, env: Mapping[str, str]) -> None:
    root = env.get(DATA_ROOT_ENV)
    if root and "://" in root:
        return  # a URL data root is an object store; a local key file cannot be inside it
    if root and path.resolve().is_relative_to(Path(root).resolve()):
        raise VaultKeyError("the vault key file must live outside the data root")


def _read_or_create_key_file(path: Path,
                             generate: Callable[[], str] = generate_key_text) -> bytes:
    """A key file's decoded bytes; the file is created owner-only (0600, in a 0700 folder)
    with `generate()`'s text when it does not exist yet (exclusively: two first uses at once
    both read the one key written)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        restrict_permissions(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(generate() + "\n")
    return _decode(path.read_text(encoding="ascii"))


def resolve_vault_key(env: Mapping[str, str] | None = None) -> VaultKey:
    """The vault key from the environment, the named key file, or the default key file."""
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return VaultKey.from_secret(_decode(env[KEY_ENV]))
    path = Path(env[KEY_FILE_ENV]).expanduser() if env.get(KEY_FILE_ENV) else default_key_path(env)
    _check_outside_data_root(path, env)
    return VaultKey.from_secret(_read_or_create_key_file(path))


def _derive(key: VaultKey, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key.secret)


def corpus_token_key(key: VaultKey) -> bytes:
    """The HMAC key for corpus-stable tokens: derived, so it exists only behind the vault key."""
    return _derive(key, _CORPUS_INFO)


def _aad(trace_id: str, token: str, kind: str) -> bytes:
    return f"{trace_id}\x00{token}\x00{kind}".encode()


def seal_vault(vault: pd.DataFrame, key: VaultKey) -> pd.DataFrame:
    """Vault rows (trace_id, token, kind, value) -> sealed rows with no plaintext column.
    Each row gets its own random nonce (one draw from the OS for the whole frame)."""
    aead = AESGCM(_derive(key, _SEAL_INFO))
    trace_ids = [str(t) for t in vault["trace_id"]]
    tokens = [str(t) for t in vault["token"]]
    kinds = [str(k) for k in vault["kind"]]
    randomness = secrets.token_bytes(NONCE_BYTES * len(trace_ids))
    nonces = [randomness[i:i + NONCE_BYTES]
              for i in range(0, len(randomness), NONCE_BYTES)]
    encrypt = aead.encrypt
    ciphertexts = [nonce + encrypt(nonce, str(value).encode("utf-8"), _aad(tid, token, kind))
                   for nonce, tid, token, kind, value in zip(nonces, trace_ids, tokens, kinds,
                                                             vault["value"], strict=True)]
    return pd.DataFrame({"trace_id": trace_ids, "token": tokens, "kind": kinds,
                         "key_id": [key.key_id] * len(trace_ids), "ciphertext": ciphertexts},
                        columns=SEALED_COLUMNS, dtype=object)


def _append_audit(audit_log: Path, record: dict) -> None:
    audit_log = Path(audit_log)
    audit_log.parent.mkdir(parents=True, exist_ok=True)
    restrict_permissions(audit_log.parent)
    fd = os.open(audit_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    restrict_permissions(audit_log)


def reidentify(sealed: pd.DataFrame, *, requester: str, purpose: str, audit_log: Path,
               key: VaultKey | None, trace_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The one audited reader of the vault.

    Records who asked, why, when, for which traces and how many values were revealed, then
    returns trace_id, token, kind, value, status. Rows sealed under another key (or any row
    when `key` is None) come back with value None and status `key_unavailable`; a ciphertext
    that fails authentication comes back as `tampered`.
    """
    if not str(requester or "").strip() or not str(purpose or "").strip():
        raise ValueError("re-identification needs a named requester and a stated purpose")
    wanted = None if trace_ids is None else {str(t) for t in trace_ids}
    frame = sealed if wanted is None else sealed[sealed["trace_id"].astype(str).isin(wanted)]
    aead = AESGCM(_derive(key, _SEAL_INFO)) if key is not None else None
    rows: dict[str, list] = {c: [] for c in REVEALED_COLUMNS}
    for tid, token, kind, key_id, blob in zip(frame["trace_id"], frame["token"], frame["kind"],
                                              frame["key_id"], frame["ciphertext"], strict=True):
        value, status = None, "key_unavailable"
        if aead is not None and key_id == key.key_id:
            blob = bytes(blob)
            try:
                value = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                     _aad(tid, token, kind)).decode("utf-8")
                status = "ok"
            except InvalidTag:
                status = "tampered"
        rows["trace_id"].append(tid)
        rows["token"].append(token)
        rows["kind"].append(kind)
        rows["value"].append(value)
        rows["status"].append(status)
    statuses = rows["status"]
    _append_audit(audit_log, {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requester": str(requester),
        "purpose": str(purpose),
        "trace_ids": sorted(wanted) if wanted is not None else sorted(set(rows["trace_id"])),
        "all_traces": wanted is None,
        "values_revealed": statuses.count("ok"),
        "key_unavailable": statuses.count("key_unavailable"),
        "tampered": statuses.count("tampered"),
        "key_id": key.key_id if key is not None else None,
    })
    return pd.DataFrame(rows, columns=REVEALED_COLUMNS, dtype=object)
