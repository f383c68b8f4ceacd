"""The span-finding engine: where in a batch of texts some detector could match.

With the `hyperscan` package one pass of one database over a batch joined into one UTF-8
buffer reports every place a detector's locator matches; only those places are then tried
with the precise pattern. Without it the same precise patterns run over whole texts behind
literal prefilters (the redactor's `engine="python"`): identical output, slower. Batching
(`_Joined`: many texts as one string, their offsets as numpy arrays) lives here as well, so the
redactor and the residue scanner share it.
"""

from __future__ import annotations

import itertools
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.redaction.detectors import (
    DETECTORS,
    Detector,
    _deny_detector,
    _deny_locators,
)

try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    hyperscan = None
_SEPARATOR = b"\n\x00\n"
_BATCH_BYTES = 8 << 20
class _Locator:
    """One Hyperscan database over every detector's locator (and the deny terms)."""

    def __init__(self, detectors: Sequence[Detector], deny: Detector | None,
                 deny_locators: Sequence[bytes]) -> None:
        som = hyperscan.HS_FLAG_SOM_LEFTMOST
        by_locator: dict[tuple[bytes, int], list[Detector]] = {}
        for det in detectors:
            by_locator.setdefault((det.locator, som), []).append(det)
        name_flags = (som | hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8
                      | hyperscan.HS_FLAG_UCP)
        for locator in deny_locators:
            by_locator.setdefault((locator, name_flags), []).append(deny)
        self.owners: list[tuple[Detector, ...]] = [tuple(d) for d in by_locator.values()]
        # Places found by numpy passes over the bytes, reported under their detector's locator.
        self.byte_places = [(n, det.byte_places) for n, dets in enumerate(self.owners)
                            for det in dets if det.byte_places is not None]
        index = {id(det): n for n, det in enumerate(dict.fromkeys(
            det for dets in self.owners for det in dets))}
        self.plans = [tuple(_plan(index[id(det)], det) for det in dets) for dets in self.owners]
        self.db = hyperscan.Database()
        self.db.compile(expressions=[k[0] for k in by_locator],
                        ids=list(range(len(by_locator))), elements=len(by_locator),
                        flags=[k[1] for k in by_locator])
        self.scratch = _ThreadScratch(self.db)

    def reports(self, buffer: Any) -> array:
        """Every locator match in the buffer as start * len(owners) + locator id."""
        n_ids = len(self.owners)
        found = _scan_keys(self.db, self.scratch.get(), buffer, n_ids)
        if self.byte_places:
            codes = np.frombuffer(buffer, dtype=np.uint8)
            for ident, places in self.byte_places:
                starts = places(codes)
                if len(starts):
                    found.frombytes((starts.astype(np.int64) * n_ids + ident).tobytes())
        return found


def _scan_keys(db: Any, scratch: Any, buffer: Any, n_ids: int) -> array:
    found = array("q")
    add = found.append

    def on_match(ident: int, start: int, _end: int, _flags: int, _ctx: object) -> None:
        add(start * n_ids + ident)

    db.scan(buffer, match_event_handler=on_match, scratch=scratch)
    return found


Reports = list[tuple[int, list[int], list[int], list[int], list[int]]]
def _grouped_reports(batch: _Joined, buffer: Any, keys: array, n_ids: int,
                     group_of: np.ndarray | None = None) -> Reports:
    """Hyperscan reports, deduplicated, as (group, starts, text indexes, text starts, text
    ends), one entry per group (the locator id, or `group_of[id]`), starts in text order.

    Offsets are characters of the joined string. A report on the separator character just
    before a text belongs to that text (a locator may consume one character of left context);
    other reports outside every text are dropped. One text with few reports (a single field
    redacted or checked on its own) takes a path with no numpy call.
    """
    if not keys:
        return []
    if batch.single and len(keys) <= 256:
        text = batch.text
        size = len(text)
        ordered = sorted(set(keys))
        if text.isascii():
            places = [divmod(key, n_ids) for key in ordered]
        else:
            byte_starts = np.array([key // n_ids for key in ordered], dtype=np.int64)
            chars = batch.char_offsets(byte_starts, buffer).tolist()
            places = [(c, key % n_ids) for c, key in zip(chars, ordered, strict=True)]
        groups: dict[int, list[int]] = {}
        for at, ident in places:
            if at < size:
                groups.setdefault(ident if group_of is None else int(group_of[ident]),
                                  []).append(at)
        return [(g, ats, [0] * len(ats), [0] * len(ats), [size] * len(ats))
                for g, ats in sorted(groups.items())]
    unique = np.unique(np.frombuffer(keys, dtype=np.int64))
    starts = batch.char_offsets(unique // n_ids, buffer)
    ids = unique % n_ids
    text_index = batch.text_of(starts)
    inside = starts < batch.ends[text_index]
    group = (ids if group_of is None else group_of[ids])[inside]
    order = np.argsort(group, kind="stable")
    group = group[order]
    starts = starts[inside][order]
    text_index = text_index[inside][order]
    cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(group)]
    ats, owners = starts.tolist(), text_index.tolist()
    lows = batch.starts[text_index].tolist()
    highs = batch.ends[text_index].tolist()
    return [(int(group[a]), ats[a:b], owners[a:b], lows[a:b], highs[a:b])
            for a, b in itertools.pairwise(cuts)]


def _plan(ident: int, det: Detector) -> tuple:
    """A detector as `_run_plan` uses it: everything looked up once."""
    return (ident, det.pattern.match, det.rewind_set, det.rewind_alnum,
            frozenset(det.starts_with), None if det.groups == (0,) else det.groups,
            det.validate, getattr(det.validate, "plain", None), det.canonical, det.priority,
            det.kind)


def _run_plan(plan: tuple, text: str, ats: list[int], owners: list[int], lows: list[int],
              highs: list[int], found: list[tuple], taken: dict[int, int]) -> None:
    """Try one detector's precise pattern at each place its locator reported (see Detector).

    `taken` holds the highest priority found so far for each exact span (start << 32 | end),
    across the plans of one batch: a span that a higher-priority detector already holds would
    lose to it in `_resolve` whatever this one says, so it is not validated again
    (`token = <40 chars>` is both a secret assignment and a keyed random value; the second
    costs a validation and an overlap cluster for nothing)."""
    _ident, match, chars, alnum, first, groups, validate, plain, canonical, priority, kind = plan
    add = found.append
    held = taken.get
    size = len(text)
    if not chars and not first:
        places: Iterable[tuple[int, int, int]] = zip(ats, owners, highs, strict=True)
    else:
        places = _anchors(text, ats, owners, lows, highs, chars, alnum, first)
    for pos, k, hi in places:
        m = match(text, pos, hi)
        if m is None:
            continue
        if groups is None:
            start, end = m.span()
        else:
            for g in groups:
                start, end = m.span(g)
                if start >= 0:
                    break
            if start < 0 or end <= start:
                continue
        span = start << 32 | end  # an int key hashes faster than a (start, end) tuple
        prior = held(span, -1)
        if prior > priority:
            continue
        value = text[start:end]
        if plain is not None:
            if not plain(value):
                continue
        elif validate is not None and not validate(
                value, start > 0 and end < size and text[start - 1] == text[end] in "\"'"):
            continue
        if priority > prior:
            taken[span] = priority
        add((start, end, priority, kind,
             value if canonical is None else canonical(value), value, k))


def _anchors(text: str, ats: list[int], owners: list[int], lows: list[int], highs: list[int],
             chars: frozenset[str], alnum: bool, first: frozenset[str]
             ) -> Iterable[tuple[int, int, int]]:
    """Where to try a pattern whose locator may start one character early (`first`) or inside
    the run the match starts with (`chars`): each place once. A list, not a generator: the
    plan's loop then pays no resume per place."""
    places: list[tuple[int, int, int]] = []
    add = places.append
    if not chars:
        for at, k, lo, hi in zip(ats, owners, lows, highs, strict=True):
            pos = at if text[at] in first else at + 1
            if pos >= lo:
                add((pos, k, hi))
        return places
    seen: set[int] = set()
    strip = "".join(chars)
    for at, k, lo, hi in zip(ats, owners, lows, highs, strict=True):
        pos = at
        if first and text[pos] not in first:
            pos += 1
        if pos < lo:
            continue
        if pos > lo:  # most of the run in C: strip the rewind characters off a short window
            window = pos - 64 if pos - 64 > lo else lo
            pos = window + len(text[window:pos].rstrip(strip))
        while pos > lo:  # the rest: a run longer than the window, non-ASCII letters and digits
            c = text[pos - 1]
            if c in chars or (alnum and c > "\x7f" and c.isalnum()):
                pos -= 1
            else:
                break
        if pos not in seen:
            seen.add(pos)
            add((pos, k, hi))
    return places


class _ThreadScratch:
    """Hyperscan scratch space is not shareable between threads: one per thread."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.local = threading.local()

    def get(self) -> Any:
        scratch = getattr(self.local, "scratch", None)
        if scratch is None:
            scratch = self.local.scratch = hyperscan.Scratch(self.db)
        return scratch


@lru_cache(maxsize=16)
def _locator_for(terms: tuple[str, ...]) -> _Locator | None:
    if hyperscan is None:
        return None
    return _Locator(DETECTORS, _deny_detector(terms), _deny_locators(terms))


_SEP = _SEPARATOR.decode()
class _Joined:
    """Texts joined by `_SEP` into one string (and, on demand, one UTF-8 buffer), with every
    text's character bounds. The separator is a newline on each side, so patterns see a text's
    edges exactly as they would in the text alone (lookarounds, `\\b`); matches are bounded to
    their own text with `endpos`."""

    __slots__ = ("texts", "text", "starts", "ends", "single", "_starts_list", "_ends_list",
                 "_buffer")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.single = len(texts) == 1
        self._buffer: Any = None
        if self.single:
            self.text = texts[0]
            self._starts_list, self._ends_list = [0], [len(self.text)]
            self.starts = np.zeros(1, dtype=np.int64)
            self.ends = np.array(self._ends_list, dtype=np.int64)
            return
        self.text = _SEP.join(texts)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        self.starts = _starts_of(lengths)
        self.ends = self.starts + lengths
        self._starts_list: list[int] | None = None
        self._ends_list: list[int] | None = None

    @classmethod
    def from_arrow(cls, values: pa.Array) -> _Joined:
        """A batch straight from an Arrow string array (nulls read as empty): normalised (NFC,
        only when some text is not ASCII), joined and encoded by Arrow, decoded once, with no
        Python string per text. `texts` stays None."""
        values = pc.fill_null(values.cast(pa.large_string()), "")
        if not pc.all(pc.string_is_ascii(values)).as_py():
            values = pc.utf8_normalize(values, form="NFC")
        lists = pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)
        joined = pc.binary_join(lists, pa.scalar(_SEP, pa.large_string()))
        bounds = np.frombuffer(joined.buffers()[1], dtype=np.int64)[
            joined.offset:joined.offset + 2].tolist()
        buffer = joined.buffers()[2][bounds[0]:bounds[1]]
        sizes = np.asarray(pc.binary_length(values), dtype=np.int64)
        byte_starts = _starts_of(sizes)
        self = cls.__new__(cls)
        self.texts = None
        self.single = len(values) == 1
        self._buffer = buffer
        self.text = str(memoryview(buffer), "utf-8")
        self._starts_list = self._ends_list = None
        self.starts = self.char_offsets(byte_starts, buffer)
        self.ends = self.char_offsets(byte_starts + sizes, buffer)
        return self

    def encoded(self) -> Any:
        """The joined texts as UTF-8, built once per batch: the locator pass and the known-value
        pass both scan it."""
        if self._buffer is None:
            # Text by text: encoding ASCII text is a copy, and one non-ASCII character would
            # make the encoder walk the whole joined string the slow way.
            self._buffer = _SEPARATOR.join([t.encode("utf-8", "surrogatepass")
                                            for t in self.texts])
        return self._buffer

    def own_texts(self) -> tuple[Sequence[str], list[int]]:
        """Each text as its own string, and where that string starts in the joined one (for a
        batch made from Arrow: the joined string itself, at 0). Searching and slicing a text's
        own string is cheaper: one wide character anywhere in a batch widens the joined one."""
        if self.texts is None:
            return [self.text] * len(self.starts), [0] * len(self.starts)
        return self.texts, self.starts_list

    def char_offsets(self, byte_offsets: np.ndarray, buffer: bytes) -> np.ndarray:
        """Character offsets of byte offsets into `encoded()` (a continuation byte maps to the
        character after the one it belongs to)."""
        if self.text.isascii():
            return byte_offsets
        continuation = np.flatnonzero(np.frombuffer(buffer, dtype=np.int8) < -64)
        return byte_offsets - np.searchsorted(continuation, byte_offsets)

    def text_of(self, offsets: np.ndarray) -> np.ndarray:
        """Index of the text each offset falls in; the separator character just before a text
        counts as that text's (a locator may consume one character of left context)."""
        return np.searchsorted(self.starts, offsets + 1, side="right") - 1

    @property
    def starts_list(self) -> list[int]:
        if self._starts_list is None:
            self._starts_list = self.starts.tolist()
        return self._starts_list

    @property
    def ends_list(self) -> list[int]:
        if self._ends_list is None:
            self._ends_list = self.ends.tolist()
        return self._ends_list


def _starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each text starts once they are joined by `_SEP`."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] + len(_SEP), out=starts[1:])
    return starts


HYPERSCAN_AVAILABLE = hyperscan is not None
ENGINES = ("auto", "hyperscan", "python")
"""What a redactor or residue scanner runs on: hyperscan when installed (auto), or by name."""


def use_hyperscan(engine: str) -> bool:
    """Whether `engine` runs on hyperscan; asking for it where it is not installed is an
    error, so a choice is never silently slower."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if engine == "hyperscan" and hyperscan is None:
        raise RuntimeError("the hyperscan package is not installed")
    return engine != "python" and hyperscan is not None


def _arrow_batches(values: pa.Array | pa.ChunkedArray, batch_bytes: int = _BATCH_BYTES
                   ) -> Iterator[tuple[int, _Joined]]:
    """(index of the first text, batch) over an Arrow string array, about `batch_bytes` of
    text a batch."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    first = 0
    for chunk in chunks:
        sizes = np.asarray(pc.fill_null(pc.binary_length(chunk), 0), dtype=np.int64)
        for lo, hi in itertools.pairwise(_cuts(np.cumsum(sizes), batch_bytes)):
            yield first + lo, _Joined.from_arrow(chunk.slice(lo, hi - lo))
        first += len(chunk)


def _batches(texts: Sequence[str], batch_bytes: int = _BATCH_BYTES
             ) -> Iterator[tuple[int, int]]:
    """Index ranges of about `batch_bytes` characters each (one text may exceed it)."""
    if len(texts) <= 1:
        yield from [(0, 1)] if texts else []
        return
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    yield from itertools.pairwise(_cuts(ends, batch_bytes))


def _cuts(ends: np.ndarray, batch_bytes: int = _BATCH_BYTES) -> list[int]:
    """Batch boundaries (indexes) given each text's cumulative end: a batch closes with the
    text that reaches the next multiple of `batch_bytes`."""
    n = len(ends)
    if n == 0:
        return []
    marks = np.arange(batch_bytes, int(ends[-1]) + 1, batch_bytes)
    inner = (np.searchsorted(ends, marks, side="left") + 1).tolist()
    return [0, *sorted({c for c in inner if 0 < c < n}), n]


