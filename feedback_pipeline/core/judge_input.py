"""Validation of landed LLM-judge labels (contract section 4)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import (
    ContractError,
    ParsedLines,
    check_identifier,
    parse_lines,
    quarantine_row,
)
from feedback_pipeline.core.judge import JUDGE_CHOICES, ORDERS
from feedback_pipeline.core.runtime import ordered_calls
from feedback_pipeline.core.texts import TextLayout, raw_looking_fields, raw_looking_reason


def validate_judge_label(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ContractError("a judge label must be a JSON object")
    for name in ("trace_id", "judge_id"):
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise ContractError(f"{name} is required and must be a non-empty string")
        check_identifier(name, obj[name])
    if obj.get("order") not in ORDERS:
        raise ContractError(f"order must be one of {', '.join(ORDERS)}")
    if obj.get("choice") not in JUDGE_CHOICES:
        raise ContractError(f"choice must be one of {', '.join(JUDGE_CHOICES)}")
    return {k: obj[k] for k in ("trace_id", "judge_id", "order", "choice")}


def parse_judge_lines(lines: Iterable[tuple[int, str]], source_file: str) -> ParsedLines:
    return parse_lines(lines, source_file, validate_judge_label, "trace_id")


JUDGE_LABEL_SCHEMA = pa.schema([("trace_id", pa.string()), ("judge_id", pa.string()),
                                ("order", pa.string()), ("choice", pa.string()),
                                ("source_file", pa.string()), ("source_line", pa.int64())])
JUDGE_CHUNK_LINES = 50_000


def parse_judge_chunk(lines: list[tuple[int, str]], *, source_file: str
                      ) -> tuple[pa.Table, list[dict[str, Any]]]:
    """(valid labels as Arrow, quarantined lines) of one chunk of numbered lines of a file."""
    parsed = parse_judge_lines(lines, source_file)
    table = pa.Table.from_pylist(parsed.rows, schema=JUDGE_LABEL_SCHEMA)
    kept_back = raw_looking_fields(table, JUDGE_ID_FIELDS)
    if not kept_back:
        return table, parsed.quarantine
    lines_of = table.column("source_line").to_pylist()
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(kept_back)] = False
    return table.filter(pa.array(keep)), parsed.quarantine + [
        quarantine_row(source_file, int(lines_of[i]), raw_looking_reason(field), "", None)
        for i, field in sorted(kept_back.items())]


JUDGE_ID_FIELDS = TextLayout("trace_id", ("trace_id", "judge_id"), every_string=False)
"""A judge label's identifier fields, checked for raw-looking values (never redacted)."""


def read_judge_labels(sources: Iterable[tuple[Iterable[tuple[int, str]], str]], *,
                      workers: int = 1, chunk_lines: int = JUDGE_CHUNK_LINES
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every valid judge label of the (numbered lines, source file) pairs as one frame, and the
    quarantined lines. Parsed a chunk at a time into Arrow, in `workers` processes
    (core.runtime): a day's 1.4 million labels held as Python dicts took over a gigabyte; as
    Arrow, then a frame whose repeated strings are shared objects, about a tenth of that."""

    def chunks() -> Iterator[Callable[[], tuple[pa.Table, list[dict[str, Any]]]]]:
        for lines, source_file in sources:
            numbered = iter(lines)
            while chunk := list(itertools.islice(numbered, chunk_lines)):
                yield functools.partial(parse_judge_chunk, chunk, source_file=source_file)

    tables = [JUDGE_LABEL_SCHEMA.empty_table()]
    quarantine: list[dict[str, Any]] = []
    for table, bad in ordered_calls(chunks(), workers):
        tables.append(table)
        quarantine.extend(bad)
    labels = pa.concat_tables(tables).combine_chunks()
    return labels.to_pandas(deduplicate_objects=True), quarantine
