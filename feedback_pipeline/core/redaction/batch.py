"""Raw traces through redaction batch by batch, as the worker processes run it.

Everything the stage needs per batch happens in `redact_batch` (tokens, fingerprints, sealing
the vault rows, the independent residue scan), so batches are independent and run on every
core; only counts, the redacted rows and the sealed rows come back.

With corpus-stable tokens a value has one token in every trace of the day, so a value found by
its context in one batch must also be replaced where it recurs bare in another batch, earlier
or later. `redact_day` does that in two passes: the first redacts every batch and learns the
day's context-found values, keeping its output in the restricted zone; the second looks for
those values left in each batch's output and redoes only the batches where one is left.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

import ahocorasick
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import TRACE_SCHEMA
from feedback_pipeline.core.fingerprint import fingerprints_array
from feedback_pipeline.core.redaction.engine import hyperscan, use_hyperscan
from feedback_pipeline.core.redaction.redactor import (
    DayValues,
    Redactor,
    _is_word,
    on_word_edges,
)
from feedback_pipeline.core.runtime import ordered_map, submit
from feedback_pipeline.core.texts import REDACTED_TRACE_TEXTS, residue_in_table, table_texts
from feedback_pipeline.core.vault import SEALED_SCHEMA, VaultKey, corpus_token_key, seal_vault
from feedback_pipeline.storage import exact_chunks

REDACTED_SCHEMA = TRACE_SCHEMA.append(pa.field("redaction_version", pa.string())).append(
    pa.field("prompt_fingerprint", pa.string()))

KnownValues = Mapping[str, tuple[str, str]]
"""value -> (kind, canonical value): what the day knows was found by its context."""


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
    sealed: pd.DataFrame | pa.Table
    offending: list[str] = field(default_factory=list)
    residue_kinds: dict[str, int] = field(default_factory=dict)
    tokens_by_kind: dict[str, int] = field(default_factory=dict)
    learned: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The batch's context-found values (corpus-stable tokens only)."""
    redone: bool = False
    """Redone with the day's known values, because one of them was left in its first pass."""


@lru_cache(maxsize=4)
def _redactor(deny_terms: tuple[str, ...], version: str, corpus_key: bytes | None) -> Redactor:
    return Redactor(deny_terms, version=version, corpus_key=corpus_key)


def redact_batch(batch: pa.RecordBatch | pa.Table, *, job: RedactionJob,
                 known: KnownValues | None = None) -> RedactedBatch:
    """Redacted rows (REDACTED_SCHEMA), sealed vault rows, and what the residue scan found.
    With corpus-stable tokens, the values of `known` are replaced wherever they recur and the
    batch's own context-found values come back in `learned`. A worker's unit: map it with
    `functools.partial(redact_batch, job=job)`."""
    redactor = _redactor(job.deny_terms, job.version,
                         corpus_token_key(job.key) if job.corpus_stable_tokens else None)
    day = DayValues(known or {}) if job.corpus_stable_tokens else None
    redacted, mapping = redactor.redact_traces(batch.to_pandas(), day)
    redacted["prompt_fingerprint"] = fingerprints_array(redacted["prompt"]).to_pylist()
    table = pa.Table.from_pandas(redacted, schema=REDACTED_SCHEMA, preserve_index=False)
    offending, kinds = residue_in_table(table, REDACTED_TRACE_TEXTS, job.deny_terms)
    tokens = {str(k): int(n) for k, n in mapping["kind"].value_counts().items()}
    return RedactedBatch(table, seal_vault(mapping, job.key), offending, kinds, tokens,
                         day.learned if day is not None else {}, redone=known is not None)


class SpoolFile(Protocol):
    """Scratch rows written now and streamed back once (the storage layer's `Spool`)."""

    def write(self, data: pa.Table | pd.DataFrame) -> None: ...

    def stream(self) -> Iterable[pa.RecordBatch]: ...


Spooler = Callable[[pa.Schema], SpoolFile]
"""Makes a restricted-zone spool for a schema: `functools.partial(storage.spool, RESTRICTED)`."""


def redact_day(batches: Callable[[], Iterable[pa.RecordBatch]], *, job: RedactionJob,
               workers: int, spool: Spooler) -> Iterator[RedactedBatch]:
    """Every batch of the day redacted, in order; `batches()` must give the same batches each
    time it is called. Without corpus-stable tokens, one pass. With them, two (see the module
    docstring): the first pass's output is spooled with `spool`, since until the day's values
    are all known it may still hold one of them raw."""
    first_pass = ordered_map(functools.partial(redact_batch, job=job), batches(), workers)
    if not job.corpus_stable_tokens:
        yield from first_pass
        return
    tables, sealed = spool(REDACTED_SCHEMA), spool(SEALED_SCHEMA)
    summaries: list[RedactedBatch] = []  # each batch's counts; its rows are in the spools
    rows: list[int] = []
    sealed_rows: list[int] = []
    known: dict[str, tuple[str, str]] = {}
    for result in first_pass:
        tables.write(result.table)
        sealed.write(result.sealed)
        rows.append(result.table.num_rows)
        sealed_rows.append(len(result.sealed))
        summaries.append(replace(result, table=result.table.slice(0, 0),
                                 sealed=result.sealed[:0], learned={}))
        for value, entry in result.learned.items():
            known.setdefault(value, entry)
    finder = RecurrenceFinder(known)
    redo = functools.partial(redact_batch, job=job, known=known)
    pending: deque[Future[RedactedBatch]] = deque()
    parts = zip(batches(), exact_chunks(tables.stream(), rows, REDACTED_SCHEMA),
                exact_chunks(sealed.stream(), sealed_rows, SEALED_SCHEMA), summaries,
                strict=True)
    for raw, table, vault_rows, summary in parts:
        if finder.found_in(table):
            pending.append(submit(redo, raw, workers))
        else:
            done: Future[RedactedBatch] = Future()
            done.set_result(replace(summary, table=table, sealed=vault_rows))
            pending.append(done)
        if len(pending) > workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class RecurrenceFinder:
    """Whether any known value is left in a redacted table, on word boundaries, in any text
    (JSON fields included, so each value is also looked for in its JSON-escaped forms): one
    literal database (Hyperscan, else an Aho-Corasick automaton) over every form of every
    value, one pass per text column. A neighbour outside ASCII counts as a boundary, so a
    doubtful place reads as found (the batch is redone, which is safe)."""

    def __init__(self, values: Iterable[str], *, engine: str = "auto") -> None:
        self._forms = sorted({form for value in values for form in _forms(value)})
        self._db = self._automaton = None
        if not self._forms:
            return
        if use_hyperscan(engine):
            self._encoded = [f.encode("utf-8", "surrogatepass") for f in self._forms]
            self._db = hyperscan.Database()
            self._db.compile(expressions=self._encoded, ids=list(range(len(self._forms))),
                             elements=len(self._forms), flags=[0] * len(self._forms),
                             literal=True)
        else:
            self._automaton = ahocorasick.Automaton()
            for form in self._forms:
                self._automaton.add_word(form, form)
            self._automaton.make_automaton()

    def found_in(self, table: pa.Table) -> bool:
        if not self._forms or not table.num_rows:
            return False
        for _rows, column in table_texts(table, REDACTED_TRACE_TEXTS):
            text = "\n".join(v for v in column.to_pylist() if v)
            if text and (self._found_bytes(text) if self._db is not None
                         else self._found_text(text)):
                return True
        return False

    def _found_bytes(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        ends: list[tuple[int, int]] = []
        self._db.scan(data, match_event_handler=lambda i, _s, end, _f, _c:
                      ends.append((i, end)))
        size = len(data)
        for i, end in ends:
            form, raw = self._forms[i], self._encoded[i]
            start = end - len(raw)
            if start > 0 and _is_word(form[0]) and _ascii_word(data[start - 1]):
                continue
            if end < size and _is_word(form[-1]) and _ascii_word(data[end]):
                continue
            return True
        return False

    def _found_text(self, text: str) -> bool:
        return any(on_word_edges(text, last + 1 - len(form), last + 1, form)
                   for last, form in self._automaton.iter(text))


def _ascii_word(byte: int) -> bool:
    return byte < 128 and _is_word(chr(byte))


def _forms(value: str) -> set[str]:
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
