"""The definitions load through Dagster's `dg` toolchain as well as through workspace.yaml."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")


@pytest.mark.skipif(not DG.exists(), reason="dagster-dg-cli is not installed (test extra)")
@pytest.mark.slow  # the dg CLI starts a fresh interpreter per command
def test_dg_check_and_list_defs_load_the_project():
    checked = subprocess.run([str(DG), "check", "defs"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run([str(DG), "list", "defs", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout[listed.stdout.index("{"):])
    keys = {asset["asset_key"] for asset in defs["assets"]}
    assert {"redacted_traces", "dataset_manifest", "dataset_release"} <= keys


def test_assets_carry_the_policys_owners_and_versions_and_a_bad_policy_still_loads(
        generated_root, tmp_path):
    import dagster as dg
    import yaml

    from feedback_pipeline.definitions import PACKAGE_VERSION, build_definitions
    from feedback_pipeline.settings import ConfigError, load_policy
    from feedback_pipeline.storage import Storage
    from feedback_pipeline_tests.conftest import copy_root

    root = copy_root(generated_root, tmp_path / "data")

    def spec(defs: dg.Definitions, key: str) -> dg.AssetSpec:
        return defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)]

    policy_path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    before = build_definitions(str(root))
    assert spec(before, "raw_traces").owners == ["team:ml-data"]
    assert spec(before, "raw_traces").code_version == PACKAGE_VERSION
    rubric = policy.get("rubric_version", "code-review-rubric-v4")
    assert spec(before, "reviewed_labels").code_version == f"{PACKAGE_VERSION}+{rubric}"

    policy.update(asset_owners=["team:feedback-data", "oncall@example.com"],
                  selection_policy_version="hybrid-selector-v9")
    policy_path.write_text(yaml.safe_dump(policy))
    after = build_definitions(str(root))
    assert spec(after, "selected_batch").owners == ["team:feedback-data", "oncall@example.com"]
    # a new selector version marks the selection and release assets as made by other code
    changed = {key for key in ("raw_traces", "reviewed_labels", "selected_batch",
                               "dataset_release")
               if spec(after, key).code_version != spec(before, key).code_version}
    assert changed == {"selected_batch", "dataset_release"}

    policy.update(asset_owners=["not an owner"])
    policy_path.write_text(yaml.safe_dump(policy))
    with pytest.raises(ConfigError, match="asset_owners"):
        load_policy(Storage(root))
    policy.update(asset_owners=["team:ml-data"], kappa_gate="high")
    policy_path.write_text(yaml.safe_dump(policy))
    broken = build_definitions(str(root))  # the location loads; the run names the key
    assert spec(broken, "reviewed_labels").code_version == PACKAGE_VERSION


def test_lineage_declares_what_each_round_reads_and_jobs_select_whole_groups():
    """A round reads the day before it (backlog, earlier rounds) and the experiment's verdict;
    both are edges in the graph, the verdict through a reported asset so there is no cycle."""
    import dagster as dg

    from feedback_pipeline.definitions import build_definitions

    defs = build_definitions("data")
    graph = defs.resolve_asset_graph()
    batch = dg.AssetKey("selected_batch")
    parents = {k.to_user_string() for k in graph.get(batch).parent_keys}
    assert {"selector_recommendation", "review_backlog"} <= parents
    assert "selected_batch" not in parents, "two outputs depending on each other is a cycle"
    assert not graph.get(dg.AssetKey("selector_recommendation")).is_materializable
    mapping = graph.get_partition_mapping(batch, dg.AssetKey("review_backlog"))
    assert isinstance(mapping, dg.TimeWindowPartitionMapping)
    assert (mapping.start_offset, mapping.end_offset) == (-1, -1)
    prelabel_inputs = {k.to_user_string() for k in
                       graph.get(dg.AssetKey("judge_accepted_labels")).parent_keys}
    assert prelabel_inputs == {"judge_labels", "judge_calibration"}, "read once, by the judge"
    for job_name in ("daily_pipeline", "judge_calibration_job", "selection_experiment",
                     "release"):
        job = defs.resolve_job_def(job_name)
        groups = {graph.get(k).group_name for k in job.asset_layer.selected_asset_keys}
        in_groups = {k for k in graph.materializable_asset_keys
                     if graph.get(k).group_name in groups}
        assert set(job.asset_layer.selected_asset_keys) == in_groups, job_name
