"""Schedules: yesterday's partition every day, and a weekly release attempt."""

import dagster as dg

from feedback_pipeline.jobs import daily_pipeline_job, judge_job, release_job

daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    daily_pipeline_job, hour_of_day=1, minute_of_hour=0, name="daily_pipeline_schedule"
)
daily_judge_schedule = dg.build_schedule_from_partitioned_job(
    judge_job, hour_of_day=2, minute_of_hour=0, name="daily_judge_schedule"
)
weekly_release_schedule = dg.ScheduleDefinition(
    name="weekly_release_schedule",
    job=release_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    description="Monday 04:00 UTC: build, gate and (if every gate passes) promote a release.",
)


def all_schedules() -> list:
    return [daily_pipeline_schedule, daily_judge_schedule, weekly_release_schedule]
