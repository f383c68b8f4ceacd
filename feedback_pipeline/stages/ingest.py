"""raw_traces: landed trace files validated against the contract, bad lines quarantined.

Both tables live in the restricted zone and are never previewed in the UI; metadata carries
counts and reasons only.
"""


import dagster as dg

from feedback_pipeline.core.contract import (
    ParsedLines,
    parse_trace_lines,
    quarantine_to_table,
    read_lines,
    traces_to_table,
)
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, counts_table, value_counts

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")


def ingest_day(pipeline: PipelineResource, day: str) -> tuple[ParsedLines, int]:
    """Parse every trace file of one landing day; (rows and quarantine, file count)."""
    storage = pipeline.storage
    files = storage.landing_files("traces", day, TRACE_SUFFIXES)
    parsed, seen = ParsedLines(), set()
    for path in files:
        parsed.extend(parse_trace_lines(read_lines(path), storage.relative(path), day, seen))
    return parsed, len(files)


@dg.multi_asset(
    outs={
        "raw_traces": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                  description="Validated raw traces (restricted zone)."),
        "trace_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                        description="Trace lines that broke the contract, "
                                        "with file, line and reason (restricted zone)."),
    },
    partitions_def=daily_partitions,
    group_name="ingest",
    can_subset=False,
)
def raw_traces(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    day = context.partition_key
    storage = pipeline.storage
    if not storage.landing_dir("traces", day).exists() and storage.has_table(
            "warehouse", "redacted_traces", day):
        raise dg.Failure(description=f"the raw traces of {day} were deleted by retention; its "
                         "redacted tables are kept and cannot be rebuilt from raw")
    parsed, n_files = ingest_day(pipeline, day)
    quarantine = quarantine_to_table(parsed.quarantine)
    reasons = {}
    for reason in quarantine.column("reason").to_pylist():
        key = reason.split(" (")[0].split("'")[0][:80]
        reasons[key] = reasons.get(key, 0) + 1
    if quarantine.num_rows:
        context.log.warning(
            f"{quarantine.num_rows} trace line(s) quarantined on {day}; "
            "see restricted/trace_quarantine"
        )
    yield dg.Output(
        traces_to_table(parsed.rows),
        output_name="raw_traces",
        metadata={"dagster/row_count": len(parsed.rows), "files": n_files,
                  "quarantined_lines": quarantine.num_rows},
    )
    yield dg.Output(
        quarantine,
        output_name="trace_quarantine",
        metadata={"dagster/row_count": quarantine.num_rows,
                  "reasons": counts_table(reasons, "reason"),
                  "by_file": counts_table(value_counts(
                      quarantine.column("source_file").to_pandas()), "file")
                  if quarantine.num_rows else dg.MetadataValue.md("none")},
    )
