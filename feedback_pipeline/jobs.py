"""The jobs users launch: the daily data pipeline, the judge calibration, the release."""

import dagster as dg

from feedback_pipeline.partitions import daily_partitions

DAILY_ASSETS = [
    "raw_traces", "trace_quarantine", "redacted_traces", "reidentification_vault",
    "routed_queues", "review_tasks", "reviewed_labels", "preference_pairs", "demonstrations",
    "pointwise_assessments", "adjudication_queue", "incident_records", "review_quarantine",
    "agreement_report", "selected_batch",
]
JUDGE_ASSETS = ["judge_calibration", "judge_quarantine", "judge_accepted_labels"]
RELEASE_ASSETS = ["frozen_evaluation_set", "dataset_manifest", "dataset_release"]

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    partitions_def=daily_partitions,
    description="Every per-day stage for one UTC day: ingest through selection.",
)

judge_job = dg.define_asset_job(
    "judge_calibration_job",
    selection=dg.AssetSelection.assets(*JUDGE_ASSETS),
    partitions_def=daily_partitions,
    description="Calibrates the LLM judge for one day; kept apart so a biased judge never "
                "blocks the data pipeline.",
)

release_job = dg.define_asset_job(
    "release",
    selection=dg.AssetSelection.assets(*RELEASE_ASSETS),
    description="Builds the release candidate for a window, runs every gate, promotes.",
)
