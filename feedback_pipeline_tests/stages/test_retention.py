from datetime import UTC, datetime

import dagster as dg

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.retention import apply_retention
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root


def test_retention_deletes_old_raw_partitions_and_nothing_else(pipeline_run, tmp_path):
    root = copy_root(pipeline_run[0], tmp_path / "data")
    storage = Storage(root)
    keep_before = {t: storage.table_days("warehouse", t)
                   for t in ("redacted_traces", "preference_pairs")}
    vault_days = storage.table_days("restricted", "reidentification_vault")
    releases = sorted(p.name for p in (root / "releases").iterdir())
    # the policy keeps 30 days: on 2026-06-01 only 2026-05-01 has expired
    deleted = apply_retention(PipelineResource(data_root=str(root)),
                              today=datetime(2026, 6, 1, tzinfo=UTC))
    assert deleted["landing/traces"] == [DAYS[0]]
    assert deleted["raw_traces"] == [DAYS[0]]
    assert storage.table_days("restricted", "raw_traces") == DAYS[1:]
    assert storage.landing_days("traces") == DAYS[1:]
    assert {t: storage.table_days("warehouse", t) for t in keep_before} == keep_before
    assert storage.table_days("restricted", "reidentification_vault") == vault_days
    assert sorted(p.name for p in (root / "releases").iterdir()) == releases

    defs = build_definitions(str(root))
    result = defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key=DAYS[0], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert storage.table_days("warehouse", "redacted_traces") == keep_before["redacted_traces"]


def test_retention_job_is_defined_and_scheduled():
    defs = build_definitions("data")
    assert defs.resolve_job_def("raw_retention_job") is not None
    assert defs.resolve_schedule_def("raw_retention_schedule").job_name == "raw_retention_job"
