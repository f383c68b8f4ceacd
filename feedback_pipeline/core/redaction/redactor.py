"""The redactor: detected spans replaced by tokens, in texts, JSON fields and whole traces.

`Redactor` runs the engine over batches of texts, resolves overlaps, builds tokens (numbered
per trace, or keyed corpus-stable hashes) and propagates known values: a value detected
anywhere in a trace is replaced wherever it recurs in that trace's fields, found with one
multi-literal pass (hyperscan literal mode, or Aho-Corasick). JSON fields are walked string
by string and rebuilt; `vault_frame` turns the token tables into the vault's rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Any

import ahocorasick
import numpy as np
import pandas as pd

from feedback_pipeline.core.redaction.detectors import (
    _SECRET_KEY_WORDS,
    DETECTORS,
    REDACTION_VERSION,
    SECRET_KEY_NAME,
    SECRET_KEY_TRIGGERS,
    STABLE_TOKEN_HEX,
    _clean_terms,
    _deny_detector,
    secret_value_ok,
)
from feedback_pipeline.core.redaction.engine import (
    _BATCH_BYTES,
    _batches,
    _grouped_reports,
    _Joined,
    _locator_for,
    _run_plan,
    hyperscan,
    use_hyperscan,
)
from feedback_pipeline.core.redaction.tokens import (
    Span,
    TokenTable,
    _Candidate,
    _candidate,
    _resolve,
    resolve_overlaps,
)
from feedback_pipeline.core.runtime import gc_paused


@dataclass
class DayValues:
    """Context-found values shared across the batches of a day (corpus-stable tokens only,
    where a value has one token in every trace, so a password found after `-p` in one batch is
    replaced where it recurs bare in another).

    `known`: value -> (kind, canonical value), found elsewhere and searched for in every text;
    `learned`: filled by the call with the context-found values of its own traces."""

    known: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    learned: dict[str, tuple[str, str]] = field(default_factory=dict)


class Redactor:
    """Replaces every detected identifier and secret with a token; see the module docstring."""

    def __init__(self, deny_terms: Sequence[str] = (), *, version: str = REDACTION_VERSION,
                 corpus_key: bytes | None = None, engine: str = "auto",
                 propagate: bool = True, batch_bytes: int = _BATCH_BYTES) -> None:
        fast = use_hyperscan(engine)
        self.batch_bytes = batch_bytes
        self.version = version
        self.deny_terms = tuple(_clean_terms(deny_terms))
        self.corpus_key = corpus_key
        self._deny = _deny_detector(self.deny_terms)
        self._stable_tokens: dict[tuple[str, str], str] = {}
        self._locator = _locator_for(self.deny_terms) if fast else None
        self.propagate = propagate

    @property
    def engine(self) -> str:
        return "python" if self._locator is None else "hyperscan"

    # ---- detection ----
    def detect(self, text: str) -> list[Span]:
        """Non-overlapping (start, end, kind, canonical value, raw value), in text order."""
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans for many texts at once: one Hyperscan pass per batch of about 8 MB. With
        propagation on, a value found in a text is also found where it recurs in that text
        (each text stands alone here, as in `redact_texts`)."""
        present = [t if isinstance(t, str) else "" for t in texts]
        results: list[list[Span]] = [[] for _ in present]
        with gc_paused():
            for lo, hi in _batches(present, self.batch_bytes):
                batch = _Joined(present[lo:hi])
                starts = batch.starts_list
                found = self._detect_joined(batch)
                if self.propagate and found:
                    found = _propagate(batch, found, None, 0, fast=self._locator is not None)
                for start, end, _prio, kind, canon, value, k in found:
                    base = starts[k]
                    results[lo + k].append((start - base, end - base, kind, canon, value))
        return results

    def _detect_joined(self, batch: _Joined) -> list[tuple]:
        """What every text of the batch holds, in text order and offsets of the joined string:
        (start, end, priority, kind, canonical value, raw value, text index)."""
        if self._locator is not None:
            return self._locate(batch)
        found: list[tuple] = []
        for k, (text, base) in enumerate(zip(batch.texts, batch.starts_list, strict=True)):
            if text:
                found.extend((s + base, e + base, 0, kind, c, v, k)
                             for s, e, kind, c, v in self._detect_python(text))
        return found

    def _detect_python(self, text: str) -> list[Span]:
        lowered = text.lower()
        found: list[_Candidate] = []
        for det in DETECTORS:
            if not det.may_match(text, lowered):
                continue
            for m in det.pattern.finditer(text):
                cand = _candidate(det, text, m)
                if cand is not None:
                    found.append(cand)
        if self._deny is not None:
            for m in self._deny.pattern.finditer(text):
                cand = _candidate(self._deny, text, m)
                if cand is not None:
                    found.append(cand)
        return resolve_overlaps(found)

    def _locate(self, batch: _Joined) -> list[tuple]:
        """One Hyperscan pass over the batch; each precise pattern is then tried once where its
        locator reported, anchored and bounded to the text it is in. Reports are grouped by
        locator so each detector's loop runs with everything it needs in local variables."""
        buffer = batch.encoded()
        locator = self._locator
        found: list[tuple] = []
        taken: dict[int, int] = {}
        for owner, ats, owners, lows, highs in _grouped_reports(
                batch, buffer, locator.reports(buffer), len(locator.owners)):
            for plan in locator.plans[owner]:
                _run_plan(plan, batch.text, ats, owners, lows, highs, found, taken)
        return _resolve(found)

    def _label(self, kind: str, canonical: str) -> str | None:
        if self.corpus_key is None:
            return None
        return self._stable_token(kind, canonical)[len(kind) + 2:-1]

    def _stable_token(self, kind: str, canonical: str) -> str:
        """The corpus-stable token of a value: a keyed hash, cached (the cache is bounded)."""
        digest = hmac.new(self.corpus_key, f"{kind}\x00{canonical}".encode(),
                          hashlib.sha256).hexdigest()
        token = f"<{kind}_{digest[:STABLE_TOKEN_HEX]}>"
        if len(self._stable_tokens) >= 200_000:
            self._stable_tokens.clear()
        self._stable_tokens[(kind, canonical)] = token
        return token

    # ---- text ----
    def apply(self, text: str, spans: Sequence[Span], tokens: TokenTable) -> str:
        """Replace the given spans of `text` with tokens from `tokens`."""
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        known = tokens.known_tokens()
        for start, end, kind, canon, value in spans:
            token = known.get((kind, canon))
            if token is None:
                token = tokens.token(kind, canon, value, self._label(kind, canon))
            out.append(text[pos:start])
            out.append(token)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def redact_text(self, text: str | None, tokens: TokenTable) -> str | None:
        """The text with every detected value replaced by its token in `tokens`."""
        if not isinstance(text, str) or not text:
            return text
        return self._redact_all([text], [tokens])[0]

    def redact_texts(self, texts: Sequence[str | None],
                     tokens: Sequence[TokenTable] | None = None) -> list[str | None]:
        """Batch form of redact_text; one TokenTable per text unless given."""
        present = [t if isinstance(t, str) else "" for t in texts]
        redacted = self._redact_all(present, tokens)
        return [r if isinstance(t, str) else t for t, r in zip(texts, redacted, strict=True)]

    def _redact_all(self, texts: list[str], tables: Sequence[TokenTable] | None,
                    whole_secrets: frozenset[int] | set[int] = frozenset(),
                    day: DayValues | None = None, preset: _Preset | None = None) -> list[str]:
        """Every text redacted with the token table at the same index, in text order (so
        tokens number in order of first appearance across texts sharing a table); without
        tables, each text numbers its own tokens and no mapping is kept. A text whose index is
        in `whole_secrets` becomes one SECRET token. Texts with nothing found come back as the
        same objects. `day` and `preset` give values known from elsewhere (see `_propagate`)."""
        out = list(texts)
        with gc_paused():
            for lo, hi in _batches(texts, self.batch_bytes):
                self._redact_batch(_Joined(texts[lo:hi]), tables, whole_secrets, out, lo, day,
                                   preset)
        return out

    def _redact_batch(self, batch: _Joined, tables: Sequence[TokenTable] | None,
                      whole_secrets: frozenset[int] | set[int], out: list[str], lo: int,
                      day: DayValues | None = None, preset: _Preset | None = None) -> None:
        # A function of its own so that its temporaries are gone before the collector resumes.
        spans = self._detect_joined(batch)
        forced = [k - lo for k in whole_secrets if lo <= k < lo + len(batch.starts)]
        batch_wide = self.corpus_key is not None and tables is not None
        if day is not None and day.known and batch_wide:  # the day's values, in every text
            preset = {**(preset or {}), 0: day.known}
        if self.propagate and (spans or forced or preset):
            spans = _propagate(batch, spans, tables, lo,
                               [(k, batch.texts[k].strip()) for k in forced],
                               batch_wide=batch_wide, fast=self._locator is not None, day=day,
                               preset=preset)
        if spans or forced:
            self._apply_joined(batch, spans, forced, tables, out, lo)

    def _apply_joined(self, batch: _Joined, found: list[tuple], forced: list[int],
                      tables: Sequence[TokenTable] | None, out: list[str], offset: int) -> None:
        """Write the redacted form of every text of the batch that holds something into
        `out[offset + k]`; the texts in `forced` become one SECRET token each."""
        if forced:
            whole = set(forced)
            found = [f for f in found if f[6] not in whole]
            found += [(batch.starts_list[k], batch.ends_list[k], 0, "SECRET", batch.texts[k],
                       batch.texts[k], k) for k in forced]
            found.sort()
        starts, ends = batch.starts_list, batch.ends_list
        stable = self.corpus_key is not None
        stable_tokens = self._stable_tokens
        # Stable tokens need no table when nobody keeps the mapping.
        keep_tables = tables is not None or not stable
        current = -1
        pieces: list[str] = []
        add = pieces.append
        # Pieces are cut from each text's own string (`own_texts`), offsets less `base`.
        own_strings, bases = batch.own_texts()
        own, base, pos, stop = batch.text, 0, 0, 0
        table = TokenTable()
        by_value = table.known_tokens()
        for start, end, _prio, kind, canon, value, k in found:
            if k != current:
                if current >= 0:
                    add(own[pos:stop])
                    out[offset + current] = "".join(pieces)
                current = k
                own, base = own_strings[k], bases[k]
                pos, stop = starts[k] - base, ends[k] - base
                pieces = []
                add = pieces.append
                if keep_tables:
                    table = TokenTable() if tables is None else tables[offset + k]
                    by_value = table.known_tokens()
            key = (kind, canon)
            if not keep_tables:
                token = stable_tokens.get(key) or self._stable_token(kind, canon)
            else:
                token = by_value.get(key)
                if token is None:
                    if stable:
                        token = table.record(kind, canon, value, stable_tokens.get(key)
                                             or self._stable_token(kind, canon))
                    else:
                        token = table.token(kind, canon, value)
            add(own[pos:start - base])
            add(token)
            pos = end - base
        if current >= 0:
            add(own[pos:stop])
            out[offset + current] = "".join(pieces)

    def redact_strings_in_json(self, json_text: str | None, tokens: TokenTable) -> str | None:
        """Redact every string (keys and values) inside a JSON document, keeping its shape.

        A string value under a secret-named key (`"password": "..."`) is a secret whatever it
        looks like. A document with nothing to redact comes back byte for byte; text that is
        not valid JSON is redacted as plain text.
        """
        if not isinstance(json_text, str) or not json_text:
            return json_text
        texts: list[str] = []
        secrets: set[int] = set()
        job = _json_job(json_text, texts, secrets)
        redacted = self._redact_all(texts, [tokens] * len(texts), secrets)
        return _finish_json(job, texts, redacted)

    # ---- tables ----
    def redact_traces(self, traces: pd.DataFrame, day: DayValues | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Trace rows -> (redacted rows plus redaction_version, vault rows).

        One TokenTable per trace, shared by every field of that trace in the order prompt,
        context, candidates (text, generation), approved_answer, extra_json, so tokens number
        in order of first appearance. Every text of the table, and every string inside its
        JSON fields, goes through one batched detection. The input frame is not changed.
        Vault rows: trace_id, token, kind, value (one per distinct token per trace).

        With `day` (corpus-stable tokens only), the values of `day.known` are replaced wherever
        they stand on word boundaries in these traces, and `day.learned` receives the
        context-found values of these traces (see `DayValues`).
        """
        if day is not None and (self.corpus_key is None or not self.propagate):
            raise ValueError("day-wide known values need corpus-stable tokens and propagation")
        with gc_paused():
            return self._redact_traces(traces, day)

    def _redact_traces(self, traces: pd.DataFrame, day: DayValues | None
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
        out = traces.copy()
        n = len(out)
        ids = ([str(t) for t in out["trace_id"].tolist()] if "trace_id" in out
               else [str(i) for i in range(n)])
        columns = {c: out[c].tolist() if c in out else [None] * n
                   for c in ("prompt", "context", "approved_answer", "extra_json")}
        candidates = [_candidate_list(c) for c in out["candidates"].tolist()] \
            if "candidates" in out else [None] * n
        tables = [TokenTable() for _ in range(n)]
        skipped: list[tuple[int, int | None, str]] = []  # JSON fields not parsed (see below)
        texts: list[str] = []
        table_of: list[TokenTable] = []
        secrets: set[int] = set()
        append = texts.append
        plan = []
        generations = [c.get("generation") for cands in candidates for c in cands or ()]
        unchanged = self._json_unchanged(generations + columns["extra_json"])
        generation_unchanged = iter(unchanged[:len(generations)])
        extra_unchanged = unchanged[len(generations):]
        for i in range(n):
            first = len(texts)
            row_slots: list[Any] = []
            for column in ("prompt", "context"):
                value = columns[column][i]
                if isinstance(value, str) and value:
                    row_slots.append(len(texts))
                    append(value)
                else:
                    row_slots.append(None)
            cand_slots = []
            for cand in candidates[i] or ():
                text, generation = cand.get("text"), cand.get("generation")
                t = None
                if isinstance(text, str) and text:
                    t = len(texts)
                    append(text)
                keep = next(generation_unchanged)
                g = None
                if isinstance(generation, str) and generation:
                    if keep:
                        skipped.append((i, len(cand_slots), generation))
                    else:
                        g = _json_job(generation, texts, secrets)
                cand_slots.append((t, g))
            row_slots.append(cand_slots)
            value = columns["approved_answer"][i]
            if isinstance(value, str) and value:
                row_slots.append(len(texts))
                append(value)
            else:
                row_slots.append(None)
            value = columns["extra_json"][i]
            if isinstance(value, str) and value and extra_unchanged[i]:
                skipped.append((i, None, value))
            row_slots.append(_json_job(value, texts, secrets)
                             if isinstance(value, str) and value and not extra_unchanged[i]
                             else None)
            plan.append(row_slots)
            table_of.extend([tables[i]] * (len(texts) - first))
        if day is None and self.corpus_key is not None and self.propagate:
            day = DayValues()  # collects the batch's values for the JSON fields let through
        redacted = self._redact_all(texts, table_of, secrets, day)
        new = {c: list(v) for c, v in columns.items()}
        new_candidates: list[Any] = []
        for i, (p, c, cand_slots, a, x) in enumerate(plan):
            if p is not None:
                new["prompt"][i] = redacted[p]
            if c is not None:
                new["context"][i] = redacted[c]
            cands = candidates[i]
            if cands is not None:
                for cand, (t, g) in zip(cands, cand_slots, strict=True):
                    if t is not None:
                        cand["text"] = redacted[t]
                    if g is not None:
                        cand["generation"] = _finish_json(g, texts, redacted)
            new_candidates.append(cands)
            if a is not None:
                new["approved_answer"][i] = redacted[a]
            if x is not None:
                new["extra_json"][i] = _finish_json(x, texts, redacted)
        if skipped and self.propagate:
            self._redact_skipped_json(skipped, tables, new_candidates, new["extra_json"], day)
        for column, values in new.items():
            if column in out:
                out[column] = pd.Series(values, index=out.index, dtype=out[column].dtype)
        if "candidates" in out:
            out["candidates"] = pd.Series(new_candidates, index=out.index, dtype=object)
        out["redaction_version"] = self.version
        return out, vault_frame(ids, tables)

    def _redact_skipped_json(self, skipped: list[tuple[int, int | None, str]],
                             tables: list[TokenTable], candidates: list[Any],
                             extra_json: list[Any], day: DayValues | None) -> None:
        """The JSON fields `_json_unchanged` let through unparsed hold nothing detectable, but
        may hold a known value (`{"note": "call S3cr3t"}` beside `mysql -pS3cr3t`): those
        with one are parsed and redacted now, each trace's known values given as found.
        `skipped`: (trace index, candidate index or None for extra_json, raw document)."""
        if self.corpus_key is not None and day is not None:
            # one token per value in every trace: the batch's values, and the day's
            shared = {**day.learned, **day.known}
            if not shared:
                return
            hits = [skipped[k] for k in _texts_holding(
                [raw for _i, _c, raw in skipped], sorted(shared), self._locator is not None)]
            preset: _Preset = {0: shared}
        else:
            known = {i: _propagatable_values(tables[i]) for i in {job[0] for job in skipped}}
            hits = [job for job in skipped if any(v in job[2] for v in known[job[0]])]
            preset = {id(tables[i]): known[i] for i, _c, _raw in hits}
        if not hits:
            return
        texts: list[str] = []
        table_of: list[TokenTable] = []
        secrets: set[int] = set()
        jobs = []
        for i, _c, raw in hits:
            first = len(texts)
            jobs.append(_json_job(raw, texts, secrets))
            table_of.extend([tables[i]] * (len(texts) - first))
        redacted = self._redact_all(texts, table_of, secrets, None, preset)
        for (i, c, _raw), job in zip(hits, jobs, strict=True):
            if c is None:
                extra_json[i] = _finish_json(job, texts, redacted)
            else:
                candidates[i][c]["generation"] = _finish_json(job, texts, redacted)

    def _json_unchanged(self, fields: Sequence[Any]) -> list[bool]:
        """Which JSON fields certainly come back byte for byte, told without parsing them.

        Without escapes every string of the document is a substring of its text, between
        quotes (or, for long integers, JSON punctuation), which every locator treats as it
        treats the edge of a text; so when no locator reports anywhere in the text, none would
        in any of its strings. A secret-named key makes its string values secrets whatever they
        look like, so such a document is always parsed.
        """
        present = [f if isinstance(f, str) else "" for f in fields]
        if self._locator is None or not present:
            return [False] * len(present)
        located = np.zeros(len(present), dtype=bool)
        for lo, hi in _batches(present, self.batch_bytes):
            batch = _Joined(present[lo:hi])
            buffer = batch.encoded()
            for _owner, _ats, owners, _lows, _highs in _grouped_reports(
                    batch, buffer, self._locator.reports(buffer), len(self._locator.owners)):
                located[[lo + k for k in owners]] = True
        return [not hit and "\\" not in raw and not _has_secret_key(raw)
                for hit, raw in zip(located.tolist(), present, strict=True)]

    def redact_trace_batches(
        self, batches: Iterable[pd.DataFrame]
    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Streaming form: one (redacted, vault) pair per input batch; memory is one batch."""
        for batch in batches:
            yield self.redact_traces(batch)


PROPAGATE_MIN_CHARS = 4
PROPAGATED_PRIORITY = 5
# Kinds found only by their context (a key name, a flag, a URL's userinfo, a commit word):
# elsewhere the same value has no context, so only propagation finds it. Values of the other
# kinds have a shape of their own and are found wherever they recur anyway.
PROPAGATED_KINDS = frozenset({
    "PASSWORD", "SECRET", "AWS_SECRET_KEY", "COMMIT", "DOCKER_AUTH", "AZURE_KEY",
    "SAS_SIGNATURE", "AWS_SIGNATURE", "SENTRY_DSN", "HEROKU_KEY", "SSN",
})
_Preset = dict[Any, Mapping[str, tuple[str, str]]]
"""Known values per propagation group: group -> value -> (kind, canonical value)."""


def _propagatable(kind: str, value: str) -> bool:
    """Whether a found value is searched for elsewhere (12- and 40-hex commits are left: the
    same shapes are image ids and checksums)."""
    return kind in PROPAGATED_KINDS and len(value) >= PROPAGATE_MIN_CHARS \
        and not (kind == "COMMIT" and len(value) in (12, 40))


def _propagatable_values(table: TokenTable) -> dict[str, tuple[str, str]]:
    """A trace's found values that propagation searches for: raw value -> (kind, canonical)."""
    entries = dict(table.entries())
    out: dict[str, tuple[str, str]] = {}
    for (kind, canon), token in table.known_tokens().items():
        value = entries[token][1]
        if _propagatable(kind, value):
            out.setdefault(value, (kind, canon))
    return out


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def on_word_edges(text: str, start: int, end: int, value: str) -> bool:
    """Whether `value` at text[start:end] stands on word boundaries where its own edge is a
    word character (`S3cr3t` in `(S3cr3t)`, not in `xS3cr3t`): where a known value counts."""
    if start > 0 and _is_word(value[0]) and _is_word(text[start - 1]):
        return False
    return not (end < len(text) and _is_word(value[-1]) and _is_word(text[end]))


FIND_MAX_VALUES = 8
ONE_PASS_MIN_TEXTS = 64
ONE_PASS_TEXTS_PER_GROUP = 4
"""From ONE_PASS_MIN_TEXTS texts to search, when groups of ONE_PASS_TEXTS_PER_GROUP texts on
average share their known values (a trace's fields, a day's corpus-stable tokens), one pass
over the whole joined batch beats a search per text (the per-text cost is Python calls and a
rescan per value; the pass is one C loop). Texts that each know their own
values (a trace's, a text's) are still searched one by one: a pass over the batch would be
matched against every other text's values for nothing."""
def _occurrences(batch: _Joined, values_of: Callable[[int], Sequence[str]],
                 texts: Sequence[int], fast: bool, *, own: Mapping[tuple[int, str], int],
                 n_groups: int) -> Iterator[tuple[int, int, str]]:
    """(text index, end, value) of every occurrence, inside each given text of the batch, of
    the known values of its group (`values_of(k)`), in character offsets of the joined text.
    Many texts sharing their values (ONE_PASS_MIN_TEXTS): one literal matcher over every
    group's values scans the joined text once (`_literal_matches`), and a match counts only
    inside a given text whose group knows the value. Otherwise each text is searched alone, with `str.find` per value for a group with a few
    values and an automaton for one with more, so the cost stays linear in the text however
    many values a trace holds.

    `own` counts the detections of each (text, value): a value that occurs in a text no more
    often than it was detected there has no recurrence to report (however its occurrences
    overlap, one apart from the detections would make one more that does not overlap), so
    one C-level count replaces the search, the usual case for a value found in its own text.
    `n_groups` is how many groups the given texts fall in (each group's values one list)."""
    text = batch.text
    starts, ends = batch.starts_list, batch.ends_list
    if len(texts) >= ONE_PASS_MIN_TEXTS and n_groups * ONE_PASS_TEXTS_PER_GROUP <= len(texts):
        # texts share their values (a trace's fields, a day): one pass finds them all
        wanted = {k: values_of(k) for k in texts}
        shared = {id(values): values for values in wanted.values()}  # one list per group
        sets = {key: frozenset(values) for key, values in shared.items()}
        union = sorted(set().union(*sets.values()))
        for end, value in _literal_matches(batch, union, fast):
            k = bisect_right(starts, end - len(value)) - 1
            values = wanted.get(k)
            if values is not None and end <= ends[k] and value in sets[id(values)]:
                yield k, end, value
        return
    automata: dict[int, Any] = {}
    own_strings, shifts = batch.own_texts()
    for k in texts:
        values = values_of(k)
        start, end = starts[k], ends[k]
        if len(values) <= FIND_MAX_VALUES:
            alone, shift = own_strings[k], shifts[k]
            lo, hi = start - shift, end - shift
            for value in values:
                if alone.count(value, lo, hi) <= own.get((k, value), 0):
                    continue
                at = alone.find(value, lo, hi)
                while at >= 0:
                    yield k, at + shift + len(value), value
                    at = alone.find(value, at + 1, hi)
            continue
        automaton = automata.get(id(values))
        if automaton is None:
            automaton = automata[id(values)] = ahocorasick.Automaton()
            for value in values:
                automaton.add_word(value, value)
            automaton.make_automaton()
        # A slice, not iter(text, start, end): pyahocorasick converts the whole string it is
        # given on every call.
        for last, value in automaton.iter(text[start:end]):
            yield k, start + last + 1, value


_LITERAL_DATABASES = threading.local()
def _literal_database(values: Sequence[str]) -> Any:
    """A Hyperscan literal database over `values`, the last one kept per thread: a batch's
    known-value pass and the check of its unparsed JSON fields ask for the same values, and
    compiling a thousand literals costs as much as scanning megabytes with them. Per thread,
    because a database's own scratch space serves one scan at a time."""
    key = tuple(values)
    cached = getattr(_LITERAL_DATABASES, "last", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    db = hyperscan.Database()
    db.compile(expressions=[v.encode("utf-8", "surrogatepass") for v in values],
               ids=list(range(len(values))), elements=len(values),
               flags=[0] * len(values), literal=True)
    _LITERAL_DATABASES.last = (key, db)
    return db


def _literal_matches(batch: _Joined, values: Sequence[str], fast: bool = True
                     ) -> Iterator[tuple[int, str]]:
    """(end, value) of every occurrence of every value in the joined text, in character
    offsets: hyperscan's literal mode over the batch's UTF-8 buffer when `fast` and it is
    installed, else one pyahocorasick automaton (all of it a C loop)."""
    if not values:
        return
    if not fast or hyperscan is None:
        automaton = ahocorasick.Automaton()
        for value in values:
            automaton.add_word(value, value)
        automaton.make_automaton()
        for last, value in automaton.iter(batch.text):
            yield last + 1, value
        return
    db = _literal_database(values)
    ids: list[int] = []
    byte_ends: list[int] = []

    def on_match(value_id: int, _start: int, end: int, _flags: int, _context: Any) -> None:
        ids.append(value_id)
        byte_ends.append(end)

    buffer = batch.encoded()
    db.scan(buffer, match_event_handler=on_match)
    if not ids:
        return
    ends = batch.char_offsets(np.asarray(byte_ends, dtype=np.int64), buffer).tolist()
    for value_id, end in zip(ids, ends, strict=True):
        yield end, values[value_id]


def _texts_holding(texts: Sequence[str], values: Sequence[str], fast: bool) -> list[int]:
    """Indexes, in order, of the texts in which some value occurs (anywhere, not only on word
    edges): one literal pass over them all (`_literal_matches`, whose database the batch's
    known-value pass has usually just built for the same values)."""
    joined = _Joined(texts)
    starts = joined.starts_list
    holding: set[int] = set()
    for end, value in _literal_matches(joined, values, fast):
        k = bisect_right(starts, end - len(value)) - 1
        if end <= joined.ends_list[k]:
            holding.add(k)
    return sorted(holding)


def _propagate(batch: _Joined, found: list[tuple], tables: Sequence[TokenTable] | None,
               offset: int, whole: Sequence[tuple[int, str]] = (), *,
               batch_wide: bool = False, fast: bool = True,
               day: DayValues | None = None, preset: _Preset | None = None) -> list[tuple]:
    """Known-value propagation: every value found in a text is also found wherever it recurs
    in a text that shares its token table (the other fields of the same trace), even with no
    context around it (`Contact S3cr3t directly.`). Without tables a text shares only with
    itself; `batch_wide` (corpus-stable tokens, where a value has one token in every trace)
    shares across every text of the batch. Only the texts of groups that hold a known value
    are searched (`_occurrences`); a recurrence must stand on word boundaries (where the
    value's own edge is a word character), takes the kind and token of the first detection,
    and loses any overlap to a real detection. `preset` gives values known from elsewhere per
    group (a table's id, or 0 when batch-wide: the day's values); with `day` (batch-wide only)
    the values found here are added to what the day has learned."""
    found = sorted(found)
    n_texts = len(batch.starts)
    groups: Sequence[int] = [0] * n_texts if batch_wide else range(n_texts) if tables is None \
        else [id(t) for t in tables[offset:offset + n_texts]]
    known: dict[str, dict[int, tuple[str, str]]] = {}
    searched: list[tuple[int, str]] = []
    kinds = PROPAGATED_KINDS
    for f in found:  # every detection of the batch: most kinds fail the first, cheap test
        kind = f[3]
        if kind in kinds:
            value = f[5]
            if _propagatable(kind, value):
                k = f[6]
                by_group = known.get(value)
                if by_group is None:
                    known[value] = {groups[k]: (kind, f[4])}
                elif groups[k] not in by_group:
                    by_group[groups[k]] = (kind, f[4])
                searched.append((k, value))
    own = Counter(searched)  # detections of each searched value in each text
    for k, value in whole:  # texts that are one secret each (JSON values of secret keys)
        if len(value) >= PROPAGATE_MIN_CHARS:
            known.setdefault(value, {}).setdefault(groups[k], ("SECRET", value))
    if day is not None and batch_wide:
        for value, by_group in known.items():
            day.learned.setdefault(value, by_group[0])
    for group, values in (preset or {}).items():
        for value, entry in values.items():
            known.setdefault(value, {}).setdefault(group, entry)
    if not known:
        return found
    values_by_group: dict[int, list[str]] = {}
    for value, by_group in known.items():
        for g in by_group:
            values_by_group.setdefault(g, []).append(value)
    scan = sorted(values_by_group) if tables is None \
        else [k for k, g in enumerate(groups) if g in values_by_group]
    text = batch.text
    found_starts: list[int] = []
    found_ends: list[int] = []
    n_found = len(found)
    extra: list[tuple] = []
    for k, end, value in _occurrences(batch, lambda k: values_by_group[groups[k]], scan,
                                      fast, own=own,
                                      n_groups=len({groups[k] for k in scan})):
        if not found_starts and n_found:  # built on the first recurrence: most batches have none
            found_starts = [f[0] for f in found]
            found_ends = [f[1] for f in found]
        entry = known[value][groups[k]]
        start = end - len(value)
        i = bisect_right(found_starts, start) - 1
        if (i >= 0 and found_ends[i] > start) or (i + 1 < n_found and found_starts[i + 1] < end):
            continue  # a real detection is there (the value's own place, or something else)
        if not on_word_edges(text, start, end, value):
            continue
        extra.append((start, end, PROPAGATED_PRIORITY, entry[0], entry[1], value, k))
    if not extra:
        return found
    return sorted(found + _resolve(extra))


def _candidate_list(value: Any) -> list[dict] | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return [dict(c) for c in items]


_NOT_JSON = object()
class _JsonJob:
    """A JSON field: its raw text, the parsed document (or _NOT_JSON) and the slots its
    strings took in the batch being redacted."""

    __slots__ = ("raw", "doc", "first", "last")

    def __init__(self, raw: str, doc: Any, first: int, last: int) -> None:
        self.raw, self.doc, self.first, self.last = raw, doc, first, last


def _json_job(raw: str, texts: list[str], secrets: set[int]) -> _JsonJob:
    """Parse `raw` and queue its strings in `texts` (the raw text itself if it is not JSON);
    the slots of string values under secret-named keys go into `secrets`."""
    first = len(texts)
    if len(raw) <= SMALL_JSON_CHARS:
        doc, strings, secret_slots = _parsed_small_json(raw)
        texts.extend(strings)
        secrets.update(first + slot for slot in secret_slots)
        return _JsonJob(raw, doc, first, len(texts))
    try:
        doc = json.loads(raw)
    except ValueError:
        texts.append(raw)
        return _JsonJob(raw, _NOT_JSON, first, first + 1)
    _json_strings(doc, texts, None, secrets)
    return _JsonJob(raw, doc, first, len(texts))


SMALL_JSON_CHARS = 256
@lru_cache(maxsize=4096)
def _parsed_small_json(raw: str) -> tuple[Any, tuple[str, ...], tuple[int, ...]]:
    """A small document parsed once: (document or _NOT_JSON, its strings in `_json_strings`
    order, the slots of secret values among them). Small documents repeat (a candidate's
    generation settings, a tool's arguments), and the document is only read afterwards."""
    strings: list[str] = []
    secrets: set[int] = set()
    try:
        doc = json.loads(raw)
    except ValueError:
        return _NOT_JSON, (raw,), ()
    _json_strings(doc, strings, None, secrets)
    return doc, tuple(strings), tuple(sorted(secrets))


# A JSON key (a string followed by a colon) that SECRET_KEY_NAME matches whole.
_SECRET_JSON_KEY = re.compile(rf'(?i)"(?:[a-z0-9]+[_.-])*{_SECRET_KEY_WORDS}"\s*:')
def _has_secret_key(raw: str) -> bool:
    """Whether the document has a secret-named key. The regex tries its key branch at every
    quote of a document, so ASCII text (where case-insensitive matching is plain lower-casing)
    is first checked for the key words at C speed; other text goes straight to the regex,
    whose case-insensitive matching also pairs letters such as `ı` with `i`."""
    if raw.isascii():
        lowered = raw.lower()
        if not any(word in lowered for word in SECRET_KEY_TRIGGERS):
            return False
    return _SECRET_JSON_KEY.search(raw) is not None


def _is_long_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**9


@lru_cache(maxsize=4096)
def _secret_key_name(key: str) -> bool:
    """SECRET_KEY_NAME matches the key whole; cached, since a day's JSON documents repeat a
    small vocabulary of keys (`role`, `content`, `arguments`) thousands of times."""
    return SECRET_KEY_NAME.match(key) is not None


def _json_strings(value: Any, out: list[str], key: str | None, secrets: set[int]) -> None:
    """Every string of a parsed JSON document, in the order `_rebuild_json` consumes them."""
    if isinstance(value, str):
        if key is not None and _secret_key_name(key) and secret_value_ok(value, True):
            secrets.add(len(out))
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            _json_strings(v, out, k, secrets)
    elif isinstance(value, list):
        for v in value:
            _json_strings(v, out, key, secrets)
    elif _is_long_int(value):
        out.append(str(value))


def _finish_json(job: _JsonJob, texts: list[str], redacted: list[str]) -> str:
    """The JSON field rebuilt from its redacted strings; byte for byte when none changed."""
    if job.doc is _NOT_JSON:
        return redacted[job.first]
    if redacted[job.first:job.last] == texts[job.first:job.last]:  # nothing was replaced
        return job.raw
    rebuilt = _rebuild_json(job.doc, iter(range(job.first, job.last)), texts, redacted)
    return json.dumps(rebuilt, ensure_ascii=False)


def _rebuild_json(value: Any, slots: Iterator[int], texts: list[str], redacted: list[str]
                  ) -> Any:
    if isinstance(value, str):
        return redacted[next(slots)]
    if isinstance(value, dict):
        rebuilt = {}
        for _k, v in value.items():
            key = redacted[next(slots)]
            rebuilt[key] = _rebuild_json(v, slots, texts, redacted)
        return rebuilt
    if isinstance(value, list):
        return [_rebuild_json(v, slots, texts, redacted) for v in value]
    if _is_long_int(value):
        i = next(slots)
        return value if redacted[i] is texts[i] else redacted[i]
    return value


VAULT_COLUMNS = ["trace_id", "token", "kind", "value"]
def vault_frame(trace_ids: Sequence[str], tables: Sequence[TokenTable]) -> pd.DataFrame:
    ids: list[str] = []
    tokens: list[str] = []
    entries: list[tuple[str, str]] = []
    for tid, table in zip(trace_ids, tables, strict=True):
        if len(table):
            ids.extend([tid] * len(table))
            tokens.extend(table.tokens())
            entries.extend(table.sealed())
    kinds = list(map(itemgetter(0), entries))
    values = list(map(itemgetter(1), entries))
    return pd.DataFrame({"trace_id": ids, "token": tokens, "kind": kinds, "value": values},
                        columns=VAULT_COLUMNS, dtype=object)


def parse_deny_list(text: str) -> list[str]:
    """Terms of a deny list: one a line, `#` starts a comment, blanks ignored."""
    return [term for line in text.splitlines() if (term := line.split("#", 1)[0].strip())]


