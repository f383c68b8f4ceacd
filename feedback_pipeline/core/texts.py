"""Where the reviewer-visible text of each table lives, read column-wise for the residue scan.

A residue check must see every text a reviewer could see; listing the columns once per table
(and reading them straight from Arrow) keeps the scans cheap and the lists in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedback_pipeline.core.redaction import residue_flags


@dataclass(frozen=True)
class TextLayout:
    """The text columns of a table, and the text fields of the structs in one list column.
    With `every_string`, every other string column is scanned too: ids, slices, versions and
    labels leave the restricted zone as surely as prompts do."""

    id_field: str
    columns: tuple[str, ...]
    list_fields: tuple[str, ...] = ()
    list_column: str = "candidates"
    every_string: bool = True

    def scanned(self, schema: pa.Schema) -> list[str]:
        """The table columns this layout reads from `schema`, the id first."""
        names = set(schema.names)
        wanted = [self.id_field, *self.columns, self.list_column]
        if self.every_string:
            wanted += [f.name for f in schema if _is_text(f.type) or _struct_texts(f.type)]
        return [c for c in dict.fromkeys(wanted) if c in names]


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _struct_texts(kind: pa.DataType) -> list[str]:
    """The string fields of a list-of-struct column's structs (chat messages), else []."""
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return []
    inner = kind.value_type
    if not pa.types.is_struct(inner):
        return []
    return [inner.field(i).name for i in range(inner.num_fields) if _is_text(inner.field(i).type)]


REDACTED_TRACE_TEXTS = TextLayout("trace_id", ("prompt", "context", "approved_answer",
                                               "extra_json"), ("text", "generation"))
REVIEW_TASK_TEXTS = TextLayout("task_id", ("prompt", "context", "conversation", "candidate_a",
                                           "candidate_b", "approved_answer"))
FOLLOW_UP_TASK_TEXTS = TextLayout("task_id", (*REVIEW_TASK_TEXTS.columns, "adjudication_reason",
                                             "incident_reason"))
RELEASE_TEXTS = {lane: TextLayout("trace_id", ()) for lane in (
    "preference", "sft", "unpaired", "preference_text", "sft_text", "unpaired_text")}
"""Every string of a release row, chat messages' roles and contents included."""


def table_texts(table: pa.Table | pa.RecordBatch,
                layout: TextLayout) -> Iterator[tuple[np.ndarray, pa.Array | pa.ChunkedArray]]:
    """(row index of each text, the texts as an Arrow column) for every text column present."""
    rows = np.arange(table.num_rows)
    names = set(table.schema.names)
    columns = list(layout.columns)
    if layout.every_string:
        columns += [f.name for f in table.schema if _is_text(f.type) and f.name not in columns]
    for name in columns:
        if name in names and not _struct_texts(table.schema.field(name).type):
            yield rows, table.column(name)
    nested_fields = {}
    if layout.list_fields and layout.list_column in names:
        nested_fields[layout.list_column] = layout.list_fields
    if layout.every_string:  # every list of structs (chat messages) too, each string field
        nested_fields.update({f.name: tuple(_struct_texts(f.type)) for f in table.schema
                              if f.name not in nested_fields and _struct_texts(f.type)})
    for column, struct_fields in nested_fields.items():
        nested = table.column(column)
        flat = pc.list_flatten(nested)
        parents = np.asarray(pc.list_parent_indices(nested))
        for field in struct_fields:
            yield parents, pc.struct_field(flat, field)


def residue_in_table(table: pa.Table | pa.RecordBatch, layout: TextLayout,
                     deny_terms: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Ids of rows whose text still holds something that looks raw, and the kinds found
    (the residue scanner reads each Arrow column directly, no Python string per text)."""
    kinds: dict[str, int] = {}
    bad = np.zeros(table.num_rows, dtype=bool)
    for owners, texts in table_texts(table, layout):
        flags, found = residue_flags(texts, deny_terms)
        bad[owners[flags]] = True
        for kind, count in found.items():
            kinds[kind] = kinds.get(kind, 0) + count
    ids = table.column(layout.id_field).to_pylist()
    return [str(ids[row]) for row in np.flatnonzero(bad).tolist()], kinds


SCAN_BATCH_ROWS = 10_000


def residue_in_parquet(source: Any, *, layout: TextLayout, deny_terms: tuple[str, ...],
                       filesystem: Any = None, batch_rows: int | None = None) -> list[str]:
    """residue_in_table over a Parquet file (on a pyarrow filesystem or local), read
    `batch_rows` rows at a time (default SCAN_BATCH_ROWS) and only the columns the layout
    names: the ids of offending rows. One file is one task for a worker process
    (core.runtime.submit_sequence)."""
    file = pq.ParquetFile(source, filesystem=filesystem)
    columns = layout.scanned(file.schema_arrow)
    offending: list[str] = []
    for batch in file.iter_batches(batch_size=batch_rows or SCAN_BATCH_ROWS, columns=columns):
        offending.extend(residue_in_table(batch, layout, deny_terms)[0])
    return offending


def raw_looking_fields(table: pa.Table | pa.RecordBatch, layout: TextLayout,
                       deny_terms: Sequence[str] = ()) -> dict[int, str]:
    """Row -> the first field of `layout` whose value looks like a secret or a personal
    identifier (residue_flags). For identifier fields, which are never redacted: such a row is
    kept back (quarantined, naming the field and never the value) instead of leaving the
    restricted zone as a key of every table."""
    names = set(table.schema.names)
    labels = [n for n in layout.columns
              if n in names and not _struct_texts(table.schema.field(n).type)]
    if layout.list_fields and layout.list_column in names:
        labels += [f"{layout.list_column}[].{f}" for f in layout.list_fields]
    found: dict[int, str] = {}
    plain = replace(layout, every_string=False)
    for label, (owners, texts) in zip(labels, table_texts(table, plain), strict=True):
        flags = _distinct_residue_flags(texts, deny_terms)
        for row in np.unique(owners[flags]).tolist():
            found.setdefault(row, label)
    return found


def _distinct_residue_flags(texts: pa.Array | pa.ChunkedArray,
                            deny_terms: Sequence[str]) -> np.ndarray:
    """residue_flags of an identifier column, each distinct value scanned once: a chunk's
    reviews repeat their trace ids and candidate ids and nearly all share one rubric version,
    so most of a column is values already scanned."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        return residue_flags(texts, deny_terms)[0]
    encoded = texts.dictionary_encode()
    distinct, _ = residue_flags(encoded.dictionary, deny_terms)
    if not distinct.any():
        return np.zeros(len(texts), dtype=bool)
    return distinct[np.asarray(encoded.indices.fill_null(0))] & np.asarray(
        encoded.indices.is_valid())


def raw_looking_reason(field: str) -> str:
    return (f"{field} looks like a secret or a personal identifier; identifiers are never "
            "redacted, so the line is kept back")
