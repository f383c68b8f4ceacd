"""Schedules: yesterday's partition every day, a weekly release, and a daily checks-only audit.

Every schedule starts stopped: an operator turns them on in the UI (Automation) or with
`dagster schedule start`, once the daemon runs against the production instance.
"""

from datetime import timedelta

import dagster as dg

from feedback_pipeline.jobs import daily_pipeline_job, gate_audit_job, judge_job, release_job

WEEKLY_RELEASE_CRON = "0 4 * * 1"

daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    daily_pipeline_job, hour_of_day=1, minute_of_hour=0, name="daily_pipeline_schedule",
    description="01:00 UTC: every per-day stage for the day that just ended.",
)
daily_judge_schedule = dg.build_schedule_from_partitioned_job(
    judge_job, hour_of_day=2, minute_of_hour=0, name="daily_judge_schedule",
    description="02:00 UTC: judge calibration for the day that just ended.",
)
gate_audit_schedule = dg.ScheduleDefinition(
    name="gate_audit_schedule",
    job=gate_audit_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="06:00 UTC: re-run the audit checks over stored tables and the latest release.",
)


def release_window_end(scheduled: object) -> str:
    """The last complete UTC day before the tick: a release never takes a day still landing."""
    return (scheduled - timedelta(days=1)).date().isoformat()


def build_release_schedule(cron: str = WEEKLY_RELEASE_CRON) -> dg.ScheduleDefinition:
    @dg.schedule(name="release_schedule", job=release_job, cron_schedule=cron,
                 execution_timezone="UTC",
                 description=f"{cron} (UTC): build, gate and, when every gate passes, promote "
                             "a release of every landed day up to the day before.")
    def release_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        end = release_window_end(context.scheduled_execution_time)
        return dg.RunRequest(
            run_key=f"release:{end}",
            run_config={"ops": {"dataset_manifest": {"config": {"start": None, "end": end}}}},
            tags={"feedback/trigger": "release_schedule", "feedback/window_end": end},
        )

    return release_schedule


def all_schedules(release_cron: str = WEEKLY_RELEASE_CRON) -> list:
    return [daily_pipeline_schedule, daily_judge_schedule, build_release_schedule(release_cron),
            gate_audit_schedule]
