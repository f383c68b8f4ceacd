"""Alert settings, scrubbing, and a failed gate paged to a real webhook on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from feedback_pipeline.automation.alerts import (
    OUTBOX_PATH,
    WEBHOOK_ENV,
    Alert,
    AlertSettings,
    alert_settings,
    check_alert,
    dispatch,
    outbox,
    resolve_alert_settings,
    retry_outbox,
    run_failure_alert,
    safe_ids,
    scrub,
)
from feedback_pipeline.automation.sensors import check_failure_alert
from feedback_pipeline.settings import ConfigError, Policy
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.automation.conftest import (
    WebhookReceiver,
    sensor_resources,
    set_policy,
)
from feedback_pipeline_tests.stages.test_pipeline import raw_identifiers


def test_sinks_come_from_the_policy_and_the_url_from_the_environment():
    assert alert_settings(Policy(), environ={}).sinks == ("log", "jsonl")
    with_url = alert_settings(Policy(), environ={WEBHOOK_ENV: "http://127.0.0.1:1/x"})
    assert with_url.sinks == ("log", "jsonl", "webhook")
    assert with_url.webhook_url == "http://127.0.0.1:1/x"
    chosen = Policy(extra={"alerts": {"sinks": ["webhook"], "webhook_url": "http://a/b",
                                      "jsonl_path": "/var/alerts.jsonl"}})
    settings = alert_settings(chosen, environ={})
    assert settings.sinks == ("webhook",) and settings.webhook_url == "http://a/b"
    assert settings.jsonl_path == "/var/alerts.jsonl"
    assert alert_settings(chosen, environ={WEBHOOK_ENV: "http://env/c"}).webhook_url == \
        "http://env/c"
    with pytest.raises(ConfigError, match="pager"):
        alert_settings(Policy(extra={"alerts": {"sinks": ["log", "pager"]}}), environ={})


def test_scrub_and_ids_keep_names_and_figures_but_no_raw_values():
    assert scrub("cohens_kappa 0.512 < gate 0.99") == "cohens_kappa 0.512 < gate 0.99"
    cleaned = scrub("mail jane.doe@example.com about ENG-123456 at commit 3f9a2b7c1d4e")
    assert "jane.doe" not in cleaned and "ENG-123456" not in cleaned
    assert "3f9a2b7c1d4e" not in cleaned
    assert len(scrub("x " * 500)) <= 240
    shown, total = safe_ids("tr-1, tr-2, bob@example.com (+7 more)")
    assert shown == ["tr-1", "tr-2", "<withheld-id>"] and total == 10


def test_a_check_alert_names_check_asset_partition_rule_and_ids():
    alert = check_alert(
        check_name="no_redaction_residue", asset="redacted_traces", partition="2026-05-02",
        severity="ERROR", blocking=True,
        metadata={"rule": "independent residue scan finds nothing raw", "offending_rows": 2,
                  "offending_ids": "tr-9, tr-12", "kinds": "| EMAIL | 2 |"},
        run_id="r1", job_name="daily_pipeline", source_id="check-execution:7")
    text = alert.text()
    for part in ("no_redaction_residue", "redacted_traces", "2026-05-02", "tr-9, tr-12",
                 "independent residue scan", "offending_rows=2", "blocking gate"):
        assert part in text
    assert "EMAIL |" not in text
    assert Alert.from_json(alert.to_json()) == alert
    assert alert.dedup_key == "check_failed:no_redaction_residue:redacted_traces:2026-05-02"
    links = alert.links("http://ui.example:3000")
    assert links["run"] == "http://ui.example:3000/runs/r1"
    assert links["checks"] == ("http://ui.example:3000/assets/redacted_traces?view=checks&"
                               "partition=2026-05-02")
    assert "checks: http://127.0.0.1:3000/assets/redacted_traces" in text


def test_a_run_failure_withholds_messages_of_unknown_errors():
    alert = run_failure_alert(
        job_name="daily_pipeline", run_id="r2", partition="2026-05-01",
        failed_steps=["redacted_traces"],
        errors=[("ValueError", "could not parse 'alice@example.com wrote this prompt'"),
                ("Failure", "promotion refused: agreement below gate")])
    assert "alice" not in alert.text() and "wrote this prompt" not in alert.text()
    assert "ValueError (message withheld" in alert.text()
    assert "promotion refused: agreement below gate" in alert.text()
    assert "failed steps (1): redacted_traces" in alert.text()


@pytest.mark.slow
def test_failed_gate_reaches_the_webhook_once_without_raw_text(failed_gate, webhook,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    """A gate fails on a real instance; the alert sensor posts it to a loopback webhook."""
    policy_file = failed_gate.root / "config" / "policy.yaml"
    original = policy_file.read_text()
    set_policy(failed_gate.root, alerts={"sinks": ["webhook", "jsonl"],
                                         "jsonl_path": str(tmp_path / "alerts.jsonl")})
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    try:
        posted_once_and_only_once(failed_gate, webhook, tmp_path)
    finally:
        policy_file.write_text(original)


def posted_once_and_only_once(failed_gate, webhook, tmp_path: Path) -> None:
    with dg.build_sensor_context(
            instance=failed_gate.instance, cursor=None, definitions=failed_gate.defs,
            resources=sensor_resources(failed_gate.root)) as context:
        check_failure_alert(context)
        cursor = context.cursor

    agreement = [b for b in webhook.bodies if "gate agreement_gate failed" in b["text"]]
    assert len(agreement) == 1, [b["text"] for b in webhook.bodies]
    body = agreement[0]
    assert set(body) == {"text", "dedup_key", "links"}
    assert body["dedup_key"] == "check_failed:agreement_gate:dataset_manifest:-"
    assert body["links"]["checks"].endswith("/assets/dataset_manifest?view=checks")
    assert body["links"]["run"].endswith(f"/runs/{failed_gate.run_id}")
    assert "dataset_manifest" in body["text"] and "blocking gate" in body["text"]
    assert "rule: conger_kappa (point) >= 0.99" in body["text"]  # more than two reviewers
    raw = raw_identifiers(failed_gate.root)
    assert raw
    for posted in webhook.bodies:
        leaked = [value for value in raw if value in json.dumps(posted)]
        assert not leaked
    jsonl = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(jsonl) == len(webhook.bodies)

    posted = len(webhook.bodies)
    with dg.build_sensor_context(
            instance=failed_gate.instance, cursor=cursor, definitions=failed_gate.defs,
            resources=sensor_resources(failed_gate.root)) as context:
        check_failure_alert(context)
    assert len(webhook.bodies) == posted


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_webhook_that_is_down_gets_the_alert_once_after_it_is_back(tmp_path):
    from datetime import UTC, datetime, timedelta

    storage = Storage(tmp_path / "data")
    port = _free_port()
    settings = AlertSettings(sinks=("webhook",), webhook_url=f"http://127.0.0.1:{port}/hook",
                             webhook_timeout_seconds=2, outbox_max_age_hours=1)
    alert = run_failure_alert(job_name="daily_pipeline", run_id="r9", partition="2026-05-01",
                              failed_steps=["redacted_traces"], errors=[("Failure", "gate")])
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    [delivery] = dispatch([alert], settings, storage, now=t0)
    assert not delivery.ok and len(outbox(storage)) == 1
    assert retry_outbox(settings, storage, now=t0 + timedelta(seconds=5)) == {
        "delivered": 0, "waiting": 1, "expired": 0}  # not due yet: no attempt
    with WebhookReceiver(port) as receiver:
        counts = retry_outbox(settings, storage, now=t0 + timedelta(minutes=2))
        assert counts == {"delivered": 1, "waiting": 0, "expired": 0}
        assert retry_outbox(settings, storage, now=t0 + timedelta(minutes=30))["delivered"] == 0
    [body] = receiver.bodies
    assert body["dedup_key"] == alert.dedup_key and body["links"]["run"].endswith("/runs/r9")
    assert outbox(storage) == []
    assert (storage.root / OUTBOX_PATH).exists()


def test_an_undeliverable_alert_expires_from_the_outbox_and_says_so(tmp_path):
    from datetime import UTC, datetime, timedelta

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def error(self, msg: str) -> None:
            self.lines.append(msg)

        warning = error

    storage = Storage(tmp_path / "data")
    settings = AlertSettings(sinks=("webhook",),
                             webhook_url=f"http://127.0.0.1:{_free_port()}/hook",
                             webhook_timeout_seconds=1, outbox_max_age_hours=1)
    alert = run_failure_alert(job_name="release", run_id="r3", partition=None,
                              failed_steps=[], errors=[])
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    dispatch([alert], settings, storage, now=t0)
    log = Log()
    assert retry_outbox(settings, storage, log, now=t0 + timedelta(hours=2))["expired"] == 1
    assert outbox(storage) == [] and any("expired undelivered" in line for line in log.lines)


def test_alert_sinks_survive_a_policy_that_does_not_parse(tmp_path):
    storage = Storage(tmp_path / "data")
    (storage.root / "config").mkdir(parents=True)
    policy = storage.root / "config" / "policy.yaml"
    policy.write_text("kappa_gate: high\nalerts: {sinks: [log, jsonl, webhook]}\n")
    settings, problem = resolve_alert_settings(storage, environ={})
    assert problem is None and settings.sinks == ("log", "jsonl", "webhook")
    policy.write_text("kappa_gate: [0.65\nalerts: {sinks: [webhook]}\n")  # broken YAML
    settings, problem = resolve_alert_settings(storage, environ={WEBHOOK_ENV: "http://x/y"})
    assert settings.sinks == ("log", "jsonl", "webhook") and settings.webhook_url == "http://x/y"
    assert problem.kind == "config_error" and "cannot be read" in problem.reason
    policy.write_text("alerts: 5\n")
    _, problem = resolve_alert_settings(storage, environ={})
    assert "'alerts' must be a mapping" in problem.reason


def test_a_run_failure_names_the_error_below_dagsters_wrappers():
    from dagster._utils.error import SerializableErrorInfo

    from feedback_pipeline.automation.sensors import innermost_error

    config = SerializableErrorInfo("feedback_pipeline.settings.ConfigError: policy.yaml: "
                                   "kappa_gate must be a number, got str\n", [], "ConfigError")
    wrapped = SerializableErrorInfo("Error occurred while handling output", [],
                                    "DagsterExecutionHandleOutputError", cause=config)
    cls_name, message = innermost_error(wrapped)
    assert cls_name == "ConfigError"
    alert = run_failure_alert(job_name="daily_pipeline", run_id="r1", partition="2026-05-01",
                              failed_steps=["raw_traces"], errors=[(cls_name, message)])
    assert alert.reason == "ConfigError: policy.yaml: kappa_gate must be a number, got str"
    # an error of unknown wording below the wrapper still keeps its message back
    leaky = SerializableErrorInfo("KeyError: 'alice@example.com'", [], "KeyError")
    assert innermost_error(SerializableErrorInfo("x", [], "DagsterExecutionStepExecutionError",
                                                 cause=leaky))[0] == "KeyError"
    plain = SerializableErrorInfo("gate failed", [], "Failure")
    assert innermost_error(plain) == ("Failure", "gate failed")


def test_slack_and_pagerduty_deliver_through_the_dagster_integrations_and_retry(tmp_path):
    from datetime import UTC, datetime, timedelta

    storage = Storage(tmp_path / "data")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = AlertSettings(
        sinks=("slack", "pagerduty"), slack_token="xoxb-not-a-real-token",
        slack_channel="#ml-data-oncall", slack_api_url=f"{base}/slack/api/",
        pagerduty_routing_key="r" * 32, pagerduty_events_url=f"{base}/pagerduty/v2/enqueue",
        ui_url="http://dagster.example:3000", webhook_timeout_seconds=2)
    alert = run_failure_alert(job_name="daily_pipeline", run_id="r7", partition="2026-05-02",
                              failed_steps=["reviewed_labels"], errors=[("Failure", "gate")])
    with WebhookReceiver(port) as receiver:
        deliveries = dispatch([alert], settings, storage)
    assert [(d.sink, d.ok) for d in deliveries] == [("slack", True), ("pagerduty", True)]
    slack, pagerduty = receiver.bodies
    assert receiver.paths[0] == "/slack/api/chat.postMessage"
    assert slack["channel"] == "#ml-data-oncall"
    assert "http://dagster.example:3000/runs/r7" in slack["text"]
    assert receiver.paths[1].startswith("/pagerduty/v2/enqueue")
    assert pagerduty["routing_key"] == "r" * 32 and pagerduty["event_action"] == "trigger"
    assert pagerduty["dedup_key"] == alert.dedup_key
    assert pagerduty["payload"]["severity"] == "error"
    assert pagerduty["payload"]["custom_details"]["run"].endswith("/runs/r7")
    assert "xoxb-not-a-real-token" not in json.dumps(receiver.bodies)

    # both down: each waits in the outbox with its sink, and goes once they are back
    t0 = datetime(2026, 5, 2, 12, tzinfo=UTC)
    failed = dispatch([alert], settings, storage, now=t0)
    assert [d.ok for d in failed] == [False, False]
    assert sorted(e["sink"] for e in outbox(storage)) == ["pagerduty", "slack"]
    assert "xoxb" not in (storage.root / OUTBOX_PATH).read_text()  # secrets never stored
    with WebhookReceiver(port) as receiver:
        assert retry_outbox(settings, storage, now=t0 + timedelta(minutes=2)) == {
            "delivered": 2, "waiting": 0, "expired": 0}
    assert sorted(receiver.paths)[0].startswith("/pagerduty") and len(receiver.bodies) == 2


def test_network_sinks_join_the_defaults_when_their_secrets_are_set():
    from feedback_pipeline.automation.alerts import _settings

    env = {"FEEDBACK_SLACK_TOKEN": "xoxb-1", "FEEDBACK_PAGERDUTY_ROUTING_KEY": "k" * 32}
    both = _settings({"slack_channel": "#oncall"}, env)
    assert both.sinks == ("log", "jsonl", "slack", "pagerduty")
    assert _settings({}, env).sinks == ("log", "jsonl", "pagerduty")  # Slack needs a channel
    assert "xoxb-1" not in repr(both)
