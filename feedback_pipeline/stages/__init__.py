"""The Dagster layer: one module per stage, each a thin shell over feedback_pipeline.core."""

import warnings

# The per-day asset checks use a Dagster preview feature (AssetCheckSpec partitions_def), pinned
# to its patch release in pyproject.toml on purpose; its warning, repeated by every process that
# imports the stages (each step process of a multiprocess run), only buries the run's own lines.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
