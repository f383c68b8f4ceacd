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

_PRIME = np.uint64((1 << 61) - 1)


def shingle_hashes(text: str | None, k: int = 3) -> np.ndarray:
    """Stable 32-bit hashes of the word k-grams of the normalised text (unique, sorted)."""
    words = normalise_text(text or "").split()
    if not words:
        return np.zeros(0, dtype=np.uint64)
    grams = [" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))]
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64,
                                 count=len(grams)))


def minhash_signatures(shingles: list[np.ndarray], num_perm: int = 64,
                       seed: int = 0) -> np.ndarray:
    """(n, num_perm) MinHash signatures by universal hashing (a*x + b) mod a Mersenne prime."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for row, values in enumerate(shingles):
        if len(values):
            out[row] = ((np.outer(values, a) + b) % _PRIME).min(axis=0)
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def find_near_duplicates(training: pd.DataFrame, frozen: pd.DataFrame, threshold: float,
                         num_perm: int = 64, bands: int = 16) -> pd.DataFrame:
    """Training prompts whose word-shingle Jaccard similarity to a frozen prompt is >= threshold.

    `training` has lane, trace_id, prompt; `frozen` has trace_id, prompt. LSH banding proposes
    candidate pairs; each is confirmed by exact Jaccard, so the threshold means what it says.
    """
    columns = ["rule", "lane", "training_id", "frozen_id", "similarity"]
    frozen = frozen[frozen["prompt"].notna()]
    if training.empty or frozen.empty:
        return pd.DataFrame(columns=columns)
    train_sh = [shingle_hashes(t) for t in training["prompt"]]
    frozen_sh = [shingle_hashes(t) for t in frozen["prompt"]]
    sig_t = minhash_signatures(train_sh, num_perm)
    sig_f = minhash_signatures(frozen_sh, num_perm)
    rows_per_band = num_perm // bands
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for j in range(len(frozen_sh)):
        for band in range(bands):
            key = (band, sig_f[j, band * rows_per_band:(band + 1) * rows_per_band].tobytes())
            buckets.setdefault(key, []).append(j)
    candidates: set[tuple[int, int]] = set()
    for i in range(len(train_sh)):
        for band in range(bands):
            key = (band, sig_t[i, band * rows_per_band:(band + 1) * rows_per_band].tobytes())
            candidates.update((i, j) for j in buckets.get(key, ()))
    lanes, tids, fids = (training["lane"].to_numpy(), training["trace_id"].to_numpy(),
                         frozen["trace_id"].to_numpy())
    found = []
    for i, j in sorted(candidates):
        if tids[i] == fids[j]:
            continue
        similarity = jaccard(train_sh[i], frozen_sh[j])
        if similarity >= threshold:
            found.append(("near_duplicate", lanes[i], tids[i], fids[j], round(similarity, 4)))
    return pd.DataFrame(found, columns=columns)


def find_all_leaks(training: pd.DataFrame, frozen: pd.DataFrame,
                   near_duplicate_threshold: float) -> pd.DataFrame:
    """Every rule at once: by id, by content fingerprint, and by near-duplicate prompt."""
    return pd.concat([find_leaks(training, frozen),
                      find_near_duplicates(training, frozen, near_duplicate_threshold)],
                     ignore_index=True)
