"""Raw-zone retention: delete raw partitions past `raw_retention_days`, keep everything else.

The raw zone is the landed trace files and the restricted tables that hold raw text (raw traces
and the quarantines, whose rows quote raw lines). Redacted tables, releases and the vault stay.
"""


from datetime import UTC, datetime

import dagster as dg

from feedback_pipeline.core.retention import expired_days
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.storage import RESTRICTED

RAW_TABLES = ("raw_traces", "trace_quarantine", "review_quarantine", "judge_quarantine")


def apply_retention(pipeline: PipelineResource, today: datetime | None = None) -> dict[str, list]:
    """Delete every raw partition older than the policy allows; what was deleted, by place."""
    storage = pipeline.storage
    now = (today or datetime.now(UTC)).date()
    days = set(storage.landing_days("traces"))
    for table in RAW_TABLES:
        days.update(storage.table_days(RESTRICTED, table))
    deleted: dict[str, list] = {"landing/traces": []}
    for day in expired_days(days, now, pipeline.policy.raw_retention_days):
        if storage.delete_landing("traces", day):
            deleted["landing/traces"].append(day)
        for table in RAW_TABLES:
            if storage.delete_partition(RESTRICTED, table, day):
                deleted.setdefault(table, []).append(day)
    return deleted


@dg.op(description="Deletes raw partitions past raw_retention_days; keeps redacted tables, "
                   "releases and the vault.")
def delete_expired_raw_partitions(context: dg.OpExecutionContext,
                                  pipeline: PipelineResource) -> None:
    deleted = apply_retention(pipeline)
    total = sum(len(v) for v in deleted.values())
    context.log.info(f"retention ({pipeline.policy.raw_retention_days} days): deleted {total} "
                     f"raw partition(s): {deleted}")


@dg.job(description="Raw-zone retention, run daily by raw_retention_schedule.")
def raw_retention_job() -> None:
    delete_expired_raw_partitions()


raw_retention_schedule = dg.ScheduleDefinition(
    name="raw_retention_schedule", job=raw_retention_job, cron_schedule="30 3 * * *",
    execution_timezone="UTC")
