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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa

from feedback_pipeline.core.contract import (
    QUARANTINE_SCHEMA,
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
from feedback_pipeline.stages.common import (
    RESTRICTED_IO,
    SHARD_STEP_IO,
    counts_table,
    max_line_bytes,
)
from feedback_pipeline.storage import (
    RESTRICTED,
    BatchStream,
    StagedTable,
    Storage,
    read_staged,
    remove_staged,
)

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
BATCH_ROWS = 10_000
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


def parsed_chunks(pipeline: PipelineResource, day: str, files: list, limit: int,
                  stats: SourceStats | None, batch_rows: int = BATCH_ROWS
                  ) -> Iterator[tuple[pa.Table, list[dict], list[tuple[int, str]]]]:
    """(valid rows, quarantine rows, the chunk's numbered lines) of each chunk of `files`, in
    file and line order, the chunks parsed on every core."""
    storage = pipeline.storage
    declared = pipeline.trace_sources()
    submitted: deque[list[tuple[int, str]]] = deque()

    def chunks():
        for path in files:
            lines = read_lines(path, limit)
            spec = source_of(path.name, declared)
            if spec is not None and spec.format != "native":
                lines = native_lines(lines, spec, stats)
            for chunk in _chunks_of(lines, batch_rows, CHUNK_CHARS):
                submitted.append(chunk)
                yield functools.partial(parse_trace_chunk, chunk,
                                        source=storage.relative(path), day=day)

    for table, bad in ordered_calls(chunks(), pipeline.workers):
        yield table, bad, submitted.popleft()


def deduplicated(pipeline: PipelineResource, day: str,
                 parsed: Iterable[tuple[pa.Table, list[dict], Callable[[], Mapping[int, Any]]]],
                 quarantine: list[dict]) -> Iterator[pa.Table]:
    """The parsed chunks of a day, in order, less every row whose trace id was seen earlier
    in the day or already landed on another day, or whose identifier fields look raw; each
    chunk's own quarantine rows, then those, are appended to `quarantine`. `parsed` gives
    (rows, quarantine rows, a function giving line text by line number) per chunk: the text
    is looked up only for a chunk with rows to quarantine, which most chunks are not."""
    storage = pipeline.storage
    seen: set[str] = set()
    landed = LandedElsewhere(storage, day)
    deny_terms = tuple(pipeline.deny_terms()) if storage.config_path(
        "redaction").exists() else ()
    try:
        for table, bad, text_of in parsed:
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
                text = text_of()
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


def ingest_batches(pipeline: PipelineResource, day: str, quarantine: list[dict],
                   line_limit: int | None = None,
                   stats: SourceStats | None = None,
                   batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """Valid trace rows of one landing day in batches (chunks parsed on every core); bad lines
    and files, ids repeated anywhere in the day and ids already landed on another day are
    appended to `quarantine`."""
    storage = pipeline.storage
    limit = line_limit if line_limit is not None else max_line_bytes(pipeline)

    def parsed():
        for name, reason in unread_entries(storage, day):
            quarantine.append(quarantine_row(name, 0, reason, "", None))
        files = storage.landing_files("traces", day, TRACE_SUFFIXES)
        for table, bad, chunk in parsed_chunks(pipeline, day, files, limit, stats, batch_rows):
            yield table, bad, functools.partial(dict, chunk)

    yield from deduplicated(pipeline, day, parsed(), quarantine)


RAW_TRACES_OUTS = {
    "raw_traces": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                              description="Validated raw traces (restricted zone)."),
    "trace_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                    description="Trace lines that broke the contract, "
                                    "with file, line and reason (restricted zone)."),
}


@dg.multi_asset(
    outs=RAW_TRACES_OUTS,
    partitions_def=daily_partitions,
    group_name="ingest",
    can_subset=False,
)
def raw_traces(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    day = context.partition_key
    refuse_retired_day(pipeline.storage, day)
    stats = SourceStats()
    yield from ingest_outputs(context, pipeline, functools.partial(
        ingest_batches, pipeline, day, stats=stats), stats)


def refuse_retired_day(storage: Storage, day: str) -> None:
    """A day whose raw traces retention deleted cannot be ingested again: its redacted tables
    are kept, and a run over no landed files would replace them with nothing."""
    if not storage.landing_dir("traces", day).exists() and storage.has_table(
            "warehouse", "redacted_traces", day):
        raise dg.Failure(description=f"the raw traces of {day} were deleted by retention; its "
                         "redacted tables are kept and cannot be rebuilt from raw")


def ingest_outputs(context: dg.OpExecutionContext, pipeline: PipelineResource,
                   batches: Callable[[list[dict]], Iterator[pa.Table]], stats: SourceStats):
    """raw_traces (streamed from `batches(quarantine)`, which appends the day's quarantine
    rows as it goes) and then trace_quarantine with its counts by reason."""
    day = context.partition_key
    storage = pipeline.storage
    bad: list[dict] = []
    files = storage.landing_files("traces", day, TRACE_SUFFIXES)
    yield dg.Output(BatchStream(TRACE_SCHEMA, batches(bad)),
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


# --- sharded days ------------------------------------------------------------------------------
#
# With `shards_per_day: N` in the policy, raw_traces is a graph of three ops: the plan splits
# the day's files into N shards of whole files (contiguous in file order, balanced by bytes),
# one executor step per shard parses its files (each on every core of its worker), and the
# merge streams the shards back in order (their staged rows are removed once both tables are
# written, so a merge that fails part way can be retried) through the same duplicate and raw-looking-id rules
# (`deduplicated`), so the tables are exactly those of an unsharded run. Dagster's
# multiprocess, Celery or Kubernetes executor runs the shard steps wherever it runs steps.

SHARD_LINE = "shard_line_text"
"""A parsed row's line text as its chunk held it: the merge quarantines a repeated id with
it, as an unsharded run does."""
SHARD_ROWS_SCHEMA = TRACE_SCHEMA.append(pa.field(SHARD_LINE, pa.string()))


@dataclass(frozen=True)
class TraceShard:
    """One shard of a landing day: whole files, named as they are in the day's folder."""

    day: str
    index: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class ParsedShard:
    """Where a parsed shard's rows and quarantine rows are staged, and how many of each every
    chunk had (the merge replays the chunks in order)."""

    index: int
    rows_path: str
    chunk_rows: tuple[int, ...]
    quarantine_path: str
    chunk_quarantine: tuple[int, ...]
    stats: SourceStats


def _size(path: Any) -> int:
    try:
        return max(int(path.stat().st_size), 1)
    except (OSError, AttributeError):
        return 1


def plan_shards(storage: Storage, day: str, shards: int) -> list[TraceShard]:
    """The day's files in `shards` contiguous runs of about equal bytes (a file is never
    split: one larger than a shard's share is a shard of its own). Shards left without files
    are not planned, except the first, so a day with no files still runs its merge."""
    files = storage.landing_files("traces", day, TRACE_SUFFIXES)
    sizes = [_size(p) for p in files]
    total = sum(sizes) or 1
    groups: list[list[str]] = [[] for _ in range(shards)]
    before = 0
    for path, size in zip(files, sizes, strict=True):
        groups[min(shards - 1, before * shards // total)].append(path.name)
        before += size
    return [TraceShard(day, k, tuple(names)) for k, names in enumerate(groups) if names or not k]


def parse_shard(pipeline: PipelineResource, shard: TraceShard) -> ParsedShard:
    """Parse one shard's files (on every core) and stage its rows and quarantine rows in the
    restricted zone for the merge."""
    storage = pipeline.storage
    wanted = set(shard.files)
    files = [p for p in storage.landing_files("traces", shard.day, TRACE_SUFFIXES)
             if p.name in wanted]
    label = f"raw_traces-{shard.day}-shard{shard.index}"
    rows = StagedTable(storage, RESTRICTED, SHARD_ROWS_SCHEMA, label)
    bad_rows = StagedTable(storage, RESTRICTED, QUARANTINE_SCHEMA, label + "-quarantine")
    stats = SourceStats()
    chunk_rows: list[int] = []
    chunk_bad: list[int] = []
    try:
        for table, bad, chunk in parsed_chunks(pipeline, shard.day, files,
                                               max_line_bytes(pipeline), stats):
            text = dict(chunk)
            lines = [text[n] for n in table.column("source_line").to_pylist()]
            rows.write(table.append_column(SHARD_LINE, pa.array(lines, pa.string())))
            bad_rows.write(quarantine_to_table(bad))
            chunk_rows.append(table.num_rows)
            chunk_bad.append(len(bad))
    finally:
        rows_path, bad_path = rows.close(), bad_rows.close()
    return ParsedShard(shard.index, rows_path, tuple(chunk_rows), bad_path, tuple(chunk_bad),
                       stats)


def _lines_by_number(table: pa.Table) -> dict[int, str]:
    return dict(zip(table.column("source_line").to_pylist(),
                    table.column(SHARD_LINE).to_pylist(), strict=True))


def merged_batches(pipeline: PipelineResource, day: str, shards: list[ParsedShard],
                   quarantine: list[dict]) -> Iterator[pa.Table]:
    """The parsed shards' rows in shard order, through the day's duplicate rules."""
    storage = pipeline.storage

    def parsed():
        for name, reason in unread_entries(storage, day):
            quarantine.append(quarantine_row(name, 0, reason, "", None))
        for shard in sorted(shards, key=lambda s: s.index):
            tables = read_staged(storage, shard.rows_path, list(shard.chunk_rows),
                                 SHARD_ROWS_SCHEMA)
            bads = read_staged(storage, shard.quarantine_path, list(shard.chunk_quarantine),
                               QUARANTINE_SCHEMA)
            for table, bad in zip(tables, bads, strict=True):
                yield (table.drop_columns([SHARD_LINE]).cast(TRACE_SCHEMA), bad.to_pylist(),
                       functools.partial(_lines_by_number, table))

    yield from deduplicated(pipeline, day, parsed(), quarantine)


def sharded_raw_traces(shards_per_day: int) -> dg.AssetsDefinition:
    """raw_traces and trace_quarantine as plan -> one step per shard -> merge (see above);
    the same asset keys, partitions and tables as the unsharded asset."""

    @dg.op(name="plan_trace_shards", out=dg.DynamicOut(io_manager_key=SHARD_STEP_IO))
    def plan(context: dg.OpExecutionContext, pipeline: PipelineResource):
        day = context.partition_key
        refuse_retired_day(pipeline.storage, day)
        shards = plan_shards(pipeline.storage, day, shards_per_day)
        if len(shards) < shards_per_day:  # a file is never split: say why fewer steps run
            context.log.info(f"{day}: {len(shards)} of {shards_per_day} shards planned; the "
                             f"day has {sum(len(s.files) for s in shards)} trace file(s), and "
                             "a shard is one or more whole files")
        for shard in shards:
            yield dg.DynamicOutput(shard, mapping_key=f"shard_{shard.index}")

    @dg.op(name="parse_trace_shard", out=dg.Out(io_manager_key=SHARD_STEP_IO))
    def parse(pipeline: PipelineResource, shard: TraceShard) -> ParsedShard:
        return parse_shard(pipeline, shard)

    @dg.op(name="merge_trace_shards",
           out={"raw_traces": dg.Out(io_manager_key=RESTRICTED_IO),
                "trace_quarantine": dg.Out(io_manager_key=RESTRICTED_IO)})
    def merge(context: dg.OpExecutionContext, pipeline: PipelineResource, parsed: list):
        day = context.partition_key
        stats = SourceStats(spans_seen=sum(p.stats.spans_seen for p in parsed),
                            spans_skipped=sum(p.stats.spans_skipped for p in parsed))
        yield from ingest_outputs(context, pipeline, functools.partial(
            merged_batches, pipeline, day, parsed), stats)
        remove_staged(pipeline.storage, [path for p in parsed
                                         for path in (p.rows_path, p.quarantine_path)])

    @dg.graph_multi_asset(outs=RAW_TRACES_OUTS, partitions_def=daily_partitions,
                          group_name="ingest", can_subset=False)
    def raw_traces():
        traces, quarantine = merge(plan().map(parse).collect())
        return {"raw_traces": traces, "trace_quarantine": quarantine}

    return raw_traces
