"""Reviews in: each chunk of landed lines validated, reviewers pseudonymised, free text redacted.

A chunk is independent of the others, so a million-review day is parsed a chunk at a time in
worker processes (core.runtime) and arrives as compact Arrow tables, never as a million dicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from feedback_pipeline.core.contract import (
    DuplicateKey,
    NonFiniteNumber,
    ParsedLines,
    json_error_reason,
    loads_strict,
    quarantine_row,
)
from feedback_pipeline.core.labelstudio import make_pseudonymiser, parse_label_studio_export
from feedback_pipeline.core.redaction import Redactor
from feedback_pipeline.core.review import REVIEW_SCHEMA, parse_review_lines
from feedback_pipeline.core.texts import TextLayout, raw_looking_fields, raw_looking_reason


@dataclass(frozen=True)
class IntakeSettings:
    """What a worker needs to treat a chunk exactly as the stage would."""

    known_rubrics: frozenset[str]
    pseudonym_key: bytes
    deny_terms: tuple[str, ...]
    redaction_version: str


@lru_cache(maxsize=4)
def _redactor(deny_terms: tuple[str, ...], version: str) -> Redactor:
    return Redactor(deny_terms, version=version)


_SURROGATE = re.compile("[\ud800-\udfff]")

REVIEW_ID_FIELDS = TextLayout("review_id", ("review_id", "trace_id", "rubric_version",
                                            "candidate_id"), every_string=False)
"""A review's identifier fields: kept, never redacted, so checked for raw-looking values."""


def review_table(rows: list[dict[str, Any]], settings: IntakeSettings
                 ) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Validated review rows as Arrow (reviewer pseudonymised; reason, answer and pointwise
    label redacted), and the rows kept back because an identifier field looks raw."""
    kept_back = raw_looking_fields(pa.table(
        {c: pa.array([r.get(c) for r in rows], pa.string()) for c in REVIEW_ID_FIELDS.columns})
        if rows else pa.table({}), REVIEW_ID_FIELDS, settings.deny_terms)
    quarantine = [quarantine_row(rows[i].get("source_file") or "",
                                 int(rows[i].get("source_line") or 0),
                                 raw_looking_reason(field), "", None)
                  for i, field in sorted(kept_back.items())]
    rows = [r for i, r in enumerate(rows) if i not in kept_back]
    pseudonym = make_pseudonymiser(settings.pseudonym_key)
    for row in rows:
        row["reviewer_id"] = pseudonym(row["reviewer_id"])
    table = pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA)
    redactor = _redactor(settings.deny_terms, settings.redaction_version)
    for column in ("reason", "answer", "label"):
        redacted = redactor.redact_texts(table.column(column).to_pylist())
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.array(redacted, pa.string()))
    return table, quarantine


def parse_review_chunk(lines: Sequence[tuple[int, str]], *, source: str,
                       settings: IntakeSettings) -> tuple[pa.Table, list[dict[str, Any]]]:
    """(reviews, quarantine rows) of one chunk of numbered JSONL lines from `source`."""
    parsed = parse_review_lines(lines, source, set(settings.known_rubrics))
    table, kept_back = review_table(parsed.rows, settings)
    return table, parsed.quarantine + kept_back


def parse_review_export(payload: Any, source: str,
                        settings: IntakeSettings) -> tuple[pa.Table, list[dict[str, Any]]]:
    """(reviews, quarantine rows) of one Label Studio export (raw JSON or JSON-MIN). A review
    whose text holds a lone surrogate (a \\ud800 escape in the export: not valid Unicode, and
    no table can store it) is quarantined naming the field; it used to fail the stage."""
    parsed = _export_items(payload, source, set(settings.known_rubrics))
    rows, unstorable = [], []
    for row in parsed.rows:
        where = next((name for name, value in row.items()
                      if isinstance(value, str) and _SURROGATE.search(value)), None)
        if where is None:
            rows.append(row)
        else:
            unstorable.append(quarantine_row(
                source, int(row.get("source_line") or 0),
                f"{where} holds a lone surrogate escape (not valid Unicode)", "",
                row.get("review_id") if isinstance(row.get("review_id"), str) else None))
    table, kept_back = review_table(rows, settings)
    return table, parsed.quarantine + unstorable + kept_back


EXPORT_ITEM_SHAPE = ("export item has an annotation or result of an unexpected shape ({}); "
                     "it was not read")
_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError)


def _export_items(payload: Any, source: str, known_rubrics: set[str]) -> ParsedLines:
    """parse_label_studio_export one item (and one raw annotation) at a time, so an item or
    annotation whose parts are not the objects and lists an export holds (a string where a
    result list belongs, a null annotation) is one quarantine row with the item's position
    (the error class, never its message) instead of an exception that failed the stage; the
    other items and annotations flow on."""
    if not isinstance(payload, list):
        return parse_label_studio_export(payload, source, known_rubrics)
    parsed = ParsedLines()
    for position, item in enumerate(payload, start=1):
        annotations = item.get("annotations") if isinstance(item, dict) else None
        parts = ([{**item, "annotations": [a]} for a in annotations]
                 if isinstance(annotations, list) and len(annotations) > 1 else [item])
        for part in parts:  # a raw task's annotations one at a time: one bad costs only itself
            try:
                one = parse_label_studio_export([part], source, known_rubrics)
            except _SHAPE_ERRORS as err:
                parsed.quarantine.append(quarantine_row(
                    source, position, EXPORT_ITEM_SHAPE.format(type(err).__name__), "", None))
                continue
            for row in one.rows:
                row["source_line"] = position
            for row in one.quarantine:
                row["line_number"] = position
            parsed.extend(one)
    return parsed


def read_review_export(path: Any, source: str) -> tuple[Any, list[dict[str, Any]]]:
    """(payload, []) of one landed Label Studio export file (`.json`), or (None, one
    file-level quarantine row) when it cannot be taken as JSON at all: unreadable (the error
    class), not UTF-8 (the byte), or JSON the parser refuses (the parser's message and line,
    an integer too long, nesting too deep, NaN / Infinity, a field named twice). A byte order
    mark at the start is ignored. Never raises for bad content, so one export never stops
    the day's other review files (the stage's own `json.loads` let a UnicodeDecodeError,
    RecursionError or the integer limit's ValueError fail the stage)."""
    def refused(line: int, reason: str) -> tuple[None, list[dict[str, Any]]]:
        return None, [quarantine_row(source, line, reason, "", None)]

    try:
        data = path.read_bytes()
    except OSError as err:
        return refused(0, f"file could not be read ({type(err).__name__})")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        return refused(0, f"file is not valid UTF-8 (byte {err.start + 1} of the file)")
    try:
        return loads_strict(text), []
    except json.JSONDecodeError as err:
        return refused(err.lineno, json_error_reason(err))
    except (NonFiniteNumber, DuplicateKey) as err:
        return refused(0, str(err))
    except ValueError:
        return refused(0, "not valid JSON (a number has more digits than the parser allows)")
    except RecursionError:
        return refused(0, "not valid JSON (nested deeper than the parser allows)")


def owned_review_days(day: str, trace_days: Sequence[str],
                      review_days: Sequence[str]) -> list[str]:
    """The review folders whose problems `day`'s partition reports: its own folder, and each
    folder of a day without landed traces (a Label Studio pull lands on the day it runs) goes
    to the latest trace day before it, or the first trace day when none is earlier. Every
    partition reads every folder for its own traces' reviews; only the owner quarantines a
    folder's unparseable lines and unknown trace ids, so each is reported exactly once."""
    traced = sorted(set(trace_days) | {day})
    owned = []
    for folder in review_days:
        if folder in traced:
            owner = folder
        else:
            earlier = [d for d in traced if d <= folder]
            owner = earlier[-1] if earlier else traced[0]
        if owner == day:
            owned.append(folder)
    return owned


def trace_ids_in_review_file(text: str, json_lines: bool) -> set[str]:
    """The trace ids a landed review file names (a JSONL file of contract reviews, or a Label
    Studio export: raw JSON tasks or JSON-MIN rows), read leniently: this only decides which
    days must take the file in; the stage validates and quarantines. No line can stop it
    (the landing sensor calls it on every new file): a line the parser refuses for any reason
    (not JSON, an integer too long, nested too deep) is passed over, and a byte order mark
    at the start is ignored."""
    text = text.removeprefix("\ufeff")
    if json_lines:
        items = []
        for line in text.splitlines():
            try:
                items.append(json.loads(line))
            except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
                continue
    else:
        try:
            loaded = json.loads(text)
        except (ValueError, RecursionError):
            return set()
        items = loaded if isinstance(loaded, list) else []
    found = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        data = item.get("data") if isinstance(item.get("data"), dict) else item
        if isinstance(data.get("trace_id"), str):
            found.add(data["trace_id"])
    return found
