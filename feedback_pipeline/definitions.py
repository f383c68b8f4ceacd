"""The code location: gathers assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import dagster as dg

from feedback_pipeline.automation import alerts, schedules, sensors
from feedback_pipeline.automation.checks import AUDIT_CHECKS
from feedback_pipeline.core import runtime, signing, vault
from feedback_pipeline.core.labelstudio import API_KEY_ENV
from feedback_pipeline.io_manager import ParquetIOManager, StepIOManager
from feedback_pipeline.jobs import ALL_JOBS
from feedback_pipeline.resources import (
    DEFAULT_LABEL_STUDIO_URL,
    LABEL_STUDIO_URL_ENV,
    AlertSinksResource,
    KeysResource,
    LabelStudioResource,
    PipelineResource,
)
from feedback_pipeline.settings import ConfigError, Policy, load_policy
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
from feedback_pipeline.stages.common import SHARD_STEP_IO
from feedback_pipeline.storage import RESTRICTED, WAREHOUSE, Storage, default_data_root

STAGE_MODULES = [ingest, redaction, routing, review, agreement, selection_stage, judge, release]
REPORTED_ASSETS = [selection_stage.selector_recommendation]
"""Assets a run reports rather than materializes (see each one's description)."""
RELEASE_CRON_ENV = "FEEDBACK_RELEASE_CRON"
PACKAGE_VERSION = importlib.metadata.version("feedback-pipeline")


VERSIONED_BY = {
    "redaction": ("redaction_version",),
    "review": ("rubric_version",),
    "agreement": ("rubric_version",),
    "selection": ("selection_policy_version",),
    "experiment": ("selection_policy_version",),
    "judge": ("judge_gold_set",),
    "release": ("redaction_version", "rubric_version", "selection_policy_version",
                "frozen_eval_set"),
}
"""Asset group -> the policy versions its output depends on besides this package's code."""


def code_version(group: str | None, policy: Policy | None) -> str:
    """An asset's code version: this package's version, plus the policy versions its group
    depends on (VERSIONED_BY), so bumping `rubric_version` marks the review assets' stored
    partitions as made by other code in the UI, and the release's as well."""
    names = VERSIONED_BY.get(group or "", ()) if policy is not None else ()
    return "+".join([PACKAGE_VERSION, *(str(getattr(policy, n)) for n in names)])


def _policy_or_none(root: str) -> Policy | None:
    """The policy for the assets' owners and versions; a malformed one must not stop the code
    location from loading (the run that reads it fails naming the key), so None then."""
    try:
        return load_policy(Storage(root))
    except (ConfigError, OSError, ValueError):
        return None


def stage_assets(root: str) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every stage's assets with owners (policy `asset_owners`) and code versions; with
    `shards_per_day` above 1, raw_traces and (without corpus-stable tokens) redacted_traces
    are the sharded graphs of stages.ingest and stages.redaction."""
    policy = _policy_or_none(root)
    owners = list(policy.asset_owners if policy is not None else Policy.asset_owners)
    assets = [*dg.load_assets_from_modules(STAGE_MODULES), *REPORTED_ASSETS]
    if policy is not None and policy.shards_per_day > 1:
        sharded = [ingest.sharded_raw_traces(policy.shards_per_day)]
        if not policy.corpus_stable_tokens:  # its second pass reads the whole day at once
            sharded.append(redaction.sharded_redacted_traces(policy.shards_per_day))
        by_keys = {frozenset(a.keys): a for a in sharded}
        assets = [by_keys.get(frozenset(a.keys), a) if isinstance(a, dg.AssetsDefinition)
                  else a for a in assets]
    return list(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(
            owners=owners, code_version=code_version(spec.group_name, policy)),
        assets))


def from_env(name: str, default: str | None = None) -> Any:
    """`EnvVar(name)` when the variable is set where the definitions load, so the UI shows the
    field as read from it and its value is resolved in the run, never written to run config;
    otherwise `default`."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def deployment_resources(root: str, *, root_from_env: bool = False) -> dict[str, Any]:
    """The resources that differ between deployments, each setting read through `EnvVar`."""
    data_root = from_env(vault.DATA_ROOT_ENV, root) if root_from_env else root
    return {
        "pipeline": PipelineResource(data_root=data_root,
                                     stage_workers=from_env(runtime.WORKERS_ENV, "")),
        "io_manager": ParquetIOManager(data_root=data_root, zone=WAREHOUSE),
        "restricted_io_manager": ParquetIOManager(data_root=data_root, zone=RESTRICTED),
        SHARD_STEP_IO: StepIOManager(data_root=data_root),
        "keys": KeysResource(
            data_root=data_root, vault_key=from_env(vault.KEY_ENV),
            vault_key_file=from_env(vault.KEY_FILE_ENV), signing_key=from_env(signing.KEY_ENV),
            signing_key_file=from_env(signing.KEY_FILE_ENV),
            trusted_signing_keys=from_env(signing.TRUSTED_ENV)),
        "alert_sinks": AlertSinksResource(
            webhook_url=from_env(alerts.WEBHOOK_ENV),
            slack_token=from_env(alerts.SLACK_TOKEN_ENV),
            pagerduty_routing_key=from_env(alerts.PAGERDUTY_KEY_ENV),
            ui_url=from_env(alerts.UI_URL_ENV)),
        "labelstudio": LabelStudioResource(
            url=from_env(LABEL_STUDIO_URL_ENV, DEFAULT_LABEL_STUDIO_URL),
            api_key=from_env(API_KEY_ENV)),
    }


def build_definitions(data_root: str | None = None) -> dg.Definitions:
    """Definitions bound to one data root (default: FEEDBACK_DATA_ROOT or ./data)."""
    root = data_root or default_data_root()
    return dg.Definitions(
        assets=stage_assets(str(root)),
        asset_checks=AUDIT_CHECKS,
        jobs=[*ALL_JOBS, retention.raw_retention_job, labelstudio.labelstudio_sync],
        schedules=[*schedules.all_schedules(
            os.environ.get(RELEASE_CRON_ENV) or schedules.WEEKLY_RELEASE_CRON),
            retention.raw_retention_schedule, labelstudio.labelstudio_sync_schedule],
        sensors=sensors.all_sensors(),
        resources=deployment_resources(str(root), root_from_env=data_root is None),
    )


def job_for_root(job_name: str, data_root: str) -> dg.JobDefinition:
    """One job bound to `data_root`: what a step process rebuilds when the CLI runs a job with
    one process per step (see `feedback_pipeline.cli.run_pipeline`)."""
    return build_definitions(data_root).resolve_job_def(job_name)


defs = build_definitions()
