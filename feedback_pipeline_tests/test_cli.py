"""The command line: the data root it is given is the one the key-file checks guard."""

from __future__ import annotations

from feedback_pipeline.cli import main
from feedback_pipeline_tests.conftest import copy_root


def test_a_vault_key_file_inside_the_data_root_named_by_data_root_is_refused(
        generated_root, tmp_path, monkeypatch, capsys):
    root = copy_root(generated_root, tmp_path / "data")
    monkeypatch.delenv("FEEDBACK_VAULT_KEY", raising=False)
    monkeypatch.delenv("FEEDBACK_DATA_ROOT", raising=False)
    monkeypatch.setenv("FEEDBACK_VAULT_KEY_FILE", str(root / "config" / "vault.key"))
    assert main(["run", "--data-root", str(root), "--end", "2026-05-01"]) == 1
    assert "outside the data root" in capsys.readouterr().out
    assert not (root / "config" / "vault.key").exists()
    assert not (root / "warehouse" / "redacted_traces").exists()
