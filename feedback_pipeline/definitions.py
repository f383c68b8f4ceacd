"""The code location: gathers assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import os

import dagster as dg

from feedback_pipeline.automation import schedules, sensors
from feedback_pipeline.automation.checks import AUDIT_CHECKS
from feedback_pipeline.io_manager import ParquetIOManager
from feedback_pipeline.jobs import ALL_JOBS
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages import (
    agreement,
    ingest,
    judge,
    labelstudio,
    redaction,
    release,
    retention,
    review,
    routing,
)
from feedback_pipeline.stages import selection as selection_stage
from feedback_pipeline.storage import RESTRICTED, WAREHOUSE, default_data_root

STAGE_MODULES = [ingest, redaction, routing, review, agreement, selection_stage, judge, release]
RELEASE_CRON_ENV = "FEEDBACK_RELEASE_CRON"


def build_definitions(data_root: str | None = None) -> dg.Definitions:
    """Definitions bound to one data root (default: FEEDBACK_DATA_ROOT or ./data)."""
    root = data_root or default_data_root()
    return dg.Definitions(
        assets=dg.load_assets_from_modules(STAGE_MODULES),
        asset_checks=AUDIT_CHECKS,
        jobs=[*ALL_JOBS, retention.raw_retention_job, labelstudio.labelstudio_sync],
        schedules=[*schedules.all_schedules(
            os.environ.get(RELEASE_CRON_ENV) or schedules.WEEKLY_RELEASE_CRON),
            retention.raw_retention_schedule, labelstudio.labelstudio_sync_schedule],
        sensors=sensors.all_sensors(),
        resources={
            "pipeline": PipelineResource(data_root=root),
            "io_manager": ParquetIOManager(data_root=root, zone=WAREHOUSE),
            "restricted_io_manager": ParquetIOManager(data_root=root, zone=RESTRICTED),
        },
    )


def job_for_root(job_name: str, data_root: str) -> dg.JobDefinition:
    """One job bound to `data_root`: what a step process rebuilds when the CLI runs a job with
    one process per step (see `feedback_pipeline.cli.run_pipeline`)."""
    return build_definitions(data_root).resolve_job_def(job_name)


defs = build_definitions()
