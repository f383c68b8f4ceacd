"""The one daily partitions definition: a partition is a UTC day of trace data."""

import dagster as dg

PARTITIONS_START = "2026-05-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
