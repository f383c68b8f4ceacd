"""raw_traces: landed trace files validated against the contract, bad lines quarantined.

Both tables live in the restricted zone and are never previewed in the UI; metadata carries
counts and reasons only.
"""


import itertools
from collections import deque
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pyarrow as pa

from feedback_pipeline.core.contract import (
    TRACE_SCHEMA,
    parse_trace_lines,
    quarantine_row,
    quarantine_to_table,
    read_lines,
    traces_to_table,
)
from feedback_pipeline.core.parallel import ordered_map, stage_workers
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, counts_table
from feedback_pipeline.storage import BatchStream

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
BATCH_ROWS = 20_000


def parse_trace_chunk(item: tuple[list[tuple[int, str]], str, str]) -> tuple[pa.Table, list[dict]]:
    """(valid rows, quarantine rows) of one chunk of numbered lines; runs in a worker."""
    lines, source, day = item
    parsed = parse_trace_lines(lines, source, day)
    return traces_to_table(parsed.rows), parsed.quarantine


def ingest_batches(pipeline: PipelineResource, day: str,
                   quarantine: list[dict]) -> Iterator[pa.Table]:
    """Valid trace rows of one landing day in batches (chunks parsed on every core); bad lines,
    and ids repeated anywhere in the day, are appended to `quarantine`."""
    storage = pipeline.storage
    seen: set[str] = set()
    submitted: deque[list[tuple[int, str]]] = deque()

    def chunks():
        for path in storage.landing_files("traces", day, TRACE_SUFFIXES):
            lines = read_lines(path)
            while chunk := list(itertools.islice(lines, BATCH_ROWS)):
                submitted.append(chunk)
                yield chunk, storage.relative(path), day

    for table, bad in ordered_map(parse_trace_chunk, chunks(), stage_workers()):
        chunk = submitted.popleft()
        quarantine.extend(bad)
        ids = table.column("trace_id").to_pylist()
        repeated = [i for i, tid in enumerate(ids) if tid in seen]
        seen.update(ids)
        if repeated:
            text = dict(chunk)
            sources = table.column("source_file").to_pylist()
            numbers = table.column("source_line").to_pylist()
            quarantine.extend(quarantine_row(
                sources[i], numbers[i], f"trace_id {ids[i]!r} already seen in this partition",
                text[numbers[i]], ids[i]) for i in repeated)
            keep = np.ones(len(ids), dtype=bool)
            keep[repeated] = False
            table = table.filter(pa.array(keep))
        if table.num_rows:
            yield table


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
