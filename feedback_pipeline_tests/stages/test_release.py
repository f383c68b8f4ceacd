"""The released files load as they are in the Hugging Face / TRL stack."""

from __future__ import annotations

import json
import os

import pytest

from feedback_pipeline.cli import main

datasets = pytest.importorskip("datasets")


def _redacted_traces(root) -> dict:
    import duckdb

    rows = duckdb.connect().sql(f"SELECT trace_id, prompt, context FROM read_parquet("
                      f"'{root}/warehouse/redacted_traces/**/*.parquet', hive_partitioning = true)"
                      ).fetchall()
    return {tid: (prompt, context) for tid, prompt, context in rows}


def test_released_files_load_with_datasets_in_trl_conversational_columns(pipeline_run):
    root, _, _, outcome = pipeline_run
    release = root / "releases" / outcome.dataset_version
    traces = _redacted_traces(root)
    prefs = datasets.load_dataset("parquet", data_files={
        "train": str(release / "preference_pairs.parquet")})["train"]
    assert {"prompt", "chosen", "rejected"} <= set(prefs.column_names)
    with_context = 0
    for row in prefs:
        prompt, context = traces[row["trace_id"]]
        assert row["prompt"][-1] == {"role": "user", "content": prompt}
        assert [m["role"] for m in row["chosen"]] == ["assistant"]
        assert [m["role"] for m in row["rejected"]] == ["assistant"]
        if context:  # the evidence the reviewers judged is in the prompt, redacted
            with_context += 1
            assert row["prompt"][0]["role"] == "system"
            assert context in row["prompt"][0]["content"]
    assert with_context > 0
    sft = datasets.load_dataset("parquet", data_files={
        "train": str(release / "sft_demonstrations.parquet")})["train"]
    assert sft[0]["messages"][0].keys() == {"role", "content"}
    for row in sft:
        roles = [m["role"] for m in row["messages"]]
        assert roles[-2:] == ["user", "assistant"] and set(roles[:-2]) <= {"system"}
    unpaired = datasets.load_dataset("parquet", data_files={
        "train": str(release / "pointwise_labels.parquet")})["train"]
    assert {"prompt", "completion", "label"} <= set(unpaired.column_names)
    assert isinstance(unpaired[0]["label"], bool)
    assert unpaired[0]["completion"][0]["role"] == "assistant"


def test_text_configs_hold_the_same_rows_as_plain_strings(pipeline_run):
    root, _, _, outcome = pipeline_run
    release = root / "releases" / outcome.dataset_version
    for config, columns in {"preference": ("prompt", "chosen", "rejected"),
                            "sft": ("prompt", "completion"),
                            "unpaired": ("prompt", "completion")}.items():
        chat = datasets.load_dataset(str(release), config)["train"]
        text = datasets.load_dataset(str(release), f"{config}_text")["train"]
        assert text["trace_id"] == chat["trace_id"]
        for row in text:
            assert all(isinstance(row[c], str) for c in columns)
            assert row["prompt"].endswith("Assistant:\n")
            assert "User:\n" in row["prompt"]


def test_the_dataset_card_configs_load_from_the_release_folder(pipeline_run):
    root, _, _, outcome = pipeline_run
    release = root / "releases" / outcome.dataset_version
    for config in ("preference", "sft", "unpaired", "preference_text", "sft_text",
                   "unpaired_text"):
        loaded = datasets.load_dataset(str(release), config)
        assert list(loaded) == ["train"]


def test_verify_detects_a_tampered_file(pipeline_run, tmp_path, capsys):
    import shutil

    root, _, _, outcome = pipeline_run
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    assert main(["verify", outcome.dataset_version, "--data-root", str(copy)]) == 0
    target = copy / "releases" / outcome.dataset_version / "preference_pairs.parquet"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes() + b"tampered")
    assert main(["verify", outcome.dataset_version, "--data-root", str(copy)]) == 3
    assert "preference_pairs.parquet: sha256 differs" in capsys.readouterr().out


def test_run_json_output_and_exit_status(pipeline_run, capsys):
    root = pipeline_run[0]
    code = main(["run", "--data-root", str(root), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(payload) >= {"promoted", "dataset_version", "gates", "reasons"}
    assert code == 0 and payload["reasons"] == []
    assert all(set(g) == {"passed", "value"} for g in payload["gates"].values())
    assert main(["run", "--data-root", str(root / "missing")]) == 2
    assert main(["run", "--data-root", str(root), "--start", "2026-05-03",
                 "--end", "2026-05-01"]) == 2


@pytest.mark.parametrize("scan_in_worker", [False, True])
def test_the_residue_gate_fails_on_a_planted_leak_and_names_the_row(pipeline_run, tmp_path,
                                                                   scan_in_worker):
    import dagster as dg
    import pyarrow.parquet as pq

    from feedback_pipeline.definitions import build_definitions
    from feedback_pipeline.stages.release import SCAN_IN_WORKER_ROWS
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    # as for a large candidate: the scans run in a worker process
    in_worker_from = 0 if scan_in_worker else SCAN_IN_WORKER_ROWS

    root = copy_root(pipeline_run[0], tmp_path / "data")
    path = root / "warehouse" / "review_tasks" / f"date={DAYS[0]}" / "part-0.parquet"
    tasks = pq.read_table(path).to_pandas()
    planted = tasks["trace_id"].iloc[0]
    tasks.loc[0, "prompt"] = tasks.loc[0, "prompt"] + " ping jane.doe@example.com (ENG-918204)"
    tasks.to_parquet(path, index=False)
    defs = build_definitions(str(root))
    result = defs.resolve_job_def("release").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"dataset_manifest": {"config": {
            "start": None, "end": None, "scan_in_worker_rows": in_worker_from}}}})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    residue = checks["redaction_residue"]
    assert not residue.passed
    assert planted in residue.metadata["offending_ids"].value
    assert "jane.doe" not in str(residue.metadata)


@pytest.mark.slow  # builds three releases end to end
def test_a_series_continued_from_a_declared_parent_is_numbered_after_it(generated_root,
                                                                        tmp_path):
    """The lesson's team is at v11 elsewhere: the first release here is v12, names v11 as its
    parent, inherits nothing (v11 is not in this data root) and fingerprints its content."""
    import shutil

    import dagster as dg
    import yaml

    from feedback_pipeline.cli import run_pipeline

    root = tmp_path / "data"
    shutil.copytree(generated_root, root)
    policy_path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text()) or {}
    policy["parent_dataset"] = f"{policy.get('dataset_name', 'code-review-feedback')}-v11"
    policy_path.write_text(yaml.safe_dump(policy))
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.dataset_version.endswith("-v12")
    release = root / "releases" / outcome.dataset_version
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["parent_dataset"] == policy["parent_dataset"]
    assert manifest["row_counts"]["new"]["preference"] == manifest["row_counts"]["preferences"]
    card = (release / "README.md").read_text()
    assert manifest["content_fingerprint"] in card


@pytest.mark.slow  # a whole release plus its JSON Lines twin
def test_release_jsonl_writes_every_config_as_json_lines_beside_its_parquet(generated_root,
                                                                            tmp_path):
    import shutil

    import dagster as dg
    import pyarrow.parquet as pq
    import yaml

    from feedback_pipeline.cli import run_pipeline

    root = tmp_path / "data"
    shutil.copytree(generated_root, root)
    policy_path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    policy_path.write_text(yaml.safe_dump({**policy, "release_jsonl": True}))
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.promoted, outcome.reasons
    release = root / "releases" / outcome.dataset_version
    manifest = json.loads((release / "manifest.json").read_text())
    assert len(manifest["jsonl_files"]) == 6
    for name in manifest["jsonl_files"]:
        parquet = pq.read_table(release / name.replace(".jsonl", ".parquet")).to_pylist()
        lines = [json.loads(line) for line in (release / name).read_text().splitlines()]
        assert [r["trace_id"] for r in lines] == [r["trace_id"] for r in parquet], name
        assert lines[0]["prompt" if "prompt" in lines[0] else "messages"] == \
            parquet[0]["prompt" if "prompt" in parquet[0] else "messages"]
        assert name in manifest["files"] and name in (release / "README.md").read_text()
    assert main(["verify", outcome.dataset_version, "--data-root", str(root)]) == 0
