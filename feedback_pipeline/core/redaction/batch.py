"""One batch of raw traces through redaction, as a worker process runs it.

Everything the stage needs per batch happens here (tokens, fingerprints, sealing the vault rows,
the independent residue scan), so batches are independent and run on every core; only counts,
the redacted rows and the sealed rows come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import TRACE_SCHEMA
from feedback_pipeline.core.fingerprint import fingerprints_array
from feedback_pipeline.core.redaction import Redactor
from feedback_pipeline.core.texts import REDACTED_TRACE_TEXTS, residue_in_table
from feedback_pipeline.core.vault import VaultKey, corpus_token_key, seal_vault

REDACTED_SCHEMA = TRACE_SCHEMA.append(pa.field("redaction_version", pa.string())).append(
    pa.field("prompt_fingerprint", pa.string()))


@dataclass(frozen=True)
class RedactionJob:
    """The settings a worker needs; the key travels only over the pool's local pipe."""

    deny_terms: tuple[str, ...]
    version: str
    corpus_stable_tokens: bool
    key: VaultKey


@dataclass
class RedactedBatch:
    table: pa.Table
    sealed: pd.DataFrame
    offending: list[str] = field(default_factory=list)
    residue_kinds: dict[str, int] = field(default_factory=dict)
    tokens_by_kind: dict[str, int] = field(default_factory=dict)


@lru_cache(maxsize=4)
def _redactor(deny_terms: tuple[str, ...], version: str, corpus_key: bytes | None) -> Redactor:
    return Redactor(deny_terms, version=version, corpus_key=corpus_key)


def redact_batch(batch: pa.RecordBatch | pa.Table, *, job: RedactionJob) -> RedactedBatch:
    """Redacted rows (REDACTED_SCHEMA), sealed vault rows, and what the residue scan found.
    A worker's unit: map it with `functools.partial(redact_batch, job=job)`."""
    redactor = _redactor(job.deny_terms, job.version,
                         corpus_token_key(job.key) if job.corpus_stable_tokens else None)
    redacted, mapping = redactor.redact_traces(batch.to_pandas())
    redacted["prompt_fingerprint"] = fingerprints_array(redacted["prompt"]).to_pylist()
    table = pa.Table.from_pandas(redacted, schema=REDACTED_SCHEMA, preserve_index=False)
    offending, kinds = residue_in_table(table, REDACTED_TRACE_TEXTS, job.deny_terms)
    tokens = {str(k): int(n) for k, n in mapping["kind"].value_counts().items()}
    return RedactedBatch(table, seal_vault(mapping, job.key), offending, kinds, tokens)
