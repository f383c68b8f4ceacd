import dagster as dg
import pytest
import yaml

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.stages.routing import reserve
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import copy_root


def test_a_frozen_set_version_is_append_only():
    first = reserve("eval-v5", ["a", "b"], "2026-05-01", None)
    grown = reserve("eval-v5", ["a", "b", "c"], "2026-05-09", first)
    assert dict(zip(grown["trace_id"], grown["reserved_at"], strict=True)) == {
        "a": "2026-05-01", "b": "2026-05-01", "c": "2026-05-09"}
    with pytest.raises(dg.Failure, match="append-only.*b"):
        reserve("eval-v5", ["a", "c"], "2026-05-10", grown)
    assert list(reserve("eval-v6", ["a"], "2026-05-10", grown)["trace_id"]) == ["a"]


def test_frozen_evaluation_set_records_fingerprints_and_refuses_removal(pipeline_run, tmp_path):
    root = copy_root(pipeline_run[0], tmp_path / "data")
    defs = build_definitions(str(root))
    job = defs.resolve_job_def("release")
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(instance=instance, asset_selection=[
        dg.AssetKey("frozen_evaluation_set")]).success
    table = Storage(root).read_table("warehouse", "frozen_evaluation_set", None).to_pandas()
    assert table["prompt_fingerprint"].notna().sum() >= len(table) - 2
    path = next((root / "config" / "frozen_eval").glob("*.yaml"))
    spec = yaml.safe_load(path.read_text())
    spec["ids"] = spec["ids"][1:]
    path.write_text(yaml.safe_dump(spec))
    result = job.execute_in_process(instance=instance, raise_on_error=False,
                                    asset_selection=[dg.AssetKey("frozen_evaluation_set")])
    assert not result.success
