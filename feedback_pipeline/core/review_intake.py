"""Reviews in: each chunk of landed lines validated, reviewers pseudonymised, free text redacted.

A chunk is independent of the others, so a million-review day is parsed a chunk at a time in
worker processes (core.runtime) and arrives as compact Arrow tables, never as a million dicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from feedback_pipeline.core.contract import quarantine_row
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


REVIEW_ID_FIELDS = TextLayout("review_id", ("review_id", "trace_id", "rubric_version",
                                            "candidate_id"), every_string=False)
"""A review's identifier fields: kept, never redacted, so checked for raw-looking values."""


def review_table(rows: list[dict[str, Any]], settings: IntakeSettings
                 ) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Validated review rows as Arrow (reviewer pseudonymised; reason, answer and pointwise
    label redacted), and the rows kept back because an identifier field looks raw."""
    kept_back = raw_looking_fields(pa.Table.from_pylist(
        [{c: r.get(c) for c in REVIEW_ID_FIELDS.columns} for r in rows]) if rows else
        pa.table({}), REVIEW_ID_FIELDS, settings.deny_terms)
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
    """(reviews, quarantine rows) of one Label Studio export (raw JSON or JSON-MIN)."""
    parsed = parse_label_studio_export(payload, source, set(settings.known_rubrics))
    table, kept_back = review_table(parsed.rows, settings)
    return table, parsed.quarantine + kept_back


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
    days must take the file in; the stage validates and quarantines."""
    if json_lines:
        items = []
        for line in text.splitlines():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    else:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
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
