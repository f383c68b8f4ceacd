"""Sensors: run a day when its landing files change; page when a check or a run fails.

- `landing_sensor` fingerprints every trace and review file (name, mtime, size). A day whose
  fingerprints differ from the cursor gets one `daily_pipeline` run for its partition; the cursor
  then holds the new fingerprints, so an unchanged file never starts a second run.
- `check_failure_alert` reads asset-check executions from the event log (blocking gates and
  warnings alike) newer than its cursor and sends each failure to the configured sinks.
- `run_failure_alert` sends every failed run of this code location to the same sinks.
"""

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa

from feedback_pipeline.automation.alerts import (
    ALERT_ON,
    STATE_CHANGE,
    Alert,
    check_alert,
    dispatch,
    retry_outbox,
    run_failure_alert,
)
from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.core.review_intake import trace_ids_in_review_file
from feedback_pipeline.jobs import daily_pipeline_job, selection_experiment_job
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import AlertSinksResource, PipelineResource
from feedback_pipeline.storage import WAREHOUSE, Storage

WATCHED_KINDS = ("traces", "reviews")
WATCHED_SUFFIXES = (".jsonl", ".jsonl.gz", ".json")
CHECK_HISTORY_LIMIT = 200
TRIGGER_TAG = "feedback/trigger"

Fingerprints = dict[str, list[int]]


# ---- landing ------------------------------------------------------------------------------
def landing_fingerprints(storage: Storage) -> Fingerprints:
    """`<kind>/<day>/<file>` -> [mtime_ns, size] for every watched landing file."""
    found: Fingerprints = {}
    for kind in WATCHED_KINDS:
        for day in storage.landing_days(kind):
            for path in storage.landing_files(kind, day, WATCHED_SUFFIXES):
                stat = path.stat()
                found[f"{kind}/{day}/{path.name}"] = [stat.st_mtime_ns, stat.st_size]
    return found


def reviewed_trace_days(storage: Storage, review_keys: list[str]) -> set[str]:
    """The stored trace days whose traces these landed review files (`reviews/<day>/<file>`)
    name: the partitions that must run to take them in."""
    ids: set[str] = set()
    for key in review_keys:
        path = storage.landing_dir("reviews") / key.split("/", 1)[1]
        json_lines = key.endswith((".jsonl", ".jsonl.gz"))
        try:  # the day's own run reads the file and quarantines what it cannot
            text = ("\n".join(t for _n, t in read_lines(path) if t.__class__ is str)
                    if json_lines else path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        ids |= trace_ids_in_review_file(text, json_lines=json_lines)
    scan = storage.scan_sql(WAREHOUSE, "redacted_traces")
    if not ids or scan is None:
        return set()
    with storage.connect() as con:
        con.register("named", pa.table({"trace_id": pa.array(sorted(ids), pa.string())}))
        found = con.sql(f"SELECT DISTINCT CAST(date AS VARCHAR) AS day FROM {scan} "
                        "WHERE trace_id IN (SELECT trace_id FROM named)").fetchall()
    return {row[0] for row in found}


def day_of(file_key: str) -> str:
    return file_key.split("/", 2)[1]


def changed_days(previous: Fingerprints, current: Fingerprints) -> dict[str, list[str]]:
    """Day -> the file keys that are new, changed or gone since `previous`."""
    changed: dict[str, list[str]] = {}
    for key in sorted(set(previous) | set(current)):
        if previous.get(key) != current.get(key):
            changed.setdefault(day_of(key), []).append(key)
    return changed


def day_digest(fingerprints: Fingerprints, day: str, also: Iterable[str] = ()) -> str:
    """A short stable digest of one day's files (and of `also`: other days' review files that
    review its traces): the run key, so a day runs once per state."""
    keys = set(also)
    items = sorted((k, v) for k, v in fingerprints.items() if day_of(k) == day or k in keys)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def parse_cursor(cursor: str | None) -> Fingerprints:
    if not cursor:
        return {}
    try:
        loaded = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return {str(k): list(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


@dataclass(frozen=True)
class LandingDecision:
    """What one landing-sensor tick asks for, and the cursor to store after it."""

    requests: list[dg.RunRequest]
    cursor: Fingerprints
    waiting: list[str]


def decide_landing(previous: Fingerprints, current: Fingerprints,
                   has_partition: Callable[[str], bool] = daily_partitions.has_partition_key,
                   trace_days_of: Callable[[list[str]], set[str]] = lambda keys: set(),
                   ) -> LandingDecision:
    """One run per changed day that has traces and is already a partition.

    Reviews are resolved with their trace's day, wherever they landed: a changed review file
    also runs each trace day it names (`trace_days_of`: review file keys -> trace days), so a
    Label Studio pull landing on a day without traces is taken in by the days it reviews. A
    day that is not yet a partition (today's, still landing), or a review folder naming no
    landed trace, keeps its old fingerprints in the cursor, so it is picked up on a later tick.
    A day whose trace files were removed (raw retention) is forgotten without a run.
    """
    requests, waiting = [], []
    cursor = dict(previous)
    trace_days = {day_of(k) for k in current if k.startswith("traces/")}
    changed = changed_days(previous, current)
    late: dict[str, set[str]] = {}  # trace day -> changed review files of other folders
    for day, files in changed.items():
        reviews = [k for k in files if k.startswith("reviews/") and k in current]
        if reviews:
            for trace_day in trace_days_of(reviews) - {day}:
                late.setdefault(trace_day, set()).update(reviews)
    taken_in = set().union(*late.values()) if late else set()
    for day in sorted(set(changed) | set(late)):
        files = changed.get(day, [])
        if day not in trace_days and not any(key in current for key in files):
            for key in files:
                cursor.pop(key, None)
            continue
        if day not in trace_days and all(key in taken_in for key in files):
            continue  # a review-only folder: its files run with the trace days they review
        if day not in trace_days or not has_partition(day):
            waiting.append(day)
            continue
        for key in files:
            if key in current:
                cursor[key] = current[key]
            else:
                cursor.pop(key, None)
        others = sorted(late.get(day, ()))
        requests.append(dg.RunRequest(
            run_key=f"landing:{day}:{day_digest(current, day, others)}",
            partition_key=day,
            tags={TRIGGER_TAG: "landing_sensor",
                  "feedback/changed_files": str(len(files) + len(others))},
        ))
    requested = {r.partition_key for r in requests}
    for key in taken_in:  # done once every trace day it reviews has its run
        if {day for day, keys in late.items() if key in keys} <= requested:
            cursor[key] = current[key]
    return LandingDecision(requests, cursor, waiting)


@dg.sensor(
    name="landing_sensor",
    job=daily_pipeline_job,
    minimum_interval_seconds=60,
    description="Starts daily_pipeline for each day whose trace or review files are new or "
                "changed (cursor: file -> mtime and size).",
)
def landing_sensor(context: dg.SensorEvaluationContext,
                   pipeline: PipelineResource) -> dg.SensorResult:
    previous = parse_cursor(context.cursor)
    storage = pipeline.storage
    decision = decide_landing(previous, landing_fingerprints(storage),
                              trace_days_of=lambda keys: reviewed_trace_days(storage, keys))
    if decision.waiting:
        context.log.info(f"waiting for day(s) not yet runnable: {', '.join(decision.waiting)}")
    return dg.SensorResult(
        run_requests=decision.requests,
        cursor=json.dumps(decision.cursor, sort_keys=True),
        skip_reason=None if decision.requests else "no new or changed landing files",
    )


# ---- failed checks ------------------------------------------------------------------------
def plain_metadata(metadata: Mapping[str, object]) -> dict[str, object]:
    """Metadata values unwrapped to plain Python (text, numbers, booleans)."""
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def parse_check_cursor(cursor: str | None) -> tuple[int, set[int], dict[str, bool]]:
    """(watermark, alerted ids above it, last state of each check alerted on state change
    (alerts.STATE_CHANGE)): every execution at or below the watermark is done."""
    if not cursor:
        return 0, set(), {}
    try:
        loaded = json.loads(cursor)
        states = {str(k): bool(v) for k, v in (loaded.get("states") or {}).items()}
        return (int(loaded.get("watermark", 0)), {int(i) for i in loaded.get("alerted", [])},
                states)
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0, set(), {}


CheckExecution = Any
"""A check execution record from `event_log_storage.get_asset_check_execution_history` (its
class is not exported by dagster, so it is read by attribute: id, key, status, run_id, event,
partition)."""
PLANNED, FAILED = "PLANNED", "FAILED"


def status_of(record: CheckExecution) -> str:
    """An execution's status by name (PLANNED, SUCCEEDED, FAILED, SKIPPED)."""
    return str(getattr(record.status, "value", record.status))


def new_check_records(instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey],
                      watermark: int) -> list[CheckExecution]:
    """Every execution of these checks newer than `watermark`, oldest first (paged)."""
    records = []
    for key in check_keys:
        before = None
        while True:
            page = instance.event_log_storage.get_asset_check_execution_history(
                key, limit=CHECK_HISTORY_LIMIT, cursor=before)
            fresh = [r for r in page if r.id > watermark]
            records += fresh
            if len(page) < CHECK_HISTORY_LIMIT or len(fresh) < len(page):
                break
            before = page[-1].id
    return sorted(records, key=lambda r: r.id)


def alert_for_record(record: CheckExecution, run: dg.DagsterRun | None) -> Alert:
    evaluation = record.event.dagster_event.event_specific_data
    return check_alert(
        check_name=record.key.name,
        asset=record.key.asset_key.to_user_string(),
        partition=record.partition or (run.tags.get("dagster/partition") if run else None),
        severity=evaluation.severity.value,
        blocking=evaluation.blocking,
        metadata=plain_metadata(evaluation.metadata),
        run_id=record.run_id,
        job_name=run.job_name if run else None,
        source_id=f"check-execution:{record.id}",
    )


def failed_check_alerts(instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey],
                        cursor: str | None) -> tuple[list[Alert], str]:
    """Alerts for check failures not yet alerted, and the next cursor.

    An execution still PLANNED (its run is going) holds the watermark back so that its result
    is read on a later tick; one whose run has finished without a result never will resolve.
    """
    watermark, alerted, states = parse_check_cursor(cursor)
    alerts, pending = [], []
    runs: dict[str, dg.DagsterRun | None] = {}
    seen = watermark
    for record in new_check_records(instance, check_keys, watermark):
        seen = max(seen, record.id)
        if record.run_id not in runs:
            runs[record.run_id] = instance.get_run_by_id(record.run_id)
        run = runs[record.run_id]
        if status_of(record) == PLANNED:
            if run is not None and not run.is_finished:
                pending.append(record.id)
            continue
        failed = status_of(record) == FAILED
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        if plain_metadata(getattr(evaluation, "metadata", {})).get(ALERT_ON) == STATE_CHANGE:
            key = record.key.to_user_string()
            if record.id not in alerted and states.get(key) != (not failed):
                alert = alert_for_record(record, run)
                alerts.append(alert if failed else
                              dataclasses.replace(alert, kind="check_recovered",
                                                  severity="WARN"))
                alerted.add(record.id)
            states[key] = not failed
            continue
        if failed and record.id not in alerted:
            alerts.append(alert_for_record(record, run))
            alerted.add(record.id)
    new_watermark = min(pending) - 1 if pending else seen
    out = {"watermark": new_watermark,
           "alerted": sorted(i for i in alerted if i > new_watermark)}
    if states:
        out["states"] = dict(sorted(states.items()))
    return alerts, json.dumps(out)


@dg.sensor(
    name="check_failure_alert",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every failed asset check (blocking gates and warnings) to the alert "
                "sinks named in policy.yaml; cursor: the last check execution read.",
)
def check_failure_alert(context: dg.SensorEvaluationContext, pipeline: PipelineResource,
                        alert_sinks: AlertSinksResource) -> dg.SkipReason | None:
    check_keys = context.repository_def.asset_graph.asset_check_keys
    alerts, cursor = failed_check_alerts(context.instance, check_keys, context.cursor)
    settings, config_alert = alert_sinks.settings_for(pipeline.storage)
    retried = retry_outbox(settings, pipeline.storage, context.log)
    if alerts:
        dispatch([*alerts, *([config_alert] if config_alert else [])], settings,
                 pipeline.storage, context.log)
    context.update_cursor(cursor)
    if not alerts:
        return dg.SkipReason(f"no new failed checks; outbox: {retried['delivered']} delivered, "
                             f"{retried['waiting']} waiting, {retried['expired']} expired")
    return None


# ---- failed runs --------------------------------------------------------------------------
def innermost_error(error: Any) -> tuple[str | None, str]:
    """(class name, message) of the error a step failed with, below Dagster's wrappers: a
    config error raised while an output streams arrives as DagsterExecutionHandleOutputError
    with the ConfigError as its cause, and the alert should say what the ConfigError says."""
    while (error.cls_name or "").startswith("DagsterExecution") and error.cause is not None:
        error = error.cause
    return error.cls_name, error.message


@dg.run_failure_sensor(
    name="run_failure_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every failed run (a blocking gate fails its run) to the alert sinks.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, pipeline: PipelineResource,
                             alert_sinks: AlertSinksResource) -> None:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    errors = [innermost_error(error) for e in step_failures
              if (error := getattr(e.event_specific_data, "error", None)) is not None]
    alert = run_failure_alert(
        job_name=run.job_name, run_id=run.run_id, partition=run.tags.get("dagster/partition"),
        failed_steps=[e.step_key for e in step_failures if e.step_key],
        errors=errors or [(None, context.failure_event.message or "")],
    )
    # the sinks are read on their own: a policy that fails to parse (maybe the very fault
    # that failed this run) falls back to the default sinks and is alerted too
    settings, config_alert = alert_sinks.settings_for(pipeline.storage)
    dispatch([alert, *([config_alert] if config_alert else [])], settings, pipeline.storage,
             context.log)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_pipeline_job],
    request_job=selection_experiment_job,
    name="experiment_after_daily_run",
    description="Closes the labeling loop: after a day's run, the selection experiment compares "
                "the arms so the next round's selector follows its verdict.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def experiment_after_daily_run(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    run = context.dagster_run
    return dg.RunRequest(run_key=f"experiment-after-{run.run_id}",
                         tags={"feedback/after_run": run.run_id})


def all_sensors() -> list:
    return [landing_sensor, check_failure_alert, run_failure_alert_sensor,
            experiment_after_daily_run]
