"""redacted_traces and the re-identification vault.

Redaction happens before anything reaches selection, a reviewer or the UI. The token -> value
mapping is sealed with the vault key and stored in the restricted zone, never beside the rows.
A second, independent scan (the residue check) blocks everything downstream on a miss.
"""


import dagster as dg
import pyarrow as pa

from feedback_pipeline.core.contract import TRACE_SCHEMA
from feedback_pipeline.core.fingerprint import fingerprints
from feedback_pipeline.core.redaction import Redactor
from feedback_pipeline.core.texts import REDACTED_TRACE_TEXTS, residue_in_table
from feedback_pipeline.core.vault import (
    SEALED_SCHEMA,
    corpus_token_key,
    resolve_vault_key,
    seal_vault,
)
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, WAREHOUSE_IO, counts_table, id_list
from feedback_pipeline.storage import RESTRICTED, BatchStream, PartitionBatches


def residue_check_result(
    check_name: str, asset_key: str, offending: list[str], kinds: dict[str, int], scanned: int
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rule": "independent residue scan (core.redaction.find_residue) finds nothing raw",
            "rows_scanned": scanned,
            "offending_rows": len(offending),
            "offending_ids": id_list(offending),
            "kinds": counts_table(kinds, "kind") if kinds else dg.MetadataValue.md("none"),
        },
    )


REDACTED_SCHEMA = TRACE_SCHEMA.append(pa.field("redaction_version", pa.string())).append(
    pa.field("prompt_fingerprint", pa.string()))


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
                                   blocking=True,
                                   description="An independent scan finds no raw identifier or "
                                   "secret in any redacted text.")],
)
def redacted_traces(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    raw_traces: PartitionBatches):
    """Streams the day batch by batch: memory stays one batch whatever the day's size."""
    policy = pipeline.policy
    deny_terms = pipeline.deny_terms()
    key = resolve_vault_key()
    redactor = Redactor(
        deny_terms,
        version=policy.redaction_version,
        corpus_key=corpus_token_key(key) if policy.corpus_stable_tokens else None,
    )
    vault = pipeline.storage.spool(RESTRICTED, SEALED_SCHEMA)
    offending: list[str] = []
    kinds: dict[str, int] = {}
    tokens_by_kind: dict[str, int] = {}
    scanned = 0

    def redacted_batches():
        nonlocal scanned
        for frame in raw_traces.iter_frames():
            redacted, mapping = redactor.redact_traces(frame)
            redacted["prompt_fingerprint"] = fingerprints(redacted["prompt"])
            vault.write(seal_vault(mapping, key))
            for kind, count in mapping["kind"].value_counts().items():
                tokens_by_kind[str(kind)] = tokens_by_kind.get(str(kind), 0) + int(count)
            table = pa.Table.from_pandas(redacted, schema=REDACTED_SCHEMA, preserve_index=False)
            bad, found = residue_in_table(table, REDACTED_TRACE_TEXTS, deny_terms)
            offending.extend(bad)
            for kind, count in found.items():
                kinds[kind] = kinds.get(kind, 0) + count
            scanned += len(redacted)
            yield table

    yield dg.Output(
        BatchStream(REDACTED_SCHEMA, redacted_batches()),
        output_name="redacted_traces",
        metadata={"redaction_version": policy.redaction_version},
    )
    yield dg.Output(vault.stream(), output_name="reidentification_vault",
                    metadata={"key_id": key.key_id,
                              "tokens_by_kind": counts_table(tokens_by_kind, "kind")
                              if tokens_by_kind else dg.MetadataValue.md("none")})
    yield residue_check_result("no_redaction_residue", "redacted_traces", offending, kinds,
                               scanned)
