"""The sensors through Dagster's test contexts: landing cursor, failed-check alerts, run failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from feedback_pipeline.automation.alerts import AlertSettings, dispatch
from feedback_pipeline.automation.sensors import (
    changed_days,
    check_failure_alert,
    decide_landing,
    experiment_after_daily_run,
    failed_check_alerts,
    landing_fingerprints,
    landing_sensor,
    run_failure_alert_sensor,
)
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.automation.conftest import sensor_resources
from feedback_pipeline_tests.stages.test_pipeline import raw_identifiers

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]


def land(root: Path, kind: str, day: str, name: str, lines: list[dict]) -> Path:
    folder = root / "landing" / kind / day
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def touch_later(path: Path, seconds: int = 5) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


@pytest.fixture
def landing_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for day in DAYS[:2]:
        land(root, "traces", day, "batch-1.jsonl", [{"trace_id": f"t-{day}", "prompt": "x"}])
    land(root, "reviews", DAYS[0], "reviews.jsonl", [{"review_id": "r-1", "trace_id": "t"}])
    return root


def evaluate_landing(root: Path, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(
            instance=instance, cursor=cursor,
            resources=sensor_resources(root)) as context:
        return landing_sensor(context)


def requested_days(result: dg.SensorResult) -> list[str]:
    return sorted(r.partition_key for r in result.run_requests or [])


def test_landing_sensor_runs_each_new_day_once_and_again_when_touched(landing_root: Path):
    with dg.instance_for_test() as instance:
        first = evaluate_landing(landing_root, instance, None)
        assert requested_days(first) == DAYS[:2]
        assert all(r.run_key.startswith(f"landing:{r.partition_key}:") for r in first.run_requests)

        second = evaluate_landing(landing_root, instance, first.cursor)
        assert requested_days(second) == []
        assert second.skip_reason is not None

        touch_later(landing_root / "landing" / "reviews" / DAYS[0] / "reviews.jsonl")
        third = evaluate_landing(landing_root, instance, second.cursor)
        assert requested_days(third) == [DAYS[0]]
        assert third.run_requests[0].run_key != first.run_requests[0].run_key

        land(landing_root, "traces", DAYS[1], "batch-2.jsonl", [{"trace_id": "late"}])
        fourth = evaluate_landing(landing_root, instance, third.cursor)
        assert requested_days(fourth) == [DAYS[1]]
        assert fourth.run_requests[0].tags["feedback/changed_files"] == "1"
        assert requested_days(evaluate_landing(landing_root, instance, fourth.cursor)) == []


def test_landing_sensor_waits_for_traces_and_for_the_partition_to_exist(landing_root: Path):
    land(landing_root, "reviews", DAYS[2], "early.jsonl", [{"review_id": "r-2"}])
    previous = landing_fingerprints(Storage(landing_root))
    decision = decide_landing({}, previous)
    assert sorted(r.partition_key for r in decision.requests) == DAYS[:2]
    assert decision.waiting == [DAYS[2]]
    assert not any(k.startswith(f"reviews/{DAYS[2]}") for k in decision.cursor)

    land(landing_root, "traces", DAYS[2], "batch-1.jsonl", [{"trace_id": "t3"}])
    current = landing_fingerprints(Storage(landing_root))
    later = decide_landing(decision.cursor, current, has_partition=lambda day: day != DAYS[2])
    assert later.requests == [] and later.waiting == [DAYS[2]]
    ready = decide_landing(decision.cursor, current)
    assert [r.partition_key for r in ready.requests] == [DAYS[2]]


def test_a_pull_landed_on_a_day_without_traces_runs_the_trace_days_it_reviews(
        landing_root: Path):
    before = landing_fingerprints(Storage(landing_root))
    pull = land(landing_root, "reviews", "2026-05-09", "labelstudio-pairwise.json", [])
    pull.write_text(json.dumps([{"id": 1, "data": {"trace_id": "t-2026-05-01"},
                                 "annotations": []}]))
    after = landing_fingerprints(Storage(landing_root))
    trace_day = {"t-2026-05-01": DAYS[0]}

    def days_of(keys):
        texts = [(landing_root / "landing" / k).read_text() for k in keys]
        return {day for tid, day in trace_day.items() if any(tid in t for t in texts)}

    decision = decide_landing(before, after, trace_days_of=days_of)
    assert [r.partition_key for r in decision.requests] == [DAYS[0]]
    assert decision.waiting == []
    assert "reviews/2026-05-09/labelstudio-pairwise.json" in decision.cursor
    assert decide_landing(decision.cursor, after, trace_days_of=days_of).requests == []
    unknown = decide_landing(before, after, trace_days_of=lambda keys: set())
    assert unknown.requests == [] and unknown.waiting == ["2026-05-09"]


def test_a_deleted_file_is_a_change_to_its_day(landing_root: Path):
    before = landing_fingerprints(Storage(landing_root))
    (landing_root / "landing" / "reviews" / DAYS[0] / "reviews.jsonl").unlink()
    after = landing_fingerprints(Storage(landing_root))
    assert changed_days(before, after) == {DAYS[0]: [f"reviews/{DAYS[0]}/reviews.jsonl"]}
    assert [r.partition_key for r in decide_landing(before, after).requests] == [DAYS[0]]


def test_a_day_removed_by_retention_is_forgotten_without_a_run(landing_root: Path):
    before = landing_fingerprints(Storage(landing_root))
    for path in (landing_root / "landing" / "traces" / DAYS[0]).iterdir():
        path.unlink()
    after = landing_fingerprints(Storage(landing_root))
    decision = decide_landing(before, after)
    assert decision.requests == [] and decision.waiting == []
    assert f"traces/{DAYS[0]}/batch-1.jsonl" not in decision.cursor
    assert f"reviews/{DAYS[0]}/reviews.jsonl" in decision.cursor
    assert decide_landing(decision.cursor, after).requests == []


# ---- failed checks ------------------------------------------------------------------------
def alert_lines(root: Path) -> list[dict]:
    path = root / "restricted" / "alerts" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def evaluate_check_sensor(gate, cursor: str | None):
    with dg.build_sensor_context(
            instance=gate.instance, cursor=cursor, definitions=gate.defs,
            resources=sensor_resources(gate.root)) as context:
        result = check_failure_alert(context)
        return result, context.cursor


def test_check_alert_sensor_alerts_each_failure_once_with_its_cursor(failed_gate):
    before = len(alert_lines(failed_gate.root))
    result, cursor = evaluate_check_sensor(failed_gate, None)
    new = alert_lines(failed_gate.root)[before:]
    gates = [a for a in new if a["check_name"] == "agreement_gate"]
    assert len(gates) == 1
    alert = gates[0]
    assert alert["asset"] == "dataset_manifest" and alert["blocking"] is True
    assert alert["kind"] == "check_failed" and alert["run_id"] == failed_gate.run_id
    # the rule names the statistic the gate used: Conger's kappa stands in for Cohen's when
    # the day has more than two reviewers
    assert alert["rule"].split()[0] in ("cohens_kappa", "conger_kappa") and "0.99" in alert["rule"]
    assert alert["reason"] and alert["reason"] != "passed"
    assert json.loads(cursor)["watermark"] > 0

    again, cursor_2 = evaluate_check_sensor(failed_gate, cursor)
    assert isinstance(again, dg.SkipReason)
    assert len(alert_lines(failed_gate.root)) == before + len(new)

    failed_gate.run_release()
    _, cursor_3 = evaluate_check_sensor(failed_gate, cursor_2)
    newest = alert_lines(failed_gate.root)[before + len(new):]
    assert [a["check_name"] for a in newest] == ["agreement_gate"]
    assert json.loads(cursor_3)["watermark"] > json.loads(cursor_2)["watermark"]


def test_non_blocking_failures_alert_too(failed_gate):
    keys = failed_gate.defs.resolve_asset_graph().asset_check_keys
    alerts, _ = failed_check_alerts(failed_gate.instance, keys, None)
    [daily] = [a for a in alerts if a.check_name == "daily_agreement_gate"]
    assert daily.blocking is False and daily.severity == "WARN"
    assert daily.asset == "agreement_report" and daily.partition == "2026-05-02"
    assert daily.job_name == "daily_pipeline"
    assert "check agreement_report" not in daily.title and "blocking" not in daily.title


def test_executions_already_alerted_above_the_watermark_are_not_repeated(failed_gate):
    keys = failed_gate.defs.resolve_asset_graph().asset_check_keys
    alerts, cursor = failed_check_alerts(failed_gate.instance, keys, None)
    assert alerts
    watermark = json.loads(cursor)["watermark"]
    held = json.dumps({"watermark": 0, "alerted": list(range(1, watermark + 1))})
    replay, replay_cursor = failed_check_alerts(failed_gate.instance, keys, held)
    assert replay == []
    assert json.loads(replay_cursor) == {"watermark": watermark, "alerted": []}


def test_alert_text_carries_no_raw_identifier(failed_gate):
    keys = failed_gate.defs.resolve_asset_graph().asset_check_keys
    alerts, _ = failed_check_alerts(failed_gate.instance, keys, None)
    raw = raw_identifiers(failed_gate.root)
    assert raw
    for alert in alerts:
        body = json.dumps(alert.to_json())
        assert not [value for value in raw if value in body]


# ---- failed runs --------------------------------------------------------------------------
def test_run_failure_sensor_routes_the_failed_release_to_the_sinks(failed_gate):
    instance = failed_gate.instance
    run = instance.get_run_by_id(failed_gate.run_id)
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    before = len(alert_lines(failed_gate.root))
    with dg.build_sensor_context(instance=instance, definitions=failed_gate.defs) as outer:
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert", dagster_event=failure.dagster_event,
            dagster_instance=instance, dagster_run=run, context=outer,
            resources=sensor_resources(failed_gate.root),
        ).for_run_failure()
        run_failure_alert_sensor(context)
    new = alert_lines(failed_gate.root)[before:]
    assert len(new) == 1
    alert = new[0]
    assert alert["kind"] == "run_failed" and alert["job_name"] == "release"
    assert alert["run_id"] == run.run_id
    raw = raw_identifiers(failed_gate.root)
    assert not [value for value in raw if value in json.dumps(alert)]


def test_dispatch_reports_a_dead_webhook_without_raising(tmp_path: Path, failed_gate):
    keys = failed_gate.defs.resolve_asset_graph().asset_check_keys
    alerts, _ = failed_check_alerts(failed_gate.instance, keys, None)
    settings = AlertSettings(sinks=("jsonl", "webhook"), jsonl_path=str(tmp_path / "a.jsonl"),
                             webhook_url="http://127.0.0.1:9/none", webhook_timeout_seconds=1)
    deliveries = dispatch(alerts[:1], settings, Storage(failed_gate.root))
    assert [(d.sink, d.ok) for d in deliveries] == [("jsonl", True), ("webhook", False)]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1


# ---- the labeling loop ------------------------------------------------------------------
def test_a_successful_daily_run_requests_the_selection_experiment_once(failed_gate):
    """The daily run of the failed-gate fixture succeeded: the loop's sensor asks for one
    experiment run for it, keyed by the run, so a second tick cannot run it twice."""
    instance = failed_gate.instance
    daily = [r for r in instance.get_runs() if r.job_name == "daily_pipeline"][0]
    success = instance.all_logs(daily.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0]
    with dg.build_sensor_context(instance=instance, definitions=failed_gate.defs) as outer:
        context = dg.build_run_status_sensor_context(
            sensor_name="experiment_after_daily_run", dagster_event=success.dagster_event,
            dagster_instance=instance, dagster_run=daily, context=outer)
        request = experiment_after_daily_run(context)
    assert request.run_key == f"experiment-after-{daily.run_id}"
    assert request.tags["feedback/after_run"] == daily.run_id
    sensor = failed_gate.defs.resolve_sensor_def("experiment_after_daily_run")
    assert sensor.job_name == "selection_experiment"


def test_reviewed_trace_days_reads_gzip_review_files_and_skips_broken_ones(tmp_path: Path):
    """A `.jsonl.gz` pull landed on a day without traces names its trace days like a plain
    file does; a gzip that is not one, or breaks off, is left to the day's own run."""
    import gzip

    import pyarrow as pa

    from feedback_pipeline.automation.sensors import reviewed_trace_days

    storage = Storage(tmp_path)
    storage.write_table("warehouse", "redacted_traces", "2026-05-01",
                        pa.table({"trace_id": ["t-1", "t-2"]}))
    storage.write_table("warehouse", "redacted_traces", "2026-05-02",
                        pa.table({"trace_id": ["t-3"]}))
    folder = tmp_path / "landing" / "reviews" / "2026-05-09"
    folder.mkdir(parents=True)
    (folder / "pull.jsonl.gz").write_bytes(gzip.compress(
        (json.dumps({"review_id": "r1", "trace_id": "t-3"}) + "\n").encode()))
    (folder / "fake.jsonl.gz").write_text('{"review_id": "r2", "trace_id": "t-1"}\n')
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(
        (json.dumps({"review_id": "r3", "trace_id": "t-1"}) + "\n").encode())[:-12])
    keys = [f"reviews/2026-05-09/{name}" for name in
            ("pull.jsonl.gz", "fake.jsonl.gz", "cut.jsonl.gz")]
    assert reviewed_trace_days(storage, keys) == {"2026-05-02"}
