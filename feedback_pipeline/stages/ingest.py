"""raw_traces: landed trace files validated against the contract, bad lines quarantined.

Both tables live in the restricted zone and are never previewed in the UI; metadata carries
counts and reasons only (reasons name the field and the rule, never a value).

One bad line or file never stops a day: every fault below becomes a quarantine row and every
valid line flows on.

- A line is quarantined for breaking the contract (core.contract), for being longer than the
  policy's `max_line_bytes` (skipped unread, so reading holds about one limit at most), for
  JSON the parser refuses (nested too deep, an integer too long) or a lone surrogate escape,
  for bytes that are not UTF-8, and for what Python's parser takes but JSON does not define
  (NaN / Infinity, a number that overflows to infinity, a field named twice in one object).
  A UTF-8 byte order mark at the start of a file is not part of its first line.
- An entry of the day's folder that is not read is one file-level row, never passed over:
  a file of another kind (.json, .jsonl.zst, .jsonl.bz2, ...), a folder, a broken link or a
  link loop. A file that cannot be opened or read (an OSError) keeps the lines read before
  the error; the rest is one file-level row naming the error class.
- A `.gz` file that is not gzip is one file-level row (line_number 0, as for other
  file-level rows), "not a gzip file".
  A gzip stream that breaks off or is corrupt keeps every complete line read before the
  break; the line in progress and the rest become one file-level row naming the last kept
  line. The other files of the day flow on.
- A trace id seen earlier in the day (any file, any chunk) is quarantined ("trace_id already
  seen in this partition"); one already stored in raw_traces of another day is quarantined
  ("trace_id already landed on <day>", the earliest such day). Only days whose raw partition
  is still kept (see retention) can be checked.
"""


import fnmatch
import functools
from collections import deque
from collections.abc import Iterable, Iterator

import dagster as dg
import numpy as np
import pyarrow as pa

from feedback_pipeline.core.contract import (
    REPEATED_TRACE_ID,
    TRACE_SCHEMA,
    not_accepted_reason,
    parse_trace_lines,
    quarantine_row,
    quarantine_to_table,
    read_lines,
    reason_category,
    traces_to_table,
)
from feedback_pipeline.core.contract import unread_entries as contract_unread_entries
from feedback_pipeline.core.runtime import ordered_calls
from feedback_pipeline.core.sources import SourceSpec, SourceStats, native_lines
from feedback_pipeline.core.texts import TextLayout, raw_looking_fields, raw_looking_reason
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, counts_table, max_line_bytes
from feedback_pipeline.storage import RESTRICTED, BatchStream, Storage

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
BATCH_ROWS = 20_000
CHUNK_CHARS = 64 * 1024 * 1024  # a chunk also ends here, so long lines keep chunks bounded


def parse_trace_chunk(lines: list[tuple[int, str]], *, source: str, day: str
                      ) -> tuple[pa.Table, list[dict]]:
    """(valid rows, quarantine rows) of one chunk of numbered lines; runs in a worker."""
    parsed = parse_trace_lines(lines, source, day)
    return traces_to_table(parsed.rows), parsed.quarantine


def _chunks_of(lines: Iterable[tuple[int, str]], rows: int,
               chars: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    size = 0
    for item in lines:
        chunk.append(item)
        text = item[1]  # a line, a LineFault (an undecodable line holds its raw line), or a
        # source adapter's fault (its raw line)
        size += len(text) if text.__class__ is str else len(getattr(text, "raw_line", text))
        if len(chunk) >= rows or size >= chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class LandedElsewhere:
    """Which trace ids are already stored in raw_traces of another day.

    The other days are read once, at construction: one DuckDB query takes two independent
    64-bit digests of every stored id (DuckDB's `hash` of the id and of the id reversed) with
    the index of its day, sorted (in numpy) by the first. A chunk's ids get the same digests on the same
    connection and are looked up with `np.searchsorted`; an id counts as landed when both
    digests match a stored id (128 bits: a false match would take about 2^64 ids), and its
    earliest such day is named. No chunk reads the other days again: one semi-join per chunk
    over every other day grew with the days kept, and confirming hash hits with an exact query
    did too once duplicates came from many days."""

    def __init__(self, storage: Storage, day: str) -> None:
        self.days = sorted(d for d in storage.table_days(RESTRICTED, "raw_traces") if d != day)
        self.con = storage.connect() if self.days else None
        self.first = np.empty(0, dtype=np.uint64)
        self.second = np.empty(0, dtype=np.uint64)
        self.day_of = np.empty(0, dtype=np.uint16)
        if self.con is None:
            return
        union = " UNION ALL ".join(
            f"SELECT {_DIGESTS}, {i}::USMALLINT AS d FROM "
            f"{storage.scan_sql(RESTRICTED, 'raw_traces', [d])} WHERE trace_id IS NOT NULL"
            for i, d in enumerate(self.days))
        found = self.con.sql(f"SELECT h1, h2, d FROM ({union})").fetchnumpy()
        first = np.asarray(found["h1"], dtype=np.uint64)
        order = np.argsort(first)  # numpy's sort of 64-bit keys beats an ORDER BY here
        self.first = first[order]
        self.second = np.asarray(found["h2"], dtype=np.uint64)[order]
        self.day_of = np.asarray(found["d"], dtype=np.uint16)[order]

    def days_of(self, ids: pa.Table) -> dict[str, str]:
        """trace id -> earliest other day it landed on, for the ids of `ids` that did."""
        if self.con is None or not ids.num_rows or not self.first.size:
            return {}
        self.con.register("chunk_ids", ids)
        try:
            hashed = self.con.sql(f"SELECT trace_id, {_DIGESTS} FROM chunk_ids "
                                  "WHERE trace_id IS NOT NULL").fetchnumpy()
        finally:
            self.con.unregister("chunk_ids")
        first = np.asarray(hashed["h1"], dtype=np.uint64)
        left = np.searchsorted(self.first, first, side="left")
        right = np.searchsorted(self.first, first, side="right")
        hits = np.flatnonzero(right > left)
        if not hits.size:
            return {}
        second = np.asarray(hashed["h2"], dtype=np.uint64)
        trace_ids = hashed["trace_id"]
        found: dict[str, str] = {}
        for i in hits.tolist():
            lo, hi = int(left[i]), int(right[i])
            same = self.second[lo:hi] == second[i]
            if same.any():  # days are indexed in date order: the least is the earliest
                found[str(trace_ids[i])] = self.days[int(self.day_of[lo:hi][same].min())]
        return found

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


# Two digests of different inputs (the id and the id reversed): a sequential hash whose state
# collides on two ids carries the collision to any common suffix, never to their reversals.
# MD5 would do as the second, at ten times the cost over 30 days of ids.
_DIGESTS = "hash(trace_id) AS h1, hash(reverse(trace_id)) AS h2"


ID_FIELDS = TextLayout("trace_id", ("trace_id", "slice", "prompt_template_version",
                                     "policy_version"), ("candidate_id", "model_id"),
                       every_string=False)
"""The identifier fields of a trace: never redacted (they key every table), so a value the
residue scanner would flag there is quarantined before it can leave the restricted zone."""


NOT_A_TRACE_FILE = not_accepted_reason("trace", TRACE_SUFFIXES)


def unread_entries(storage: Storage, day: str) -> list[tuple[str, str]]:
    """(source name, reason) of every entry of the day's landing folder that ingest does not
    read (core.contract.unread_entries: a file of another kind such as .json, .jsonl.zst or
    .jsonl.bz2, a folder, a broken link or a loop, a left-over temporary file); each becomes
    one file-level quarantine row."""
    folder = storage.landing_dir("traces", day)
    if not folder.is_dir():
        return []
    return contract_unread_entries(folder, storage.relative(folder), TRACE_SUFFIXES,
                                   NOT_A_TRACE_FILE)


def source_of(name: str, sources: list[tuple[str, SourceSpec]]) -> SourceSpec | None:
    """The declared source of a landed file: the first glob of config/sources.yaml matching
    its name, or None (the native contract)."""
    return next((spec for glob, spec in sources if fnmatch.fnmatchcase(name, glob)), None)


def ingest_batches(pipeline: PipelineResource, day: str, quarantine: list[dict],
                   line_limit: int | None = None,
                   stats: SourceStats | None = None,
                   batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """Valid trace rows of one landing day in batches (chunks parsed on every core); bad lines
    and files, ids repeated anywhere in the day and ids already landed on another day are
    appended to `quarantine`."""
    storage = pipeline.storage
    limit = line_limit if line_limit is not None else max_line_bytes(pipeline)
    seen: set[str] = set()
    submitted: deque[list[tuple[int, str]]] = deque()
    landed = LandedElsewhere(storage, day)
    deny_terms = tuple(pipeline.deny_terms()) if storage.config_path(
        "redaction").exists() else ()

    declared = pipeline.trace_sources()

    def chunks():
        for name, reason in unread_entries(storage, day):
            quarantine.append(quarantine_row(name, 0, reason, "", None))
        for path in storage.landing_files("traces", day, TRACE_SUFFIXES):
            lines = read_lines(path, limit)
            spec = source_of(path.name, declared)
            if spec is not None and spec.format != "native":
                lines = native_lines(lines, spec, stats)
            for chunk in _chunks_of(lines, batch_rows, CHUNK_CHARS):
                submitted.append(chunk)
                yield functools.partial(parse_trace_chunk, chunk,
                                        source=storage.relative(path), day=day)

    try:
        for table, bad in ordered_calls(chunks(), pipeline.workers):
            chunk = submitted.popleft()
            quarantine.extend(bad)
            if not table.num_rows:
                continue
            ids = table.column("trace_id").to_pylist()
            reasons = {i: REPEATED_TRACE_ID for i, tid in enumerate(ids) if tid in seen}
            seen.update(ids)
            elsewhere = landed.days_of(table.select(["trace_id"]))
            if elsewhere:
                reasons.update({i: f"trace_id already landed on {elsewhere[tid]}"
                                for i, tid in enumerate(ids)
                                if tid in elsewhere and i not in reasons})
            for i, field in raw_looking_fields(table, ID_FIELDS, deny_terms).items():
                reasons.setdefault(i, raw_looking_reason(field))
            if reasons:
                text = dict(chunk)
                sources = table.column("source_file").to_pylist()
                numbers = table.column("source_line").to_pylist()
                quarantine.extend(quarantine_row(
                    sources[i], numbers[i], reason, text[numbers[i]],
                    None if reason.startswith("trace_id looks like") else ids[i])
                    for i, reason in sorted(reasons.items()))
                keep = np.ones(len(ids), dtype=bool)
                keep[list(reasons)] = False
                table = table.filter(pa.array(keep))
            if table.num_rows:
                yield table
    finally:
        landed.close()


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
    stats = SourceStats()
    yield dg.Output(BatchStream(TRACE_SCHEMA, ingest_batches(pipeline, day, bad, stats=stats)),
                    output_name="raw_traces", metadata={"files": len(files)})
    if stats.spans_seen:
        context.log.info(f"{stats.spans_seen} span(s) read on {day}; {stats.summary()}")
    quarantine = quarantine_to_table(bad)
    reasons: dict[str, int] = {}
    for reason in quarantine.column("reason").to_pylist():
        key = reason_category(reason)
        reasons[key] = reasons.get(key, 0) + 1
    if quarantine.num_rows:
        context.log.warning(f"{quarantine.num_rows} trace line(s) quarantined on {day}; "
                            "see restricted/trace_quarantine")
    yield dg.Output(
        quarantine,
        output_name="trace_quarantine",
        metadata={"dagster/row_count": quarantine.num_rows,
                  "spans_without_genai_content_skipped": stats.spans_skipped,
                  "reasons": counts_table(reasons, "reason") if reasons
                  else dg.MetadataValue.md("none")},
    )
