"""Validation of landed LLM-judge labels (contract section 4)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import ContractError, ParsedLines, parse_lines
from feedback_pipeline.core.judge import JUDGE_CHOICES, ORDERS


def validate_judge_label(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ContractError("a judge label must be a JSON object")
    for name in ("trace_id", "judge_id"):
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise ContractError(f"{name} is required and must be a non-empty string")
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
JUDGE_CHUNK_LINES = 100_000


def read_judge_labels(sources: Iterable[tuple[Iterable[tuple[int, str]], str]]
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every valid judge label of the (numbered lines, source file) pairs as one frame, and the
    quarantined lines. Parsed a chunk at a time into Arrow: a day's 1.4 million labels held as
    Python dicts took over a gigabyte; as Arrow, then a frame whose repeated strings are
    shared objects, about a tenth of that."""
    tables = [JUDGE_LABEL_SCHEMA.empty_table()]
    quarantine: list[dict[str, Any]] = []
    for lines, source_file in sources:
        numbered = iter(lines)
        while chunk := list(itertools.islice(numbered, JUDGE_CHUNK_LINES)):
            parsed = parse_judge_lines(chunk, source_file)
            quarantine.extend(parsed.quarantine)
            tables.append(pa.Table.from_pylist(parsed.rows, schema=JUDGE_LABEL_SCHEMA))
    labels = pa.concat_tables(tables).combine_chunks()
    return labels.to_pandas(deduplicate_objects=True), quarantine
