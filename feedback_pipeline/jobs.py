"""The jobs users launch: the daily data pipeline, the judge calibration, the release, and the
checks-only audit.

The per-day jobs run each step in its own process (multiprocess executor); a backfill (Dagster's,
from the UI or `python -m feedback_pipeline.automation.backfill`) runs one such run per day, as
many at once as the run queue (dagster.yaml) allows. Two runs of
different days never write the same file: every table write replaces one partition atomically.

Where the steps run is the deployment's choice, not the code's: FEEDBACK_EXECUTOR (read when
the code location loads) names the executor every job gets, so the same image runs a day on
one machine, in a Kubernetes pod per step or on Celery workers (docs/operations.md).
"""

import importlib
import os

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


stage_multiprocess_executor = dg.multiprocess_executor.configured(
    _forkserver_config,
    config_schema={"max_concurrent": dg.Field(int, default_value=0, description=(
        "Steps of one run at once; 0 means one per CPU."))},
    name="stage_multiprocess",
)

EXECUTOR_ENV = "FEEDBACK_EXECUTOR"
EXTERNAL_EXECUTORS = {
    # FEEDBACK_EXECUTOR value: (module, executor attribute, the package that provides it)
    "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s"),
    "celery": ("dagster_celery", "celery_executor", "dagster-celery"),
    "celery_k8s": ("dagster_celery_k8s", "celery_k8s_job_executor", "dagster-celery-k8s"),
    "docker": ("dagster_docker", "docker_executor", "dagster-docker"),
}
EXECUTOR_CHOICES = ("multiprocess", *EXTERNAL_EXECUTORS)


class ExecutorChoiceError(ValueError):
    """FEEDBACK_EXECUTOR names no executor, or one whose package is not installed."""


def chosen_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor the jobs run their steps with: `name`, else FEEDBACK_EXECUTOR, else the
    forkserver multiprocess executor. Each external executor takes its own run config under
    `execution: config:` (its package's documentation; docs/operations.md shows Kubernetes).
    A name that is not a choice, or whose package is missing, stops the code location from
    loading with a message saying which, rather than running the day somewhere unintended."""
    name = (name if name is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower()
    if name in ("", "multiprocess"):
        return stage_multiprocess_executor
    if name not in EXTERNAL_EXECUTORS:
        raise ExecutorChoiceError(f"{EXECUTOR_ENV} must be one of {', '.join(EXECUTOR_CHOICES)}"
                                  f" (or unset for multiprocess); got {name!r}")
    module, attribute, package = EXTERNAL_EXECUTORS[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as err:
        raise ExecutorChoiceError(f"{EXECUTOR_ENV}={name} needs the {package} package "
                                  f"(pip install {package})") from err


stage_executor = chosen_executor()

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
