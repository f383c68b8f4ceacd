"""Train/eval leakage: every training row against the frozen evaluation set, in DuckDB.

Three rules: the same id; the same normalised redacted prompt under another id (the fingerprint
from core.fingerprint, computed once at redaction so this is a join); and a near-duplicate
paraphrase above a declared word-shingle Jaccard threshold. Each finding names both ids and the
rule that matched.

Near-duplicates stream: training prompts arrive in record batches; each batch is normalised,
split and hashed column-wise (Arrow and numpy, one crc32 call per distinct word), exact prefix
filtering against the frozen prompts leaves the few pairs that can reach the threshold, and
only those are scored, exactly: unlike MinHash/LSH banding, no qualifying pair can be missed.
"""

from __future__ import annotations

import functools
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.fingerprint import Words, normalise_text, split_words, string_slices

LEAK_COLUMNS = ["rule", "lane", "training_id", "frozen_id"]


def find_leaks(training: pd.DataFrame | str, frozen: pd.DataFrame) -> pd.DataFrame:
    """Leaks by id and by content between training rows and frozen rows.

    `training` is a frame (lane, trace_id, prompt_fingerprint) or a DuckDB FROM-clause with those
    columns, e.g. `read_parquet([...])` over every partition, so the rows never pass through
    pandas. `frozen` has trace_id and prompt_fingerprint (null when the trace is unseen).
    """
    if isinstance(training, pd.DataFrame) and training.empty or frozen.empty:
        return pd.DataFrame(columns=LEAK_COLUMNS)
    with duckdb.connect() as con:
        if isinstance(training, pd.DataFrame):
            con.register("training_frame", training[["lane", "trace_id", "prompt_fingerprint"]])
            source = "training_frame"
        else:
            source = training
        con.register("frozen", frozen[["trace_id", "prompt_fingerprint"]])
        return con.execute(
            f"""
            WITH training AS (SELECT lane, trace_id, prompt_fingerprint FROM {source})
            SELECT DISTINCT 'id' AS rule, t.lane, t.trace_id AS training_id, f.trace_id AS frozen_id
            FROM training t JOIN frozen f ON t.trace_id = f.trace_id
            UNION
            SELECT DISTINCT 'content', t.lane, t.trace_id, f.trace_id
            FROM training t JOIN frozen f
              ON t.prompt_fingerprint = f.prompt_fingerprint AND t.trace_id <> f.trace_id
            ORDER BY 1, 3, 4, 2
            """
        ).df()


def leaked_ids(leaks: pd.DataFrame) -> list[str]:
    return sorted(set(leaks["training_id"]))


# ---- near-duplicates: word 3-gram shingles, prefix filter, exact Jaccard and MinHash/LSH ----

NEAR_DUPLICATE_COLUMNS = ["rule", "lane", "training_id", "frozen_id", "similarity"]
TrainingPrompts = (pd.DataFrame | pa.Table | pa.RecordBatch
                   | Iterable[pd.DataFrame | pa.Table | pa.RecordBatch])


def shingle_hashes(text: str | None, k: int = 3) -> np.ndarray:
    """Stable 32-bit hashes of the word k-grams of the normalised text (unique, sorted): the
    crc32 of the k words joined by single spaces; a text of fewer than k words is one gram."""
    words = normalise_text(text or "").split()
    if not words:
        return np.zeros(0, dtype=np.uint64)
    grams = [" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))]
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64,
                                 count=len(grams)))


class Shingles(NamedTuple):
    """The shingle hashes of many prompts, row after row (`offsets` has n + 1 entries); a row
    may repeat a hash, which neither MinHash nor the unique sets used for Jaccard mind."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return np.unique(self.values[self.offsets[i]:self.offsets[i + 1]])


_SPAN = 256
_SPACE_CRC = zlib.crc32(b" ")


@functools.cache
def _carry_tables() -> np.ndarray:
    """Byte tables of zlib's crc32_combine operator: entry (n, p, v) is the crc32 state v << 8p
    carried over n zero bytes, for n < _SPAN. crc32(X + Y) = carry(crc32(X), len(Y)) ^ crc32(Y)
    turns word crcs into gram crcs without building the gram strings."""
    basis = np.zeros((_SPAN, 32), dtype=np.uint32)
    for n in range(_SPAN):
        zeros = bytes(n)
        plain = zlib.crc32(zeros)
        basis[n] = [zlib.crc32(zeros, 1 << bit) ^ plain for bit in range(32)]
    bits = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)
    tables = np.empty((_SPAN, 4, 256), dtype=np.uint32)
    for p in range(4):
        spread = np.where(bits[None], basis[:, None, 8 * p:8 * p + 8], np.uint32(0))
        tables[:, p] = np.bitwise_xor.reduce(spread, axis=2)
    return tables.reshape(-1)


def _carry_short(state: np.ndarray, length: np.ndarray) -> np.ndarray:
    tables = _carry_tables()
    base = length.astype(np.int64) << 10
    return (tables[base | (state & 0xFF)] ^ tables[base | 256 | ((state >> 8) & 0xFF)]
            ^ tables[base | 512 | ((state >> 16) & 0xFF)] ^ tables[base | 768 | (state >> 24)])


def _carry(state: np.ndarray, length: np.ndarray) -> np.ndarray:
    """crc32 states carried over `length` more bytes (lengths of any size)."""
    long = np.flatnonzero(length >= _SPAN)
    if len(long):
        state, length = state.copy(), length.copy()
        sub_state, sub_length = state[long], length[long]
        while (more := sub_length >= _SPAN).any():
            sub_state[more] = _carry_short(sub_state[more],
                                           np.full(int(more.sum()), _SPAN - 1))
            sub_length[more] -= _SPAN - 1
        state[long], length[long] = sub_state, sub_length
    return _carry_short(state, length)


def _distinct_words(words: Words) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each word's code, and each distinct word's crc32 and byte length (one zlib call per
    distinct word; Arrow's hash table finds them)."""
    lengths = words.ends - words.starts
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    large = bounds[-1] >= 2**31
    packed = pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(), len(lengths),
        [None, pa.py_buffer(bounds if large else bounds.astype(np.int32)),
         pa.py_buffer(words.data[words.data != ord(" ")])])
    encoded = pc.dictionary_encode(packed)
    data, offsets = string_slices(encoded.dictionary)
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    crc = np.fromiter((zlib.crc32(data[a:b]) for a, b in zip(starts, ends, strict=True)),
                      dtype=np.uint32, count=len(starts))
    return encoded.indices.to_numpy().astype(np.int64), crc, np.diff(offsets)


def _gram_crcs(first: np.ndarray, size: np.ndarray, codes: np.ndarray, word_crc: np.ndarray,
               word_len: np.ndarray, k: int) -> np.ndarray:
    """crc32 of the words codes[first : first + size] joined by spaces, from word crcs."""
    spaced_crc = _carry(np.full(len(word_crc), _SPACE_CRC, dtype=np.uint32), word_len) ^ word_crc
    values = word_crc[codes[first]]
    last_word = max(len(codes) - 1, 0)
    for m in range(1, k):
        at = codes[np.minimum(first + m, last_word)]
        extended = _carry(values, word_len[at] + 1) ^ spaced_crc[at]
        values = extended if (size > m).all() else np.where(size > m, extended, values)
    return values


def shingle_hashes_array(prompts: pa.Array | pa.ChunkedArray | Sequence[str | None],
                         k: int = 3) -> Shingles:
    """`shingle_hashes` of every prompt at once, exactly (before the per-row unique): Arrow and
    numpy split the normalised words, each distinct word is crc'd once, and each distinct
    k-gram's crc is folded from its words' crcs (crc32_combine), never built as a string."""
    words = split_words(prompts)
    codes, word_crc, word_len = _distinct_words(words)
    counts = words.counts
    grams_per_row = np.where(counts >= k, counts - k + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(grams_per_row, out=offsets[1:])
    word_offsets = words.row_offsets()
    bits = 63 // k
    if not len(codes) or len(word_crc) + 1 >= 1 << bits:
        row_of_gram = np.repeat(np.arange(len(counts)), grams_per_row)
        first = word_offsets[row_of_gram] + np.arange(offsets[-1]) - offsets[row_of_gram]
        size = np.minimum(counts[row_of_gram], k)
        return Shingles(_gram_crcs(first, size, codes, word_crc, word_len, k), offsets)
    key = _gram_keys(codes, counts, word_offsets, k, bits)
    inverse, distinct = pd.factorize(key)
    distinct = np.asarray(distinct, dtype=np.int64)
    parts = np.stack([(distinct >> (bits * (k - 1 - m))) & ((1 << bits) - 1)
                      for m in range(k)], axis=1)
    values = _gram_crcs(np.arange(len(distinct)) * k, (parts > 0).sum(axis=1),
                        np.maximum(parts.reshape(-1) - 1, 0), word_crc, word_len, k)
    return Shingles(values[inverse], offsets)


def _gram_keys(codes: np.ndarray, counts: np.ndarray, word_offsets: np.ndarray, k: int,
               bits: int) -> np.ndarray:
    """Each k-gram as one int64 packing its words' codes + 1 (0 past a short row's end), in
    row order: the packed run at every word position, kept where a gram starts."""
    key = np.zeros(len(codes), dtype=np.int64)
    shifted = codes + 1
    for m in range(k):
        key[:len(codes) - m] |= shifted[m:] << (bits * (k - 1 - m))
    start = np.ones(len(codes), dtype=bool)
    long = counts >= k
    for m in range(1, k):
        start[word_offsets[1:][long] - m] = False
    short = np.flatnonzero((counts > 0) & ~long)
    if len(short):
        for m in range(1, k):
            start[word_offsets[short][counts[short] > m] + m] = False
        short_key = np.zeros(len(short), dtype=np.int64)
        for m in range(k):
            present = counts[short] > m
            at = np.minimum(word_offsets[short] + m, len(codes) - 1)
            short_key |= np.where(present, shifted[at], 0) << (bits * (k - 1 - m))
        key[word_offsets[short]] = short_key
    return key[start]


def _as_shingles(shingles: Shingles | list[np.ndarray]) -> Shingles:
    if isinstance(shingles, Shingles):
        return shingles
    offsets = np.zeros(len(shingles) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in shingles], out=offsets[1:])
    values = np.concatenate(shingles) if shingles else np.zeros(0)
    return Shingles(values.astype(np.uint32), offsets)


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64)
    return a, b


def minhash_signatures(shingles: Shingles | list[np.ndarray], num_perm: int = 64, seed: int = 0,
                       chunk_values: int = 8_192) -> np.ndarray:
    """(n, num_perm) MinHash signatures by multiply-shift hashing ((a*x + b) mod 2^64) >> 32;
    a row without shingles keeps the all-ones signature. Works through `chunk_values` shingles
    at a time (np.minimum.reduceat over each row's run), so the scratch stays in cache."""
    a, b = _permutations(num_perm, seed)
    shingles = _as_shingles(shingles)
    offsets, values = shingles.offsets, shingles.values.astype(np.uint64)
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    rows = np.flatnonzero(np.diff(offsets))
    row_ends = offsets[rows + 1]
    scratch = np.empty((chunk_values, num_perm), dtype=np.uint64)
    begin = 0
    while begin < len(rows):
        limit = offsets[rows[begin]] + chunk_values
        end = max(begin + 1, int(np.searchsorted(row_ends, limit, side="right")))
        block = rows[begin:end]
        lo, hi = offsets[block[0]], offsets[block[-1] + 1]
        work = scratch[:hi - lo] if hi - lo <= chunk_values else np.empty((hi - lo, num_perm),
                                                                            dtype=np.uint64)
        np.multiply(values[lo:hi, None], a, out=work)
        np.add(work, b, out=work)
        np.right_shift(work, np.uint64(32), out=work)
        out[block] = np.minimum.reduceat(work, offsets[block] - lo, axis=0)
        begin = end
    return out
def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _band_keys(signatures: np.ndarray, bands: int) -> np.ndarray:
    """(n, bands) uint64 keys: each band of a signature folded into one number."""
    rows_per_band = signatures.shape[1] // bands
    weights = np.random.default_rng(1).integers(1, 1 << 61, size=rows_per_band,
                                                 dtype=np.uint64)
    shaped = signatures[:, :bands * rows_per_band].reshape(len(signatures), bands, rows_per_band)
    return (shaped * weights).sum(axis=2, dtype=np.uint64)


def training_batches(training: TrainingPrompts, batch_rows: int = 32_768) -> Iterator[pa.Table]:
    """(lane, trace_id, prompt) tables of at most `batch_rows` rows, one at a time, from a frame,
    an Arrow table or batch, or any iterable of those."""
    parts = [training] if isinstance(training, pd.DataFrame | pa.Table | pa.RecordBatch) \
        else training
    for part in parts:
        if isinstance(part, pd.DataFrame):
            part = pa.Table.from_pandas(part[["lane", "trace_id", "prompt"]], preserve_index=False)
        elif isinstance(part, pa.RecordBatch):
            part = pa.Table.from_batches([part])
        part = part.select(["lane", "trace_id", "prompt"])
        for start in range(0, part.num_rows, batch_rows):
            yield part.slice(start, batch_rows)


def _unique(values: np.ndarray, kind: str = "quicksort") -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their counts; sorting is many times faster here than
    np.unique's hash path on millions of 64-bit keys ("stable" suits keys in sorted runs)."""
    ranked = np.sort(values, kind=kind)
    start = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(ranked) else \
        np.zeros(0, dtype=np.int64)
    return ranked[start], np.diff(np.r_[start, len(ranked)])


def _segments(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the given rows' runs, concatenated, and each run's length."""
    lengths = offsets[rows + 1] - offsets[rows]
    ends = np.cumsum(lengths)
    return np.repeat(offsets[rows] - (ends - lengths), lengths) + np.arange(ends[-1] if len(
        ends) else 0), lengths


def _distinct(shingles: Shingles, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys (i << 32 | shingle) of the distinct shingles of rows[i], and their counts."""
    positions, lengths = _segments(shingles.offsets, rows)
    owner = np.repeat(np.arange(len(rows), dtype=np.uint64), lengths)
    keys, _ = _unique((owner << np.uint64(32)) | shingles.values[positions].astype(np.uint64),
                      kind="stable")
    return keys, np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=len(rows))


def _subset(shingles: Shingles, rows: np.ndarray) -> Shingles:
    positions, lengths = _segments(shingles.offsets, rows)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Shingles(shingles.values[positions], offsets)


def _runs(keys: np.ndarray, sizes: np.ndarray) -> Shingles:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return Shingles((keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets)


_SEEN_BITS = 20
# frozen prompts x distinct frozen shingles, as one bool each, up to this many bytes: a
# thousand frozen prompts of a 10^6 day take 10 MB, and a pair's shared shingles are then
# counted by plain indexing (3x faster than hashing each (prompt, shingle) key)
_DENSE_MEMBERSHIP_LIMIT = 64 << 20


class _Frozen(NamedTuple):
    """The frozen prompts, prepared once per check: distinct shingle keys for exact Jaccard,
    MinHash signatures and band keys for the LSH condition, and the prefix index."""

    ids: np.ndarray
    key_index: pd.Index
    vocabulary: np.ndarray
    member: np.ndarray | None
    sizes: np.ndarray
    empty: np.ndarray
    signatures: np.ndarray
    band_keys: np.ndarray
    prefix_tokens: pd.Index
    prefix_first: np.ndarray
    prefix_count: np.ndarray
    prefix_owner: np.ndarray
    needed: np.ndarray
    seen: np.ndarray


def _prepare_frozen(frozen: pd.DataFrame, threshold: float, num_perm: int, bands: int,
                    sample: Shingles, extra: int = 3,
                    dense_limit: int = _DENSE_MEMBERSHIP_LIMIT) -> _Frozen:
    """Index each frozen prompt F by a prefix of its distinct shingles.

    A pair at the threshold shares at least a <= threshold * |F| shingles with F, so any
    |F| - a + m of F's shingles hold at least m shared ones (prefix filtering, Chaudhuri et al.
    2006; m = min(1 + extra, a)). Any choice of shingles is sound; choosing those rarest in a
    sample of the training prompts (then rarest among the frozen ones) keeps the pairs that
    must be scored few.
    """
    shingles = shingle_hashes_array(pa.array(frozen["prompt"].tolist(), type=pa.string()))
    keys, sizes = _distinct(shingles, np.arange(len(shingles)))
    signatures = minhash_signatures(_runs(keys, sizes), num_perm)
    owner = (keys >> np.uint64(32)).astype(np.int64)
    values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    distinct, where, frequency = np.unique(values, return_inverse=True, return_counts=True)
    slot = np.minimum(np.searchsorted(distinct, sample.values), max(len(distinct) - 1, 0))
    hit = distinct[slot] == sample.values if len(distinct) else np.zeros(0, dtype=bool)
    in_sample = np.bincount(slot[hit], minlength=len(distinct))
    order = np.lexsort((values, frequency[where], in_sample[where], owner))
    first = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=first[1:])
    least_overlap = np.maximum(np.floor(threshold * sizes - 1e-6), 1).astype(np.int64)
    needed = np.minimum(least_overlap, 1 + extra)
    prefix = np.clip(sizes - least_overlap + needed, 0, sizes)
    ranked_owner = owner[order]
    chosen = order[np.arange(len(order)) - first[ranked_owner] < prefix[ranked_owner]]
    by_value = np.argsort(values[chosen], kind="stable")
    prefix_values, prefix_owner = values[chosen][by_value], owner[chosen][by_value]
    tokens, count = _unique(prefix_values)
    seen = np.zeros(1 << _SEEN_BITS, dtype=bool)
    seen[tokens & ((1 << _SEEN_BITS) - 1)] = True
    member = None
    if len(sizes) * len(distinct) <= dense_limit:
        member = np.zeros(len(sizes) * len(distinct), dtype=bool)
        member[owner * len(distinct) + where] = True
    return _Frozen(frozen["trace_id"].to_numpy(dtype=object), pd.Index(keys), distinct, member,
                   sizes,
                   np.flatnonzero(sizes == 0), signatures, _band_keys(signatures, bands),
                   pd.Index(tokens), (np.cumsum(count) - count).astype(np.int32),
                   count.astype(np.int32), prefix_owner.astype(np.int32), needed, seen)


def _prefix_candidates(shingles: Shingles, frozen: _Frozen) -> tuple[np.ndarray, np.ndarray]:
    """(training row, frozen row) pairs sharing enough shingles of the frozen prompt's prefix
    (a repeated training shingle counts again, which only adds pairs), plus empty rows against
    empty frozen prompts (Jaccard of two empty sets is 1)."""
    values = shingles.values
    at = np.flatnonzero(frozen.seen[values & ((1 << _SEEN_BITS) - 1)])
    slot = frozen.prefix_tokens.get_indexer(values[at])
    at, slot = at[slot >= 0], slot[slot >= 0]
    first, count = frozen.prefix_first[slot], frozen.prefix_count[slot]
    ends = np.cumsum(count)
    picks = np.repeat(first - (ends - count), count) + np.arange(ends[-1] if len(ends) else 0,
                                                                 dtype=np.int32)
    row_of = np.repeat(np.arange(len(shingles), dtype=np.int32), np.diff(shingles.offsets))
    rows = np.repeat(row_of[at], count)
    owners = frozen.prefix_owner[picks]
    narrow = len(shingles) * len(frozen.ids) < 1 << 32
    wide = np.uint32 if narrow else np.int64
    pairs, shared = _unique(rows.astype(wide) * wide(len(frozen.ids)) + owners.astype(wide),
                            kind="stable")
    pairs = pairs.astype(np.int64)
    pairs = [pairs[shared >= frozen.needed[pairs % len(frozen.ids)]]]
    if len(frozen.empty):
        blank = np.flatnonzero(np.diff(shingles.offsets) == 0)
        pairs.append((blank[:, None] * len(frozen.ids) + frozen.empty[None]).reshape(-1))
    unique, _ = _unique(np.concatenate(pairs))
    return unique // len(frozen.ids), unique % len(frozen.ids)


def _band_candidates(shingles: Shingles, frozen: _Frozen, num_perm: int,
                     bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (training row, frozen row) pair with an equal LSH band: the full MinHash path, for
    thresholds too low for prefix filtering."""
    band_keys = _band_keys(minhash_signatures(shingles, num_perm), bands)
    found = []
    for band in range(band_keys.shape[1]):
        order = np.argsort(frozen.band_keys[:, band], kind="stable")
        ranked = frozen.band_keys[order, band]
        lo = np.searchsorted(ranked, band_keys[:, band], side="left")
        count = np.searchsorted(ranked, band_keys[:, band], side="right") - lo
        ends = np.cumsum(count)
        picks = np.repeat(lo - (ends - count), count) + np.arange(ends[-1] if len(ends) else 0)
        found.append(np.repeat(np.arange(len(band_keys)), count) * len(frozen.ids)
                     + order[picks])
    unique, _ = _unique(np.concatenate(found))
    return unique // len(frozen.ids), unique % len(frozen.ids)


def _similarities(shingles: Shingles, rows: np.ndarray, frozen_rows: np.ndarray,
                  frozen: _Frozen) -> tuple[np.ndarray, Shingles, np.ndarray]:
    """Exact Jaccard of each (row, frozen row) pair; also the distinct shingles of the rows
    involved and each pair's index into them."""
    involved, _ = _unique(rows)
    keys, sizes = _distinct(shingles, involved)
    local = np.searchsorted(involved, rows)
    distinct = _runs(keys, sizes)
    inter = _shared_counts(distinct, local, frozen_rows, frozen)
    union = sizes[local] + frozen.sizes[frozen_rows] - inter
    similarity = np.ones(len(rows))
    np.divide(inter, union, out=similarity, where=union > 0)
    return similarity, distinct, local


def _shared_counts(distinct: Shingles, local: np.ndarray, frozen_rows: np.ndarray,
                   frozen: _Frozen) -> np.ndarray:
    """How many of row local[i]'s distinct shingles frozen prompt frozen_rows[i] also has."""
    if frozen.member is not None:
        vocabulary = frozen.vocabulary
        values = distinct.values
        if len(vocabulary):
            slot = np.minimum(np.searchsorted(vocabulary, values), len(vocabulary) - 1)
            known = vocabulary[slot] == values
        else:
            slot, known = np.zeros(len(values), dtype=np.int64), np.zeros(len(values), bool)
        running = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(known, out=running[1:])
        # only shingles some frozen prompt has can be shared: the rest are never probed
        positions, lengths = _segments(running[distinct.offsets], local)
        probe = np.repeat(frozen_rows.astype(np.int64) * len(vocabulary), lengths)
        probe += slot[known][positions]
        shared = frozen.member[probe]
    else:
        positions, lengths = _segments(distinct.offsets, local)
        probe = ((np.repeat(frozen_rows, lengths).astype(np.uint64) << np.uint64(32))
                 | distinct.values[positions].astype(np.uint64))
        shared = frozen.key_index.get_indexer(probe) >= 0
    total = np.zeros(len(shared) + 1, dtype=np.int64)
    np.cumsum(shared, out=total[1:])
    ends = np.cumsum(lengths)
    return total[ends] - total[ends - lengths]


def _batch_near_duplicates(batch: pa.Table, shingles: Shingles, frozen: _Frozen,
                           threshold: float, num_perm: int, bands: int) -> list[tuple]:
    """One batch's findings, in row then frozen order: every pair the exact prefix filter
    leaves, scored by exact Jaccard, so no pair at or above the threshold is missed (LSH bands
    only when threshold <= 0 leaves the filter no least overlap)."""
    if threshold > 0:
        rows, frozen_rows = _prefix_candidates(shingles, frozen)
    else:
        rows, frozen_rows = _band_candidates(shingles, frozen, num_perm, bands)
    if not len(rows):
        return []
    similarity, distinct, local = _similarities(shingles, rows, frozen_rows, frozen)
    trace_ids = np.asarray(batch.column("trace_id").to_pylist(), dtype=object)
    keep = (similarity >= threshold) & (trace_ids[rows] != frozen.ids[frozen_rows])
    rows, frozen_rows, similarity, local = (rows[keep], frozen_rows[keep], similarity[keep],
                                            local[keep])
    if threshold <= 0 and len(rows):
        involved = _unique(local)[0]
        local = np.searchsorted(involved, local)
        signatures = minhash_signatures(_subset(distinct, involved), num_perm)[local]
        keep = (_band_keys(signatures, bands) == frozen.band_keys[frozen_rows]).any(axis=1)
        rows, frozen_rows, similarity = rows[keep], frozen_rows[keep], similarity[keep]
    if not len(rows):
        return []
    lanes = batch.column("lane").to_pylist()
    return [("near_duplicate", lanes[r], trace_ids[r], frozen.ids[f], round(s, 4))
            for r, f, s in zip(rows.tolist(), frozen_rows.tolist(), similarity.tolist(),
                               strict=True)]


def find_near_duplicates(training: TrainingPrompts, frozen: pd.DataFrame, threshold: float,
                         num_perm: int = 64, bands: int = 16, batch_rows: int = 512,
                         workers: int = 2) -> pd.DataFrame:
    """Training prompts whose word-shingle Jaccard similarity to a frozen prompt is >= threshold.

    `training` has lane, trace_id, prompt: a frame, an Arrow table or batch, or an iterable of
    those read one at a time (memory is `workers` batches plus the frozen index; small batches
    keep templated prompts, which share many prefix shingles, from multiplying candidate
    pairs: small batches are both faster and far leaner than large ones). `frozen` has
    trace_id, prompt. Every pair whose exact Jaccard is >= threshold is reported, in training
    then frozen order: exact prefix filtering finds the only pairs that can reach the threshold,
    so only those are scored.
    """
    frozen = frozen[frozen["prompt"].notna()]
    if frozen.empty:
        return pd.DataFrame(columns=NEAR_DUPLICATE_COLUMNS)
    batches = training_batches(training, batch_rows)
    found: list[tuple] = []
    first = next(batches, None)
    if first is None:
        return pd.DataFrame(columns=NEAR_DUPLICATE_COLUMNS)
    shingles = shingle_hashes_array(first.column("prompt"))
    index = _prepare_frozen(frozen, threshold, num_perm, bands, shingles)
    found.extend(_batch_near_duplicates(first, shingles, index, threshold, num_perm, bands))

    def check(batch: pa.Table) -> list[tuple]:
        return _batch_near_duplicates(batch, shingle_hashes_array(batch.column("prompt")), index,
                                      threshold, num_perm, bands)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[Future[list[tuple]]] = deque()
        for batch in batches:
            if len(pending) >= max(1, workers):
                found.extend(pending.popleft().result())
            pending.append(pool.submit(check, batch))
        for job in pending:
            found.extend(job.result())
    return pd.DataFrame(found, columns=NEAR_DUPLICATE_COLUMNS)


def find_all_leaks(training: pd.DataFrame, frozen: pd.DataFrame,
                   near_duplicate_threshold: float) -> pd.DataFrame:
    """Every rule at once: by id, by content fingerprint, and by near-duplicate prompt."""
    return pd.concat([find_leaks(training, frozen),
                      find_near_duplicates(training, frozen, near_duplicate_threshold)],
                     ignore_index=True)
