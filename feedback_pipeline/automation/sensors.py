"""Sensors: alert when a run fails (blocking gates fail runs)."""

import dagster as dg


@dg.run_failure_sensor(name="run_failure_alert", minimum_interval_seconds=30)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    """Logs every failed run with its job and reason (no record text reaches the message)."""
    context.log.error(
        f"run {context.dagster_run.run_id} of {context.dagster_run.job_name} failed: "
        f"{context.failure_event.message}"
    )


def all_sensors() -> list:
    return [run_failure_alert]
