"""redacted_traces and the re-identification vault.

Redaction happens before anything reaches selection, a reviewer or the UI. The token -> value
mapping is sealed with the vault key and stored in the restricted zone, never beside the rows.
A second, independent scan (the residue check) blocks everything downstream on a miss.
"""


import functools

import dagster as dg

from feedback_pipeline.core.redaction.batch import REDACTED_SCHEMA, RedactionJob, redact_day
from feedback_pipeline.core.vault import SEALED_SCHEMA
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import KeysResource, PipelineResource
from feedback_pipeline.stages.common import (
    RESTRICTED_IO,
    WAREHOUSE_IO,
    counts_table,
    residue_check_result,
)
from feedback_pipeline.storage import RESTRICTED, BatchStream, PartitionBatches

BATCH_ROWS = 10_000


@dg.multi_asset(
    outs={
        "redacted_traces": dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
                                       description="Traces with every identifier and secret "
                                       "replaced by a stable token; safe for reviewers."),
        "reidentification_vault": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                              description="Sealed token -> value mapping "
                                              "(restricted zone, encrypted)."),
    },
    partitions_def=daily_partitions,
    group_name="redaction",
    can_subset=False,
    check_specs=[dg.AssetCheckSpec("no_redaction_residue", asset="redacted_traces",
                                   partitions_def=daily_partitions,
                                   blocking=True,
                                   description="An independent scan finds no raw identifier or "
                                   "secret in any redacted text.")],
)
def redacted_traces(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    keys: KeysResource, raw_traces: PartitionBatches):
    """Streams the day batch by batch on every core: memory stays a few batches whatever the
    day's size. With corpus-stable tokens, a second pass replaces a value found in one batch
    where it recurs bare in another (`redact_day`)."""
    policy = pipeline.policy
    key = keys.vault_key_value()
    job = RedactionJob(tuple(pipeline.deny_terms()), policy.redaction_version,
                       policy.corpus_stable_tokens, key)
    vault = pipeline.storage.spool(RESTRICTED, SEALED_SCHEMA)
    offending: list[str] = []
    kinds: dict[str, int] = {}
    tokens_by_kind: dict[str, int] = {}
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
            for kind, count in result.tokens_by_kind.items():
                tokens_by_kind[kind] = tokens_by_kind.get(kind, 0) + count
            offending.extend(result.offending)
            for kind, count in result.residue_kinds.items():
                kinds[kind] = kinds.get(kind, 0) + count
            scanned += result.table.num_rows
            yield result.table

    yield dg.Output(
        BatchStream(REDACTED_SCHEMA, redacted_batches()),
        output_name="redacted_traces",
        metadata={"redaction_version": policy.redaction_version},
    )
    vault_metadata = {"key_id": key.key_id,
                      "tokens_by_kind": counts_table(tokens_by_kind, "kind")
                      if tokens_by_kind else dg.MetadataValue.md("none")}
    if policy.corpus_stable_tokens:  # batches where a value found elsewhere in the day recurred
        vault_metadata["batches_redone_for_day_wide_values"] = redone
    yield dg.Output(vault.stream(), output_name="reidentification_vault",
                    metadata=vault_metadata)
    yield residue_check_result("no_redaction_residue", "redacted_traces", offending, kinds,
                               scanned)
