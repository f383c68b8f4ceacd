"""raw_traces: landed trace files validated against the contract, bad lines quarantined.

Both tables live in the restricted zone and are never previewed in the UI; metadata carries
counts and reasons only.
"""


import itertools
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from feedback_pipeline.core.contract import (
    TRACE_SCHEMA,
    parse_trace_lines,
    quarantine_to_table,
    read_lines,
    traces_to_table,
)
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, counts_table
from feedback_pipeline.storage import BatchStream

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
BATCH_ROWS = 20_000


def ingest_batches(pipeline: PipelineResource, day: str,
                   quarantine: list[dict]) -> Iterator[pa.Table]:
    """Valid trace rows of one landing day in batches; bad lines are appended to `quarantine`."""
    storage = pipeline.storage
    seen: set[str] = set()
    for path in storage.landing_files("traces", day, TRACE_SUFFIXES):
        lines = read_lines(path)
        while True:
            chunk = list(itertools.islice(lines, BATCH_ROWS))
            if not chunk:
                break
            parsed = parse_trace_lines(chunk, storage.relative(path), day, seen)
            quarantine.extend(parsed.quarantine)
            if parsed.rows:
                yield traces_to_table(parsed.rows)


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
    bad: list[dict] = []
    files = storage.landing_files("traces", day, TRACE_SUFFIXES)
    yield dg.Output(BatchStream(TRACE_SCHEMA, ingest_batches(pipeline, day, bad)),
                    output_name="raw_traces", metadata={"files": len(files)})
    quarantine = quarantine_to_table(bad)
    reasons: dict[str, int] = {}
    for reason in quarantine.column("reason").to_pylist():
        key = reason.split(" (")[0].split("'")[0][:80]
        reasons[key] = reasons.get(key, 0) + 1
    if quarantine.num_rows:
        context.log.warning(f"{quarantine.num_rows} trace line(s) quarantined on {day}; "
                            "see restricted/trace_quarantine")
    yield dg.Output(
        quarantine,
        output_name="trace_quarantine",
        metadata={"dagster/row_count": quarantine.num_rows,
                  "reasons": counts_table(reasons, "reason") if reasons
                  else dg.MetadataValue.md("none")},
    )
