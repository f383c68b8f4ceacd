"""Validation of landed records against the data contract (contract sections 2-4).

Every line becomes either a typed row or a quarantine row that names its source file, line number
and reason; valid lines of the same file always flow on, nothing is dropped silently.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

CANDIDATE_TYPE = pa.struct(
    [
        ("candidate_id", pa.string()),
        ("model_id", pa.string()),
        ("generation", pa.string()),
        ("text", pa.string()),
    ]
)

TRACE_FIELDS = (
    "trace_id",
    "created_at",
    "prompt",
    "context",
    "candidates",
    "approved_answer",
    "reserved_for_evaluation",
    "unsafe_effect",
    "slice",
    "prompt_template_version",
    "policy_version",
)

TRACE_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("prompt", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.list_(CANDIDATE_TYPE)),
        ("approved_answer", pa.string()),
        ("reserved_for_evaluation", pa.bool_()),
        ("unsafe_effect", pa.bool_()),
        ("slice", pa.string()),
        ("prompt_template_version", pa.string()),
        ("policy_version", pa.string()),
        ("extra_json", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("record_id", pa.string()),
        ("reason", pa.string()),
        ("raw_line", pa.string()),
    ]
)


class ContractError(ValueError):
    """A record breaks the data contract; the message is the quarantine reason."""


@dataclass
class ParsedLines:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: ParsedLines) -> None:
        self.rows.extend(other.rows)
        self.quarantine.extend(other.quarantine)


def read_lines(path: Path | Any) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a .jsonl or .jsonl.gz file; blank lines skipped.

    `path` is a local Path or any object with `.name` and `.open("rb")` (a storage path on an
    object store)."""
    raw = open(path, "rb") if isinstance(path, str | os.PathLike) else path.open("rb")  # noqa: SIM115
    with raw, (gzip.open(raw, "rt", encoding="utf-8", errors="replace")
               if path.name.endswith(".gz") else
               io.TextIOWrapper(raw, encoding="utf-8", errors="replace")) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\n")


def parse_timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ContractError(f"{name} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ContractError(f"{name} {value!r} is not ISO-8601") from err
    if parsed.tzinfo is None:
        raise ContractError(f"{name} {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _optional_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ContractError(f"{name} must be a string or null")


def _bool(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ContractError(f"{name} must be true or false")
    return value


def _candidates(value: Any) -> list[dict[str, str | None]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ContractError("candidates must be a list")
    out, seen = [], set()
    for position, cand in enumerate(value):
        if not isinstance(cand, dict):
            raise ContractError(f"candidates[{position}] must be an object")
        cid, text = cand.get("candidate_id"), cand.get("text")
        if not isinstance(cid, str) or not cid:
            raise ContractError(f"candidates[{position}].candidate_id must be a non-empty string")
        if cid in seen:
            raise ContractError(f"candidates[{position}].candidate_id {cid!r} is repeated")
        seen.add(cid)
        if not isinstance(text, str):
            raise ContractError(f"candidates[{position}].text must be a string")
        model_id = cand.get("model_id")
        if model_id is not None and not isinstance(model_id, str):
            raise ContractError(f"candidates[{position}].model_id must be a string")
        generation = cand.get("generation")
        if generation is not None and not isinstance(generation, dict):
            raise ContractError(f"candidates[{position}].generation must be an object")
        out.append(
            {
                "candidate_id": cid,
                "model_id": model_id,
                "generation": json.dumps(generation, sort_keys=True) if generation else None,
                "text": text,
            }
        )
    return out


def validate_trace(obj: Any, partition_day: str | None = None) -> dict[str, Any]:
    """A typed trace row, or ContractError naming the first broken rule."""
    if not isinstance(obj, dict):
        raise ContractError("a trace must be a JSON object")
    trace_id = obj.get("trace_id")
    if not isinstance(trace_id, str) or not trace_id.strip():
        raise ContractError("trace_id is required and must be a non-empty string")
    if "created_at" not in obj:
        raise ContractError("created_at is required")
    created = parse_timestamp(obj["created_at"], "created_at")
    if partition_day is not None and created.date().isoformat() != partition_day:
        raise ContractError(
            f"created_at falls on UTC day {created.date().isoformat()}, "
            f"not the landing folder's day {partition_day}"
        )
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ContractError("prompt is required and must be a non-empty string")
    row = {
        "trace_id": trace_id,
        "created_at": created,
        "prompt": prompt,
        "context": _optional_str(obj, "context"),
        "candidates": _candidates(obj.get("candidates")),
        "approved_answer": _optional_str(obj, "approved_answer"),
        "reserved_for_evaluation": _bool(obj, "reserved_for_evaluation"),
        "unsafe_effect": _bool(obj, "unsafe_effect"),
        "slice": _optional_str(obj, "slice"),
        "prompt_template_version": _optional_str(obj, "prompt_template_version"),
        "policy_version": _optional_str(obj, "policy_version"),
    }
    extra = {k: v for k, v in obj.items() if k not in TRACE_FIELDS}
    row["extra_json"] = json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None
    return row


def parse_lines(
    lines: Iterable[tuple[int, str]],
    source_file: str,
    validate: Callable[[Any], dict[str, Any]],
    id_field: str,
) -> ParsedLines:
    """Numbered JSONL lines through `validate`: a typed row each, or a quarantine row naming
    the file, the line and the broken rule. Valid lines always flow on."""
    parsed = ParsedLines()
    for number, line in lines:
        record_id = None
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ContractError(f"not valid JSON ({err.msg} at column {err.colno})") from err
            if isinstance(obj, dict) and isinstance(obj.get(id_field), str):
                record_id = obj[id_field]
            row = validate(obj)
        except ContractError as err:
            parsed.quarantine.append(quarantine_row(source_file, number, str(err), line, record_id))
            continue
        row["source_file"] = source_file
        row["source_line"] = number
        parsed.rows.append(row)
    return parsed


def parse_trace_lines(
    lines: Iterable[tuple[int, str]],
    source_file: str,
    partition_day: str | None,
    seen_ids: set[str] | None = None,
) -> ParsedLines:
    """Validate trace lines; repeated trace ids (also across files of a day) are quarantined."""
    seen = seen_ids if seen_ids is not None else set()

    def validate(obj: Any) -> dict[str, Any]:
        row = validate_trace(obj, partition_day)
        if row["trace_id"] in seen:
            raise ContractError(f"trace_id {row['trace_id']!r} already seen in this partition")
        seen.add(row["trace_id"])
        return row

    return parse_lines(lines, source_file, validate, "trace_id")


def quarantine_row(
    source_file: str, line_number: int, reason: str, raw_line: str, record_id: str | None = None
) -> dict[str, Any]:
    return {
        "source_file": source_file,
        "line_number": line_number,
        "record_id": record_id,
        "reason": reason,
        "raw_line": raw_line,
    }


def traces_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRACE_SCHEMA)


def quarantine_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)


def candidates_of(value: Any) -> list[dict[str, Any]]:
    """Normalise a candidates cell (list, numpy array of dicts or None) to a list of dicts."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [dict(c) for c in value.tolist()]
    return [dict(c) for c in value]


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DETAIL = re.compile(r"\s*\([^)]*\)")


def reason_category(reason: str) -> str:
    """A quarantine reason without its particulars: quoted values become "…" and bracketed
    details go, so reasons group by rule and a summary or manifest never repeats what a bad
    line held (an id, a value, a parser's message about the text)."""
    text = _DETAIL.sub("", _QUOTED.sub("…", str(reason)))
    return " ".join(text.split())[:100] or "unspecified"
