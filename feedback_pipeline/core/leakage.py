"""Train/eval leakage: every training row against the frozen evaluation set, in DuckDB.

Three rules: the same id; the same normalised redacted prompt under another id (the fingerprint
from core.fingerprint, computed once at redaction so this is a join); and a near-duplicate
paraphrase above a declared word-shingle Jaccard threshold. Each finding names both ids and the
rule that matched.
"""

from __future__ import annotations

import zlib

import duckdb
import numpy as np
import pandas as pd

from feedback_pipeline.core.fingerprint import normalise_text

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


# ---- near-duplicates: MinHash over word shingles, LSH banding, exact Jaccard to confirm ----

def shingle_hashes(text: str | None, k: int = 3) -> np.ndarray:
    """Stable 32-bit hashes of the word k-grams of the normalised text (unique, sorted)."""
    words = normalise_text(text or "").split()
    if not words:
        return np.zeros(0, dtype=np.uint64)
    grams = [" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))]
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64,
                                 count=len(grams)))


def minhash_signatures(shingles: list[np.ndarray], num_perm: int = 64, seed: int = 0,
                       chunk_rows: int = 4_000) -> np.ndarray:
    """(n, num_perm) MinHash signatures by multiply-shift hashing ((a*x + b) mod 2^64) >> 32,
    vectorised over chunks of rows (np.minimum.reduceat over each row's shingles)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64)
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), chunk_rows):
        block = shingles[start:start + chunk_rows]
        lengths = np.fromiter((len(x) for x in block), dtype=np.int64, count=len(block))
        rows = np.flatnonzero(lengths)
        if not len(rows):
            continue
        values = np.concatenate([block[i] for i in rows])
        hashed = (values[:, None] * a + b) >> np.uint64(32)
        offsets = np.concatenate([[0], np.cumsum(lengths[rows])[:-1]])
        out[start + rows] = np.minimum.reduceat(hashed, offsets, axis=0)
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


def find_near_duplicates(training: pd.DataFrame, frozen: pd.DataFrame, threshold: float,
                         num_perm: int = 64, bands: int = 16) -> pd.DataFrame:
    """Training prompts whose word-shingle Jaccard similarity to a frozen prompt is >= threshold.

    `training` has lane, trace_id, prompt; `frozen` has trace_id, prompt. LSH banding over
    MinHash signatures proposes candidate pairs (vectorised); each is confirmed by exact
    Jaccard, so the threshold means what it says.
    """
    columns = ["rule", "lane", "training_id", "frozen_id", "similarity"]
    frozen = frozen[frozen["prompt"].notna()]
    if training.empty or frozen.empty:
        return pd.DataFrame(columns=columns)
    train_sh = [shingle_hashes(t) for t in training["prompt"]]
    frozen_sh = [shingle_hashes(t) for t in frozen["prompt"]]
    sig_t, sig_f = minhash_signatures(train_sh, num_perm), minhash_signatures(frozen_sh, num_perm)
    keys_t, keys_f = _band_keys(sig_t, bands), _band_keys(sig_f, bands)
    kept = []
    for band in range(bands):
        left = pd.DataFrame({"key": keys_t[:, band], "i": np.arange(len(keys_t))})
        right = pd.DataFrame({"key": keys_f[:, band], "j": np.arange(len(keys_f))})
        pairs = left[left["key"].isin(right["key"])].merge(right, on="key")
        i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
        likely = (sig_t[i] == sig_f[j]).mean(axis=1) >= threshold - 0.25
        kept.append(pd.DataFrame({"i": i[likely], "j": j[likely]}))
    candidates = pd.concat(kept, ignore_index=True).drop_duplicates()
    i, j = candidates["i"].to_numpy(), candidates["j"].to_numpy()
    lanes, tids, fids = (training["lane"].to_numpy(), training["trace_id"].to_numpy(),
                         frozen["trace_id"].to_numpy())
    found = []
    for a, b in sorted(zip(i.tolist(), j.tolist(), strict=True)):
        if tids[a] == fids[b]:
            continue
        similarity = jaccard(train_sh[a], frozen_sh[b])
        if similarity >= threshold:
            found.append(("near_duplicate", lanes[a], tids[a], fids[b], round(similarity, 4)))
    return pd.DataFrame(found, columns=columns)


def find_all_leaks(training: pd.DataFrame, frozen: pd.DataFrame,
                   near_duplicate_threshold: float) -> pd.DataFrame:
    """Every rule at once: by id, by content fingerprint, and by near-duplicate prompt."""
    return pd.concat([find_leaks(training, frozen),
                      find_near_duplicates(training, frozen, near_duplicate_threshold)],
                     ignore_index=True)
