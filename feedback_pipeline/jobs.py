"""The jobs users launch: the daily data pipeline, the judge calibration, the release, and the
checks-only audit.

The per-day jobs run each step in its own process (multiprocess executor); a backfill (Dagster's,
from the UI or `python -m feedback_pipeline.automation.backfill`) runs one such run per day, as
many at once as the run queue (dagster.yaml) allows. Two runs of
different days never write the same file: every table write replaces one partition atomically.
"""

import dagster as dg

from feedback_pipeline.automation.checks import AUDIT_CHECKS
from feedback_pipeline.partitions import daily_partitions

DAILY_GROUPS = ["ingest", "redaction", "routing", "review", "agreement", "selection"]
JUDGE_GROUPS = ["judge"]
EXPERIMENT_GROUPS = ["evaluation", "experiment"]
RELEASE_GROUPS = ["evaluation", "release"]
"""Jobs select asset groups, so an asset added to a stage's group joins its job."""
PRELOADED_MODULES = ["feedback_pipeline.definitions"]
AUDIT_SELECTION = dg.AssetSelection.checks(*(key for check in AUDIT_CHECKS
                                             for key in check.check_keys))


def groups(names: list[str]) -> dg.AssetSelection:
    """The materializable assets of these groups, with their checks."""
    return dg.AssetSelection.groups(*names).materializable()


def _forkserver_config(config: dict) -> dict:
    """One process per step, forked from a server that has already imported the stages: a step
    starts in well under a second instead of re-importing pandas, pyarrow and dagster."""
    return {"max_concurrent": config["max_concurrent"],
            "start_method": {"forkserver": {"preload_modules": PRELOADED_MODULES}}}


stage_executor = dg.multiprocess_executor.configured(
    _forkserver_config,
    config_schema={"max_concurrent": dg.Field(int, default_value=0, description=(
        "Steps of one run at once; 0 means one per CPU."))},
    name="stage_multiprocess",
)

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=groups(DAILY_GROUPS) - AUDIT_SELECTION,
    partitions_def=daily_partitions,
    executor_def=stage_executor,
    description="Every per-day stage for one UTC day: ingest, redaction, routing, the labeling "
                "round (selection, backlog, review tasks out) and the reviews landed so far.",
)

judge_job = dg.define_asset_job(
    "judge_calibration_job",
    selection=groups(JUDGE_GROUPS) - AUDIT_SELECTION,
    partitions_def=daily_partitions,
    executor_def=stage_executor,
    description="Calibrates the LLM judge for one day; kept apart so a biased judge never "
                "blocks the data pipeline.",
)

release_job = dg.define_asset_job(
    "release",
    selection=groups(RELEASE_GROUPS) - AUDIT_SELECTION,
    executor_def=stage_executor,
    description="Builds the release candidate for a window, runs every gate, promotes.",
)

selection_experiment_job = dg.define_asset_job(
    "selection_experiment",
    selection=groups(EXPERIMENT_GROUPS) - AUDIT_SELECTION,
    executor_def=stage_executor,
    description="Compares the rounds' hybrid and random arms on the frozen set; its verdict "
                "decides how the next round's selector arm is drawn. Runs after each day.",
)

gate_audit_job = dg.define_asset_job(
    "gate_audit",
    selection=AUDIT_SELECTION,
    description="Checks only: re-scans stored tables for residue and re-verifies the latest "
                "release; materializes nothing.",
)

ALL_JOBS = [daily_pipeline_job, judge_job, selection_experiment_job, release_job, gate_audit_job]
