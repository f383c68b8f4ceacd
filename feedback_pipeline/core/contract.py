"""Validation of landed records against the data contract (contract sections 2-4).

Every line becomes either a typed row or a quarantine row that names its source file, line number
and reason; valid lines of the same file always flow on, nothing is dropped silently.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
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
    """A record breaks the data contract; the message is the quarantine reason.

    A reason names the field and the rule, never the value: reasons are grouped, counted and
    shown in run metadata, while the line itself stays in the restricted quarantine table."""


IDENTIFIER_PATTERN = r"[A-Za-z0-9._:/-]{1,128}"
"""The declared shape of identifier fields (trace_id, candidate_id, model_id, slice,
prompt_template_version, policy_version): 1-128 ASCII letters, digits and . _ : / -"""
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_is_identifier = _IDENTIFIER.fullmatch  # the hot path calls the bound method directly

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longest line (bytes, without its newline) that is parsed; longer ones are quarantined
unread. Policy `max_line_bytes` overrides it."""
READ_BLOCK_BYTES = 1024 * 1024  # a line is held whole only up to the limit; blocks are this
GZIP_MAGIC = b"\x1f\x8b"

# Only a \uD800-\uDFFF escape can put a surrogate into a decoded string (the reader replaces
# undecodable bytes), so the object walk runs only for lines that hold such an escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_identifier(field: str, value: Any) -> str:
    """`value` if it has the identifier shape, else ContractError naming `field` (not the
    value)."""
    if not isinstance(value, str) or _is_identifier(value) is None:
        raise ContractError(f"{field} does not have the identifier shape {IDENTIFIER_PATTERN}")
    return value


class LineFault(str):
    """Stands in for a line (or the rest of a file) that `read_lines` could not hand over:
    the text is the quarantine reason. `parse_lines` quarantines it with an empty raw_line."""

    __slots__ = ()


class UndecodableLine(LineFault):
    """A line whose bytes are not UTF-8: the text is the reason, `raw_line` the line with
    U+FFFD for the bad bytes (kept in the restricted quarantine table)."""

    def __new__(cls, reason: str, raw_line: str = "") -> UndecodableLine:
        fault = super().__new__(cls, reason)  # pickled to a worker: raw_line is in __dict__
        fault.raw_line = raw_line
        return fault


@dataclass
class ParsedLines:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: ParsedLines) -> None:
        self.rows.extend(other.rows)
        self.quarantine.extend(other.quarantine)


def curated_json_lines(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a hand-curated JSON Lines config file (gold sets, frozen
    labels). Unlike landed data nothing is quarantined: a curated file is fixed by hand, so a
    line that is not a JSON object is a ValueError naming `source:line`. Blank lines are
    skipped."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(item, dict):
            raise ValueError(f"{source}:{number}: an item must be a JSON object")
        yield number, item


def read_lines(path: Path | Any,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a .jsonl or .jsonl.gz file; blank lines skipped.

    `path` is a local Path or any object with `.name` and `.open("rb")` (a storage path on an
    object store). Reading is bounded: a line longer than `max_line_bytes` is skipped unread
    and handed over as a `LineFault`, so memory holds at most about one limit's worth of a
    line. File faults end the file with one `LineFault` numbered 0 (a file-level
    quarantine row):

    - a `.gz` name whose content has no gzip header: "not a gzip file", no line is read;
    - a gzip stream that breaks off (truncated) or is corrupt: every complete line read before
      the break is kept; the line in progress and everything after it are quarantined as one
      file-level row saying after which line the break fell;
    - a file that cannot be opened or read (an OSError: no permission, a device error, a file
      removed while read): the lines read before the error are kept, the rest is one
      file-level row naming the error class (never its message, which holds the path).
    """
    last = 0
    try:
        for number, text in _file_lines(path, max_line_bytes):
            last = number or last
            yield number, text
    except OSError as err:
        yield 0, LineFault(f"file could not be read ({type(err).__name__}) after line "
                           f"{last}: lines up to {last} were kept, the rest of the file is "
                           "quarantined")


def unread_entries(folder: Path | Any, prefix: str, accepted: tuple[str, ...],
                   not_accepted: str) -> list[tuple[str, str]]:
    """(source name, reason) of every entry of a landing folder that a stage does not read,
    so none is passed over in silence: a file whose name ends in none of `accepted` (reason
    `not_accepted`), a folder, a link that leads nowhere (broken or a loop), a temporary file
    of a write in progress or interrupted (a dot name ending in .tmp), or anything else that
    is not a regular file. `prefix` is the folder's source name; each entry becomes one
    file-level quarantine row. `folder` is a local Path or a storage path (`iterdir`,
    `is_file`, `is_dir`, `name`)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        try:
            if path.is_file():
                if path.name.endswith(accepted):
                    continue
                reason = (TEMPORARY_FILE if path.name.startswith(".")
                          and path.name.endswith(".tmp") else not_accepted)
            elif path.is_dir():
                reason = "is a folder, not a file; nothing in it was read"
            elif isinstance(path, Path) and path.is_symlink():
                reason = "is a link that leads to no file (broken, or a loop); not read"
            else:
                reason = "is not a regular file; not read"
        except OSError as err:
            reason = f"could not be inspected ({type(err).__name__}); not read"
        found.append((f"{prefix}/{path.name}", reason))
    return found


TEMPORARY_FILE = ("is a temporary file of a write in progress or interrupted (a dot name "
                  "ending in .tmp); not read")


def not_accepted_reason(kind: str, accepted: tuple[str, ...]) -> str:
    """The reason of a landed file of another kind: which names `kind` files may have."""
    names = ", ".join(accepted[:-1]) + f" or {accepted[-1]}" if len(accepted) > 1 else accepted[0]
    return (f"the file name does not end in {names} (the accepted {kind} files); the file "
            "was not read")


def _file_lines(path: Path | Any, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    raw = open(path, "rb") if isinstance(path, str | os.PathLike) else path.open("rb")  # noqa: SIM115
    with raw:
        if not path.name.endswith(".gz"):
            yield from _numbered_lines(raw.read, max_line_bytes, ())
            return
        head = raw.read(len(GZIP_MAGIC))
        if not head:
            return
        if head != GZIP_MAGIC:
            yield 0, LineFault("not a gzip file: the name ends in .gz but the content has "
                               "no gzip header; the whole file is quarantined")
            return
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            # read1: one underlying read per call, so whatever was decompressed before a break
            # has reached the lines when the break raises
            yield from _numbered_lines(unzipped.read1, max_line_bytes,
                                       (EOFError, gzip.BadGzipFile, zlib.error))


def _numbered_lines(read: Callable[[int], bytes], limit: int,
                    breaks: tuple[type[BaseException], ...]) -> Iterator[tuple[int, str]]:
    """The lines of a byte stream read in blocks and split on "\\n" (C speed; a trailing "\\r"
    goes, and so does a UTF-8 byte order mark at the start of the file). A line that is not
    valid UTF-8 is an `UndecodableLine` (quarantined with the byte offset of the first bad
    byte; its raw_line keeps the text with U+FFFD in place of the bad bytes), never a line
    altered in silence. At most `limit` bytes of a line are held: a longer line is reported
    when it passes the limit and its rest skipped as it streams by. An exception of `breaks`
    (a gzip stream breaking off) ends the file with one file-level LineFault; the line in
    progress is part of what it quarantines."""
    lines = _split_lines(read, limit, breaks)
    for number, text in lines:  # only the first line can start with the file's mark
        if number == 1 and text.__class__ is str and text.startswith("\ufeff"):
            text = text[1:]
        if text.strip():
            yield number, text
        break
    yield from lines


def _decoded(number: int, part: bytes) -> tuple[int, str] | None:
    """(number, text) of one line's bytes, an `UndecodableLine` for bytes that are not UTF-8,
    or None for a blank line."""
    try:
        text = part.decode("utf-8")
    except UnicodeDecodeError as err:
        return number, UndecodableLine(
            f"line is not valid UTF-8 (byte {err.start + 1} of the line)",
            part.decode("utf-8", "replace").rstrip("\r"))
    if text.strip():
        return number, text.rstrip("\r")
    return None


def _split_lines(read: Callable[[int], bytes], limit: int,
                 breaks: tuple[type[BaseException], ...]) -> Iterator[tuple[int, str]]:
    """See `_numbered_lines`. A file whose first block holds a carriage return and no line
    feed at all has classic Mac line endings: "\r" separates its lines (JSON never holds a raw
    CR inside a string, so splitting cannot cut a record; read as one line, every record of
    the file would be lost to one quarantine row)."""
    number = 0
    pending = b""  # the start of a line whose end is not read yet (at most `limit` bytes)
    skipping = False  # inside a line already reported as too long
    separator: bytes | None = None  # decided by the first block
    while True:
        try:
            block = read(READ_BLOCK_BYTES)
        except breaks as err:
            kind = "ends early (truncated)" if isinstance(err, EOFError) else "is corrupt"
            yield 0, LineFault(f"gzip stream {kind} after line {number}: lines up to "
                               f"{number} were kept, the rest of the file is quarantined")
            return
        if not block:
            break
        if separator is None:
            separator = b"\r" if b"\n" not in block and b"\r" in block else b"\n"
        if skipping:
            end = block.find(separator)
            if end < 0:
                continue
            block, skipping = block[end + 1:], False
        if pending:
            block = pending + block
        parts = block.split(separator)
        pending = parts.pop()
        for part in parts:
            number += 1
            if len(part) > limit:
                yield number, _too_long(limit)
                continue
            line = _decoded(number, part)
            if line is not None:
                yield line
        if len(pending) > limit:
            number += 1
            yield number, _too_long(limit)
            pending, skipping = b"", True
    if pending:
        line = _decoded(number + 1, pending)
        if line is not None:
            yield line


def _too_long(limit: int) -> LineFault:
    return LineFault(f"line is longer than max_line_bytes ({limit} bytes); it was skipped unread")


def parse_timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ContractError(f"{name} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ContractError(f"{name} is not an ISO-8601 timestamp with a year from 1 to "
                            "9999") from err
    if parsed.tzinfo is None:
        raise ContractError(f"{name} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise ContractError(f"{name} is out of range once converted to UTC") from err


def _optional_id(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"{name} must be a string or null")
    if _is_identifier(value) is None:
        check_identifier(name, value)
    return value


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
        if _is_identifier(cid) is None:
            check_identifier(f"candidates[{position}].candidate_id", cid)
        if cid in seen:
            raise ContractError(f"candidates[{position}].candidate_id repeats an earlier "
                                "candidate's id")
        seen.add(cid)
        if not isinstance(text, str):
            raise ContractError(f"candidates[{position}].text must be a string")
        model_id = cand.get("model_id")
        if model_id is not None:
            if not isinstance(model_id, str):
                raise ContractError(f"candidates[{position}].model_id must be a string")
            if _is_identifier(model_id) is None:
                check_identifier(f"candidates[{position}].model_id", model_id)
        generation = cand.get("generation")
        if generation is not None and not isinstance(generation, dict):
            raise ContractError(f"candidates[{position}].generation must be an object")
        out.append(
            {
                "candidate_id": cid,
                "model_id": model_id,
                "generation": _json_text(generation, f"candidates[{position}].generation",
                                         ensure_ascii=True) if generation else None,
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
    if _is_identifier(trace_id) is None:
        check_identifier("trace_id", trace_id)
    if "created_at" not in obj:
        raise ContractError("created_at is required")
    created = parse_timestamp(obj["created_at"], "created_at")
    if partition_day is not None and created.date().isoformat() != partition_day:
        raise ContractError(
            f"created_at falls on a UTC day that is not the landing folder's day {partition_day}")
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
        "slice": _optional_id(obj, "slice"),
        "prompt_template_version": _optional_id(obj, "prompt_template_version"),
        "policy_version": _optional_id(obj, "policy_version"),
    }
    extra = {k: v for k, v in obj.items() if k not in TRACE_FIELDS}
    row["extra_json"] = _json_text(extra, "a field outside the contract") if extra else None
    return row


def _json_text(value: Any, where: str, ensure_ascii: bool = False) -> str:
    """`value` as stored JSON text; a number JSON cannot hold (a literal too large for a
    double, read as infinity) is a ContractError naming `where`."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=ensure_ascii, allow_nan=False)
    except ValueError as err:
        raise ContractError(f"{where} holds a number too large for JSON (read as "
                            "infinity)") from err


def parse_lines(
    lines: Iterable[tuple[int, str]],
    source_file: str,
    validate: Callable[[Any], dict[str, Any]],
    id_field: str,
) -> ParsedLines:
    """Numbered JSONL lines through `validate`: a typed row each, or a quarantine row naming
    the file, the line and the broken rule. Valid lines always flow on: a line the JSON parser
    cannot take (too deep, an integer too long) or that holds a lone surrogate is quarantined
    like any other bad line."""
    parsed = ParsedLines()
    for number, line in lines:
        if line.__class__ is not str:
            if isinstance(line, LineFault):  # an UndecodableLine carries its raw line
                parsed.quarantine.append(quarantine_row(
                    source_file, number, str(line), getattr(line, "raw_line", ""), None))
                continue
            # a source adapter's fault (core.sources.SourceFault): its reason, the source line
            reason, raw = getattr(line, "reason", None), getattr(line, "raw_line", "")
            if reason is not None:
                parsed.quarantine.append(quarantine_row(source_file, number, str(reason),
                                                        str(raw), None))
                continue
        record_id = obj = None
        try:
            try:
                obj = loads_strict(line)
            except json.JSONDecodeError as err:
                raise ContractError(json_error_reason(err)) from err
            except (NonFiniteNumber, DuplicateKey) as err:
                raise ContractError(str(err)) from err
            except ValueError as err:  # int longer than sys.get_int_max_str_digits()
                raise ContractError("not valid JSON (a number has more digits than the parser "
                                    "allows)") from err
            except RecursionError as err:
                raise ContractError("not valid JSON (nested deeper than the parser "
                                    "allows)") from err
            if ("\\ud" in line or "\\uD" in line) and _SURROGATE_ESCAPE.search(line):
                where = _lone_surrogate(obj)
                if where is not None:
                    raise ContractError(f"{where} holds a lone surrogate escape (not valid "
                                        "Unicode)")
            try:
                row = validate(obj)
            except RecursionError as err:
                raise ContractError("a value is nested deeper than can be stored") from err
        except ContractError as err:
            if isinstance(obj, dict):  # the record's id, only when it has the identifier shape
                value = obj.get(id_field)
                if isinstance(value, str) and _is_identifier(value):
                    record_id = value
            parsed.quarantine.append(quarantine_row(source_file, number, str(err), line, record_id))
            continue
        row["source_file"] = source_file
        row["source_line"] = number
        parsed.rows.append(row)
    return parsed


class NonFiniteNumber(ValueError):
    """A NaN, Infinity or -Infinity literal: Python's parser takes them, JSON has no such
    number (RFC 8259), and a stored extra_json holding one is not JSON for any other reader."""


NON_FINITE_REASON = "not valid JSON (NaN and Infinity are not JSON numbers)"


def _refuse_constant(name: str) -> Any:
    raise NonFiniteNumber(NON_FINITE_REASON)


def json_error_reason(err: json.JSONDecodeError) -> str:
    """The quarantine reason of a line the JSON parser refused: its message (which never
    quotes the text) without a nested aside, and the column."""
    message = err.msg.split(" (", 1)[0].removesuffix(" at")
    return f"not valid JSON ({message} at column {err.colno})"


class DuplicateKey(ValueError):
    """An object names a field twice: Python's parser keeps the last value and drops the
    other in silence, and another reader may keep the first."""


NAMED_FIELDS = frozenset((*TRACE_FIELDS, "candidate_id", "model_id", "generation", "text",
                          "review_id", "reviewer_id", "rubric_version", "reviewed_at", "task",
                          "criteria", "choice", "label", "score", "answer", "reason",
                          "review_seconds", "resolution", "adjudication", "judge_id", "order"))
"""Field names of the contract (traces, candidates, reviews, judge labels) a reason may name;
any other key (it may be data) is only "a field"."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        name = f"field {key}" if key in NAMED_FIELDS else "a field"
        raise DuplicateKey(f"{name} appears more than once in one object (a JSON name must "
                           "be unique)")
    return obj


def loads_strict(line: str) -> Any:
    """`json.loads` that refuses what Python's parser takes and JSON does not define: NaN and
    Infinity (NonFiniteNumber), and an object naming a field twice (DuplicateKey)."""
    return json.loads(line, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def _field_name(parent: str, key: Any) -> str:
    name = key if isinstance(key, str) and _IDENTIFIER.fullmatch(key) else "<key>"
    return f"{parent}.{name}" if parent else name


def _lone_surrogate(obj: Any) -> str | None:
    """The path of the first key or string holding a lone surrogate (iterative: no depth
    limit), or None."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return (path or "the record")[:200]
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return f"a field name under {path or 'the record'}"[:200]
                stack.append((_field_name(path, key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


REPEATED_TRACE_ID = "trace_id already seen in this partition"


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
            raise ContractError(REPEATED_TRACE_ID)
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
    """Validated trace rows as Arrow, built a column at a time (a third less time than
    `from_pylist`, which pivots every row's dict in turn)."""
    return pa.Table.from_pydict({name: [row.get(name) for row in rows]
                                 for name in TRACE_SCHEMA.names}, schema=TRACE_SCHEMA)


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


def id_list(ids: list[str], limit: int = 50) -> str:
    """Ids for a metadata field or a log line: the first `limit`, then how many more."""
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")
