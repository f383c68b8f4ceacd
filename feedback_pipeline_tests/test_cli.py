"""The command line: the data root it is given is the one the key-file checks guard."""

from __future__ import annotations

import json
import os

import pytest

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


def test_help_lists_every_command_the_exit_codes_and_option_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in ("run", "verify", "check-config", "status", "labelstudio", "exit status",
                 "3  a gate blocked promotion"):
        assert word in text, word
    assert "contract section" not in text
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "(default: 80)" in capsys.readouterr().out


def test_check_config_names_the_file_key_and_rule_and_exits_2(generated_root, tmp_path,
                                                               capsys):
    import yaml

    root = copy_root(generated_root, tmp_path / "data")
    assert main(["check-config", "--data-root", str(root)]) == 0
    assert capsys.readouterr().out.startswith("OK")
    policy = root / "config" / "policy.yaml"
    declared = yaml.safe_load(policy.read_text())
    policy.write_text(yaml.safe_dump({**declared, "kappa_gate": "high"}))
    (root / "config" / "sources.yaml").write_text("sources: [not, a, mapping]\n")
    assert main(["check-config", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "policy.yaml: kappa_gate must be a number, got str" in err
    assert "sources.yaml: sources must be a mapping" in err


def test_status_reports_each_day_the_candidate_and_the_releases(pipeline_run, capsys):
    import json

    root, _, _, outcome = pipeline_run
    assert main(["status", "--data-root", str(root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    days = {d["day"]: d for d in status["days"]}
    assert set(days) == set(outcome.days)
    for day in days.values():
        assert day["landed_files"]["traces"] >= 1
        assert "redacted_traces" in day["partitions"]["warehouse"]
        assert "raw_traces" in day["partitions"]["restricted"]
        assert day["in_releases"] == [outcome.dataset_version]
        assert day["quarantined_lines"]["traces"] > 0  # the generator plants bad lines
    assert status["candidate"]["promotion_reasons"] == []
    assert [r["version"] for r in status["releases"]] == [outcome.dataset_version]
    assert main(["status", "--data-root", str(root)]) == 0
    assert f"in {outcome.dataset_version}" in capsys.readouterr().out


def test_run_refuses_a_malformed_policy_before_any_work_naming_the_key(generated_root, tmp_path,
                                                                       capsys):
    import yaml

    root = copy_root(generated_root, tmp_path / "data")
    policy = root / "config" / "policy.yaml"
    policy.write_text(yaml.safe_dump({**yaml.safe_load(policy.read_text()),
                                      "kappa_gate": "high"}))
    assert main(["run", "--data-root", str(root)]) == 2
    assert "policy.yaml: kappa_gate must be a number, got str" in capsys.readouterr().out
    assert not (root / "warehouse").exists() and not (root / "restricted").exists()


@pytest.mark.slow  # a whole run through the CLI, twice
def test_run_reports_each_stages_rows_rate_and_time_on_stderr_and_is_quiet_under_json(
        generated_root, tmp_path, capsys):
    from feedback_pipeline.progress import PROGRESS_DIR_ENV
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    root = copy_root(generated_root, tmp_path / "data")
    assert main(["run", "--data-root", str(root), "--end", DAYS[0]]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if " rows in " in line]
    stages = [line.split(":")[0] for line in lines]
    # the stages in the order they ran, every one with its figures
    assert stages[:3] == [f"raw_traces {DAYS[0]}", f"trace_quarantine {DAYS[0]}",
                          f"redacted_traces {DAYS[0]}"]
    assert f"reviewed_labels {DAYS[0]}" in stages
    assert all(line.endswith(" rows/s)") for line in lines)
    assert "promoted" in captured.out and " rows in " not in captured.out
    assert PROGRESS_DIR_ENV not in os.environ

    again = copy_root(generated_root, tmp_path / "again")
    assert main(["run", "--data-root", str(again), "--end", DAYS[0], "--json"]) == 0
    captured = capsys.readouterr()
    assert " rows in " not in captured.err
    assert json.loads(captured.out)["promoted"] is True
