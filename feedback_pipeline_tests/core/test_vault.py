import json
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedback_pipeline.core.vault import (
    SEALED_COLUMNS,
    SEALED_SCHEMA,
    VaultKey,
    VaultKeyError,
    corpus_token_key,
    generate_key_text,
    reidentify,
    resolve_vault_key,
    restrict_permissions,
    seal_vault,
)

SECRET_VALUE = "jane.doe@example.com"


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key():
    return resolve_vault_key({"FEEDBACK_VAULT_KEY": generate_key_text()})


@pytest.fixture
def vault():
    return pd.DataFrame({
        "trace_id": ["t1", "t1", "t2"],
        "token": ["<EMAIL_1>", "<ENGINEER_1>", "<EMAIL_1>"],
        "kind": ["EMAIL", "ENGINEER", "EMAIL"],
        "value": [SECRET_VALUE, "ENG-918204", "ops@example.org"],
    })


def test_key_from_env_has_a_fingerprint_not_the_secret(key):
    text = generate_key_text()
    a = resolve_vault_key({"FEEDBACK_VAULT_KEY": text})
    b = resolve_vault_key({"FEEDBACK_VAULT_KEY": text})
    assert a == b and a.key_id != key.key_id
    assert len(a.key_id) == 16 and a.key_id not in text
    assert text not in repr(a) and a.secret.hex() not in repr(a)


def test_default_key_file_is_created_owner_only_and_reused(tmp_path):
    env = {"HOME": str(tmp_path)}
    first = resolve_vault_key(env)
    path = tmp_path / ".config" / "feedback-pipeline" / "vault.key"
    assert path.exists() and mode(path) == 0o600 and mode(path.parent) == 0o700
    assert resolve_vault_key(env) == first


def test_named_key_file_must_live_outside_the_data_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "keys" / "vault.key"
    env = {"FEEDBACK_VAULT_KEY_FILE": str(outside), "FEEDBACK_DATA_ROOT": str(root)}
    assert resolve_vault_key(env).key_id
    inside = {"FEEDBACK_VAULT_KEY_FILE": str(root / "vault.key"),
              "FEEDBACK_DATA_ROOT": str(root)}
    with pytest.raises(VaultKeyError):
        resolve_vault_key(inside)
    assert not (root / "vault.key").exists()


def test_bad_keys_are_rejected():
    with pytest.raises(VaultKeyError):
        resolve_vault_key({"FEEDBACK_VAULT_KEY": "c2hvcnQ="})
    with pytest.raises(VaultKeyError):
        resolve_vault_key({"FEEDBACK_VAULT_KEY": "not base64 at all!!"})


def test_sealed_vault_holds_no_plaintext(tmp_path, key, vault):
    sealed = seal_vault(vault, key)
    assert list(sealed.columns) == SEALED_COLUMNS
    assert set(sealed["key_id"]) == {key.key_id}
    path = tmp_path / "vault.parquet"
    pq.write_table(pa.Table.from_pandas(sealed, preserve_index=False), path)
    data = path.read_bytes()
    for value in vault["value"]:
        assert value.encode() not in data
        assert all(value.encode() not in blob for blob in sealed["ciphertext"])
    assert pq.read_schema(path).field("ciphertext").type == pa.binary()
    table = pa.Table.from_pandas(seal_vault(vault.iloc[:0], key), schema=SEALED_SCHEMA,
                                 preserve_index=False)
    assert table.num_rows == 0 and table.schema.equals(SEALED_SCHEMA)


def test_reidentify_round_trips_and_audits_first(tmp_path, key, vault):
    sealed = seal_vault(vault, key)
    audit = tmp_path / "restricted" / "audit" / "vault_access.jsonl"
    out = reidentify(sealed, requester="privacy-officer", purpose="incident INC-7",
                     audit_log=audit, key=key, trace_ids=["t1"])
    assert out["value"].tolist() == [SECRET_VALUE, "ENG-918204"]
    assert out["status"].tolist() == ["ok", "ok"]
    record = json.loads(audit.read_text().splitlines()[-1])
    assert record["requester"] == "privacy-officer" and record["purpose"] == "incident INC-7"
    assert record["trace_ids"] == ["t1"] and record["values_revealed"] == 2
    assert record["at"] and record["key_id"] == key.key_id
    assert SECRET_VALUE not in audit.read_text()
    assert mode(audit) == 0o600 and mode(audit.parent) == 0o700
    reidentify(sealed, requester="a", purpose="b", audit_log=audit, key=key)
    assert len(audit.read_text().splitlines()) == 2


def test_lost_or_rotated_key_degrades_without_breaking(tmp_path, key, vault):
    sealed = seal_vault(vault, key)
    other = resolve_vault_key({"FEEDBACK_VAULT_KEY": generate_key_text()})
    audit = tmp_path / "audit.jsonl"
    for k in (other, None):
        out = reidentify(sealed, requester="a", purpose="b", audit_log=audit, key=k)
        assert out["status"].tolist() == ["key_unavailable"] * 3
        assert out["value"].isna().all()
    assert json.loads(audit.read_text().splitlines()[-1])["key_unavailable"] == 3


def test_moved_ciphertext_does_not_open(tmp_path, key, vault):
    sealed = seal_vault(vault, key)
    sealed.loc[0, "ciphertext"], sealed.loc[2, "ciphertext"] = (sealed.loc[2, "ciphertext"],
                                                                sealed.loc[0, "ciphertext"])
    out = reidentify(sealed, requester="a", purpose="b", audit_log=tmp_path / "a.jsonl", key=key)
    assert out["status"].tolist() == ["tampered", "ok", "tampered"]
    assert out["value"].tolist()[1] == "ENG-918204"


def test_reidentify_requires_who_and_why_and_an_audit_trail(tmp_path, key, vault):
    sealed = seal_vault(vault, key)
    audit = tmp_path / "a.jsonl"
    with pytest.raises(ValueError):
        reidentify(sealed, requester=" ", purpose="b", audit_log=audit, key=key)
    assert not audit.exists()
    blocked = tmp_path / "is_a_directory"
    blocked.mkdir()
    with pytest.raises(OSError):
        reidentify(sealed, requester="a", purpose="b", audit_log=blocked, key=key)


def test_corpus_token_key_is_derived(key):
    derived = corpus_token_key(key)
    assert derived == corpus_token_key(key) and len(derived) == 32
    assert derived != key.secret
    assert derived != corpus_token_key(VaultKey.from_secret(b"x" * 32))


def test_restrict_permissions(tmp_path):
    folder = tmp_path / "restricted"
    folder.mkdir(mode=0o755)
    file = folder / "part-0.parquet"
    file.write_bytes(b"x")
    file.chmod(0o644)
    restrict_permissions(folder)
    restrict_permissions(file)
    assert mode(folder) == 0o700 and mode(file) == 0o600
