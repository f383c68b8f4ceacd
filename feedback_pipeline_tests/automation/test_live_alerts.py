"""Alerting on a real `dagster dev` (webserver and daemon) on loopback, as on call meets it: the
daemon's own sensor ticks deliver to a loopback webhook receiver, through a malformed policy and
through a receiver that is down when a gate fails and back later."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from feedback_pipeline.automation.alerts import outbox
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.automation.conftest import (
    WebhookReceiver,
    free_port,
    set_policy,
    wait_until,
)
from feedback_pipeline_tests.automation.test_ui import (
    LAUNCH,
    graphql,
    run_status,
    running_dagster_dev,
)
from feedback_pipeline_tests.conftest import DAYS, copy_root

pytestmark = pytest.mark.slow


def launch_day(base: str, location: str, day: str) -> str:
    launched = graphql(base, LAUNCH, {"params": {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__",
                     "jobName": "daily_pipeline"},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def finished(base: str, run_id: str, log: Path) -> str:
    try:
        return wait_until(
            lambda: (s := run_status(base, run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
            timeout=300, interval=2, what=f"run {run_id} to finish")
    except TimeoutError:
        raise AssertionError(log.read_text()[-3000:]) from None


def test_alerts_reach_the_webhook_through_a_bad_policy_and_a_receiver_that_was_down(
        generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    hook_port, ui_port = free_port(), free_port()
    base = f"http://127.0.0.1:{ui_port}"
    env = {**os.environ, "FEEDBACK_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hooks/alerts",
           "FEEDBACK_DAGSTER_UI_URL": base}
    storage = Storage(root)
    with running_dagster_dev(root, tmp_path, env, ui_port) as dev:
        location, log_path = dev["location"], dev["log"]
        # 1. a string where a number belongs: the run fails, and its alert still arrives
        set_policy(root, kappa_gate="high")
        with WebhookReceiver(hook_port) as receiver:
            bad_run = launch_day(base, location, DAYS[0])
            assert finished(base, bad_run, log_path) == "FAILURE"
            wait_until(lambda: any(b["links"].get("run", "").endswith(f"/runs/{bad_run}")
                                   for b in receiver.bodies),
                       timeout=150, interval=2, what="the failed run's alert")
        run_alert = next(b for b in receiver.bodies
                         if b["links"].get("run", "").endswith(f"/runs/{bad_run}"))
        assert f"{base}/runs/{bad_run}" in run_alert["text"]
        # the alert names the fault (a ConfigError's own wording) and never a value from it
        assert "kappa_gate" in run_alert["text"] and "high" not in run_alert["text"], (
            run_alert["text"])
        first_keys = {b["dedup_key"] for b in receiver.bodies}

        # 2. the receiver is down when a gate fails: its alert waits in the outbox
        set_policy(root, kappa_gate=0.99)  # above any agreement the generated day reaches
        gate_run = launch_day(base, location, DAYS[1])
        finished(base, gate_run, log_path)  # the daily agreement gate warns; the run goes on
        wait_until(lambda: any(e["alert"].get("check_name") == "daily_agreement_gate"
                               and e["alert"].get("partition") == DAYS[1]
                               for e in outbox(storage)),
                   timeout=180, interval=2, what="the gate's alert to wait in the outbox")
        waiting = {e["alert"]["dedup_key"] for e in outbox(storage)}

        # 3. back up: each waiting alert arrives once, and the outbox empties
        with WebhookReceiver(hook_port) as receiver:
            wait_until(lambda: not outbox(storage)
                       and waiting <= {b["dedup_key"] for b in receiver.bodies},
                       timeout=240, interval=2, what="the outbox to be delivered")
            time.sleep(75)  # more ticks of both alert sensors: nothing is sent twice
        delivered = Counter(b["dedup_key"] for b in receiver.bodies)
        assert waiting <= set(delivered) and set(delivered.values()) == {1}, delivered
        assert not first_keys & set(delivered)  # what was delivered before is not resent
        gate_alert = next(b for b in receiver.bodies
                          if b["dedup_key"].startswith("check_failed:daily_agreement_gate"))
        assert gate_alert["links"]["checks"].endswith(f"partition={DAYS[1]}")
        assert gate_alert["links"]["run"].endswith(f"/runs/{gate_run}")
        assert "daily_agreement_gate" in gate_alert["text"]
        assert f"{base}/runs/{gate_run}" in gate_alert["text"]
