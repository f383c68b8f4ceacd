"""redacted_traces and the re-identification vault.

Redaction happens before anything reaches selection, a reviewer or the UI. The token -> value
mapping is sealed with the vault key and stored in the restricted zone, never beside the rows.
A second, independent scan (the residue check) blocks everything downstream on a miss.
"""


import functools
from collections import Counter
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa

from feedback_pipeline.core.redaction.batch import (
    REDACTED_SCHEMA,
    RedactionJob,
    redact_batch,
    redact_day,
)
from feedback_pipeline.core.runtime import ordered_map
from feedback_pipeline.core.vault import SEALED_SCHEMA
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import KeysResource, PipelineResource
from feedback_pipeline.stages.common import (
    RESTRICTED_IO,
    SHARD_STEP_IO,
    WAREHOUSE_IO,
    counts_table,
    residue_check_result,
)
from feedback_pipeline.storage import (
    RESTRICTED,
    BatchStream,
    PartitionBatches,
    StagedTable,
    read_staged,
    remove_staged,
)

BATCH_ROWS = 10_000


REDACTED_OUTS = {
    "redacted_traces": dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
                                   description="Traces with every identifier and secret "
                                   "replaced by a stable token; safe for reviewers."),
    "reidentification_vault": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                          description="Sealed token -> value mapping "
                                          "(restricted zone, encrypted)."),
}
RESIDUE_CHECK = dg.AssetCheckSpec("no_redaction_residue", asset="redacted_traces",
                                  partitions_def=daily_partitions, blocking=True,
                                  description="An independent scan finds no raw identifier or "
                                  "secret in any redacted text.")


@dg.multi_asset(
    outs=REDACTED_OUTS,
    partitions_def=daily_partitions,
    group_name="redaction",
    can_subset=False,
    check_specs=[RESIDUE_CHECK],
)
def redacted_traces(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    keys: KeysResource, raw_traces: PartitionBatches):
    """Streams the day batch by batch on every core: memory stays a few batches whatever the
    day's size. With corpus-stable tokens, a second pass replaces a value found in one batch
    where it recurs bare in another (`redact_day`)."""
    policy = pipeline.policy
    job = redaction_job(pipeline, keys)
    vault = pipeline.storage.spool(RESTRICTED, SEALED_SCHEMA)
    offending: list[str] = []
    kinds: Counter[str] = Counter()
    tokens_by_kind: Counter[str] = Counter()
    scanned = 0
    redone = 0

    def redacted_batches():
        nonlocal scanned, redone
        results = redact_day(functools.partial(raw_traces.iter_batches, batch_size=BATCH_ROWS),
                             job=job, workers=pipeline.workers,
                             spool=functools.partial(pipeline.storage.spool, RESTRICTED))
        for result in results:
            redone += result.redone
            vault.write(result.sealed)
            tokens_by_kind.update(result.tokens_by_kind)
            offending.extend(result.offending)
            kinds.update(result.residue_kinds)
            scanned += result.table.num_rows
            yield result.table

    yield dg.Output(
        BatchStream(REDACTED_SCHEMA, redacted_batches()),
        output_name="redacted_traces",
        metadata={"redaction_version": policy.redaction_version},
    )
    metadata = vault_metadata(job.key.key_id, tokens_by_kind)
    if policy.corpus_stable_tokens:  # batches where a value found elsewhere in the day recurred
        metadata["batches_redone_for_day_wide_values"] = redone
    yield dg.Output(vault.stream(), output_name="reidentification_vault", metadata=metadata)
    yield residue_check_result("no_redaction_residue", "redacted_traces", offending, kinds,
                               scanned)


def redaction_job(pipeline: PipelineResource, keys: KeysResource) -> RedactionJob:
    policy = pipeline.policy
    return RedactionJob(tuple(pipeline.deny_terms()), policy.redaction_version,
                        policy.corpus_stable_tokens, keys.vault_key_value())


def vault_metadata(key_id: str, tokens_by_kind: dict[str, int]) -> dict:
    return {"key_id": key_id,
            "tokens_by_kind": counts_table(tokens_by_kind, "kind")
            if tokens_by_kind else dg.MetadataValue.md("none")}


# --- sharded days ------------------------------------------------------------------------------
#
# With `shards_per_day: N` (and without corpus-stable tokens, whose second pass needs every
# value of the day in one place), redacted_traces is a graph: the plan cuts the day's raw rows
# into N runs of whole batches, one executor step per shard redacts its batches (on every core
# of its worker) and stages them, and the merge streams the shards back in order and runs the
# residue gate on their findings. Every batch is the batch an unsharded run redacts
# (`PartitionBatches.iter_range`), so the tables are the same.


@dataclass(frozen=True)
class RedactionShard:
    """Rows `start` to `stop` of a day's raw traces: whole batches of BATCH_ROWS."""

    day: str
    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class RedactedShard:
    """Where a redacted shard's rows and vault rows are staged, rows per batch, and what the
    residue scan and the tokens counted (ids and counts, never a value)."""

    index: int
    rows_path: str
    batch_rows: tuple[int, ...]
    sealed_path: str
    batch_sealed: tuple[int, ...]
    offending: tuple[str, ...]
    residue_kinds: dict[str, int]
    tokens_by_kind: dict[str, int]


def plan_redaction_shards(day: str, rows: int, shards: int,
                          batch_rows: int | None = None) -> list[RedactionShard]:
    """`rows` in at most `shards` contiguous runs of whole batches (of BATCH_ROWS), as even
    as batches allow; a day with no rows still plans its first shard, so its merge runs."""
    batch_rows = batch_rows or BATCH_ROWS
    batches = -(-rows // batch_rows)
    per = max(1, -(-batches // shards))
    plan = [RedactionShard(day, k, k * per * batch_rows, min(rows, (k + 1) * per * batch_rows))
            for k in range(shards) if k * per * batch_rows < rows]
    return plan or [RedactionShard(day, 0, 0, 0)]


def redact_shard(pipeline: PipelineResource, job: RedactionJob,
                 shard: RedactionShard) -> RedactedShard:
    """Redact one shard's batches (on every core) and stage the rows and vault rows in the
    restricted zone for the merge."""
    storage = pipeline.storage
    label = f"redacted_traces-{shard.day}-shard{shard.index}"
    rows = StagedTable(storage, RESTRICTED, REDACTED_SCHEMA, label)
    sealed = StagedTable(storage, RESTRICTED, SEALED_SCHEMA, label + "-vault")
    batch_rows: list[int] = []
    batch_sealed: list[int] = []
    offending: list[str] = []
    kinds: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    raw = storage.batches(RESTRICTED, "raw_traces", shard.day)
    try:
        for result in ordered_map(functools.partial(redact_batch, job=job),
                                  raw.iter_range(shard.start, shard.stop, BATCH_ROWS),
                                  pipeline.workers):
            rows.write(result.table)
            sealed.write(result.sealed)
            batch_rows.append(result.table.num_rows)
            batch_sealed.append(len(result.sealed))
            offending.extend(result.offending)
            kinds.update(result.residue_kinds)
            tokens.update(result.tokens_by_kind)
    finally:
        rows_path, sealed_path = rows.close(), sealed.close()
    return RedactedShard(shard.index, rows_path, tuple(batch_rows), sealed_path,
                         tuple(batch_sealed), tuple(offending), dict(kinds), dict(tokens))


def sharded_redacted_traces(shards_per_day: int) -> dg.AssetsDefinition:
    """redacted_traces, the vault and the residue gate as plan -> one step per shard -> merge
    (see above); the same asset keys, partitions, check and tables as the unsharded asset."""

    @dg.op(name="plan_redaction_shards", out=dg.DynamicOut(io_manager_key=SHARD_STEP_IO))
    def plan(context: dg.OpExecutionContext, raw_traces: PartitionBatches):
        shards = plan_redaction_shards(context.partition_key, raw_traces.num_rows,
                                       shards_per_day)
        if len(shards) < shards_per_day:  # a batch is never split: say why fewer steps run
            context.log.info(f"{context.partition_key}: {len(shards)} of {shards_per_day} "
                             f"shards planned; a shard is one or more whole batches of "
                             f"{BATCH_ROWS} rows")
        for shard in shards:
            yield dg.DynamicOutput(shard, mapping_key=f"shard_{shard.index}")

    @dg.op(name="redact_shard", out=dg.Out(io_manager_key=SHARD_STEP_IO))
    def redact(pipeline: PipelineResource, keys: KeysResource,
               shard: RedactionShard) -> RedactedShard:
        return redact_shard(pipeline, redaction_job(pipeline, keys), shard)

    check_output = RESIDUE_CHECK.get_python_identifier()

    @dg.op(name="merge_redaction_shards",
           out={"redacted_traces": dg.Out(io_manager_key=WAREHOUSE_IO),
                "reidentification_vault": dg.Out(io_manager_key=RESTRICTED_IO),
                check_output: dg.Out(dg.Nothing, is_required=False)})
    def merge(pipeline: PipelineResource, keys: KeysResource, redacted: list):
        storage = pipeline.storage
        shards = sorted(redacted, key=lambda r: r.index)

        def staged(path: str, sizes: tuple[int, ...], schema: pa.Schema):
            for shard in shards:
                yield from read_staged(storage, getattr(shard, path), list(getattr(shard, sizes)),
                                       schema)

        tokens: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for shard in shards:
            tokens.update(shard.tokens_by_kind)
            kinds.update(shard.residue_kinds)
        yield dg.Output(BatchStream(REDACTED_SCHEMA, staged("rows_path", "batch_rows",
                                                            REDACTED_SCHEMA)),
                        output_name="redacted_traces",
                        metadata={"redaction_version": pipeline.policy.redaction_version})
        yield dg.Output(BatchStream(SEALED_SCHEMA, staged("sealed_path", "batch_sealed",
                                                          SEALED_SCHEMA)),
                        output_name="reidentification_vault",
                        metadata=vault_metadata(keys.vault_key_value().key_id, tokens))
        yield residue_check_result("no_redaction_residue", "redacted_traces",
                                   [i for shard in shards for i in shard.offending], kinds,
                                   sum(sum(shard.batch_rows) for shard in shards))
        remove_staged(storage, [path for shard in shards
                                for path in (shard.rows_path, shard.sealed_path)])

    @dg.graph_multi_asset(outs=REDACTED_OUTS, partitions_def=daily_partitions,
                          group_name="redaction", can_subset=False, check_specs=[RESIDUE_CHECK])
    def redacted_traces(raw_traces):
        traces, vault, residue = merge(plan(raw_traces).map(redact).collect())
        return {"redacted_traces": traces, "reidentification_vault": vault,
                check_output: residue}

    return redacted_traces
