"""Schedules through Dagster's schedule context, and the checks-only audit job on real data."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline_tests.conftest import copy_root

TICK = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions("data")


def evaluate(defs: dg.Definitions, name: str, when: datetime) -> list[dg.RunRequest]:
    schedule = defs.resolve_schedule_def(name)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when,
            repository_def=defs.get_repository_def()) as context:
        return list(schedule.evaluate_tick(context).run_requests or [])


def selected_checks(job: dg.JobDefinition) -> set[str]:
    return {k.name for data in job.asset_layer.data for k in data.assets_def.check_keys}


def test_the_location_has_every_schedule_sensor_and_job(defs: dg.Definitions):
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {
        "daily_pipeline_schedule", "daily_judge_schedule", "release_schedule",
        "gate_audit_schedule", "raw_retention_schedule", "labelstudio_sync_schedule"}
    assert {s.name for s in repo.sensor_defs} == {
        "landing_sensor", "check_failure_alert", "run_failure_alert",
        "experiment_after_daily_run"}
    assert {"daily_pipeline", "judge_calibration_job", "selection_experiment", "release",
            "gate_audit", "labelstudio_sync"} <= {
        j.name for j in repo.get_all_jobs()}


def test_daily_schedule_runs_the_day_that_just_ended(defs: dg.Definitions):
    requests = evaluate(defs, "daily_pipeline_schedule", TICK)
    assert [r.partition_key for r in requests] == ["2026-05-03"]
    job = defs.resolve_job_def("daily_pipeline")
    materialized = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert materialized == {
        "raw_traces", "trace_quarantine", "redacted_traces", "reidentification_vault",
        "routed_queues", "review_tasks", "reviewed_labels", "preference_pairs", "demonstrations",
        "pointwise_assessments", "adjudication_queue", "incident_records", "review_quarantine",
        "agreement_report", "selected_batch", "review_backlog"}
    judge = evaluate(defs, "daily_judge_schedule", datetime(2026, 5, 4, 2, 0, tzinfo=UTC))
    assert [r.partition_key for r in judge] == ["2026-05-03"]


def test_release_schedule_is_weekly_and_closes_the_window_the_day_before(defs: dg.Definitions):
    schedule = defs.resolve_schedule_def("release_schedule")
    assert schedule.cron_schedule == "0 4 * * 1"
    monday = datetime(2026, 5, 11, 4, 0, tzinfo=UTC)
    [request] = evaluate(defs, "release_schedule", monday)
    window = request.run_config["ops"]["dataset_manifest"]["config"]
    assert window == {"start": None, "end": "2026-05-10"}
    assert request.run_key == "release:2026-05-10"


def test_release_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FEEDBACK_RELEASE_CRON", "0 3 * * *")
    assert build_definitions("data").resolve_schedule_def("release_schedule").cron_schedule \
        == "0 3 * * *"


def test_gate_audit_job_selects_checks_only(defs: dg.Definitions):
    job = defs.resolve_job_def("gate_audit")
    assert not job.asset_layer.selected_asset_keys
    assert selected_checks(job) == {"warehouse_residue_rescan", "release_integrity"}
    assert "agreement_gate" in selected_checks(defs.resolve_job_def("release"))
    for name in ("daily_pipeline", "release"):
        checks = selected_checks(defs.resolve_job_def(name))
        assert not checks & {"warehouse_residue_rescan", "release_integrity"}
    [request] = evaluate(defs, "gate_audit_schedule", datetime(2026, 5, 4, 6, 0, tzinfo=UTC))
    assert request.job_name in (None, "gate_audit")


def audit(root: Path) -> dict[str, dg.AssetCheckEvaluation]:
    result = build_definitions(str(root)).resolve_job_def("gate_audit").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.get_asset_materialization_events()
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_gate_audit_passes_on_clean_data_and_catches_tampering_and_residue(
        pipeline_run, tmp_path: Path):
    root = copy_root(pipeline_run[0], tmp_path / "data")
    clean = audit(root)
    assert clean["warehouse_residue_rescan"].passed
    assert clean["release_integrity"].passed

    releases = sorted(p for p in (root / "releases").glob("*") if p.is_dir())
    if releases:
        target = releases[-1] / "preference_pairs.parquet"
        target.chmod(target.stat().st_mode | stat.S_IWUSR)
        target.write_bytes(target.read_bytes() + b"tampered")
        assert not audit(root)["release_integrity"].passed

    tables = sorted((root / "warehouse" / "redacted_traces").glob("date=*/part-0.parquet"))
    if not tables:
        pytest.skip("no redacted_traces partition was written by the shared pipeline run")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(tables[0])
    prompts = table.column("prompt").to_pylist()
    prompts[0] = "please mail jane.roe@example.org the diff"
    planted_id = table.column("trace_id")[0].as_py()
    pq.write_table(table.set_column(table.schema.get_field_index("prompt"), "prompt",
                                    pa.array(prompts)), tables[0])
    failed = audit(root)["warehouse_residue_rescan"]
    assert not failed.passed
    assert planted_id in failed.metadata["offending_ids"].value
    assert "jane.roe" not in json.dumps({k: str(v.value) for k, v in failed.metadata.items()})
