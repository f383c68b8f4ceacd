"""Choosing which unlabeled preference pairs reviewers see next (seed listings 05 and 06).

Uncertainty alone spends a review round on near-duplicates, so the hybrid rule mixes the
preference model's entropy with distance to what is already chosen. A seeded random batch of
the same size is always drawn beside it: the selector has to beat that baseline on the frozen
evaluation set (core.experiment) or the policy falls back to random (core.rounds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NO_MODEL_NOTE = "no preference model yet; random selection"


def entropy(p_a: float | np.ndarray) -> float | np.ndarray:
    """Binary entropy in bits of p(A better): 1.0 at 0.5, 0.0 at certainty (seed listing 05)."""
    p = np.clip(np.asarray(p_a, dtype=np.float64), 0.0, 1.0)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0) + np.where(q > 0, q * np.log2(q), 0.0)
    bits = -terms + 0.0
    if np.ndim(p_a) == 0:
        return float(bits)
    return bits


@dataclass(frozen=True)
class Selection:
    """The picked pool positions in pick order, with the terms that decided each pick.

    `coverage` is the distance to the nearest earlier pick divided by the largest such distance
    in the pool at that step (the seed's normalisation); the first pick has nothing before it
    and gets coverage 1.0. `score` is weight * uncertainty + (1 - weight) * coverage.
    """

    indices: np.ndarray
    uncertainty: np.ndarray
    coverage: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def to_frame(self, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per pick: rank, pool position, optional id, and the scoring terms."""
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, len(self.indices) + 1, dtype=np.int64),
                "pool_index": self.indices.astype(np.int64),
                "uncertainty": self.uncertainty.astype(np.float64),
                "coverage": self.coverage.astype(np.float64),
                "score": self.score.astype(np.float64),
            }
        )
        if ids is not None:
            frame.insert(2, "trace_id", np.asarray(ids, dtype=object)[self.indices])
        return frame


def _check_batch_size(batch_size: int, n: int) -> None:
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must select at least one item and no more than the pool "
            f"(batch_size={batch_size}, pool={n})"
        )


def hybrid_select(
    embeddings: np.ndarray,
    uncertainty: np.ndarray,
    batch_size: int,
    weight_uncertainty: float = 0.6,
    *,
    eligible: np.ndarray | None = None,
) -> Selection:
    """The seed's greedy hybrid rule, one pass over the pool per pick.

    `eligible` (a bool mask over the pool) keeps items out of the batch without copying the
    pool: a labeling round draws its control arm first and the selector picks from the rest.
    Blocked items are never picked and do not enter the coverage normalisation.

    Start with the most uncertain item; then repeatedly take the item maximising
    weight * uncertainty + (1 - weight) * min_distance_to_chosen / max_min_distance.
    A running vector of squared distances to the nearest chosen item is updated with the
    distances from the newest pick only (||x||^2 - 2 x.c + ||c||^2, one matrix-vector product),
    so a pick costs one read of the pool instead of the seed's |pool| x |chosen| distances.
    Arithmetic is in the embeddings' dtype when it is float64, otherwise float32; float32
    squared distances carry an absolute error of about 1e-7 x squared norm, which is why
    embed_texts returns unit-length rows. Ties go to the lowest pool position, as in the seed.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-dimensional, got shape {emb.shape}")
    dtype = np.float64 if emb.dtype == np.float64 else np.float32
    emb = np.ascontiguousarray(emb, dtype=dtype)
    n = emb.shape[0]
    given_unc = np.asarray(uncertainty).reshape(-1)
    unc = given_unc.astype(dtype, copy=False)
    if unc.shape[0] != n:
        raise ValueError(f"uncertainty has {unc.shape[0]} values for {n} embeddings")
    blocked = np.zeros(0, dtype=np.int64)
    if eligible is not None:
        eligible = np.asarray(eligible, dtype=bool).reshape(-1)
        if eligible.shape[0] != n:
            raise ValueError(f"eligible has {eligible.shape[0]} values for {n} embeddings")
        blocked = np.flatnonzero(~eligible)
    _check_batch_size(batch_size, n - len(blocked))
    if not 0 <= weight_uncertainty <= 1:
        raise ValueError("weight_uncertainty must be between 0 and 1")
    if not np.all(np.isfinite(unc)):
        raise ValueError("uncertainty must be finite")

    weight = dtype(weight_uncertainty)
    weighted_unc = unc * weight
    sq_norms = np.einsum("ij,ij->i", emb, emb)
    if not np.all(np.isfinite(sq_norms)):
        raise ValueError("embeddings must be finite")
    nearest_sq = np.full(n, np.inf, dtype=dtype)
    dist_buf = np.empty(n, dtype=dtype)
    score_buf = np.empty(n, dtype=dtype)

    picks = np.empty(batch_size, dtype=np.int64)
    cov = np.empty(batch_size, dtype=np.float64)
    scores = np.empty(batch_size, dtype=np.float64)
    if len(blocked):
        first_scores = unc.copy()
        first_scores[blocked] = -np.inf
        first = int(np.argmax(first_scores))
    else:
        first = int(np.argmax(unc))
    picks[0], cov[0] = first, 1.0
    scores[0] = float(weighted_unc[first]) + (1.0 - weight_uncertainty)

    for step in range(1, batch_size):
        last = picks[step - 1]
        np.matmul(emb, emb[last], out=dist_buf)
        dist_buf *= -2.0
        dist_buf += sq_norms
        dist_buf += sq_norms[last]
        np.minimum(nearest_sq, dist_buf, out=nearest_sq)
        nearest_sq[picks[:step]] = 0.0
        nearest_sq[blocked] = 0.0
        np.maximum(nearest_sq, 0.0, out=nearest_sq)
        np.sqrt(nearest_sq, out=dist_buf)
        max_distance = float(dist_buf.max()) or 1.0
        np.multiply(dist_buf, dtype((1.0 - weight_uncertainty) / max_distance), out=score_buf)
        score_buf += weighted_unc
        score_buf[picks[:step]] = -np.inf
        score_buf[blocked] = -np.inf
        chosen = int(np.argmax(score_buf))
        picks[step] = chosen
        cov[step] = float(dist_buf[chosen]) / max_distance
        scores[step] = float(score_buf[chosen])

    return Selection(
        indices=picks,
        uncertainty=given_unc[picks].astype(np.float64),
        coverage=cov,
        score=scores,
    )


def random_select(n: int, batch_size: int, seed: int) -> np.ndarray:
    """A seeded uniform batch without replacement: the baseline every selector must beat."""
    _check_batch_size(batch_size, n)
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=batch_size, replace=False).astype(np.int64)


HASH_BLOCK_ROWS = 5000
"""Texts hashed at a time: bounds the tokeniser's temporary lists, not the result."""


TEXT_TOKEN = re.compile(r"(?u)\b\w[\w.\-/]*\b")
"""A word of a prompt or answer: letters and digits, with dots, dashes and slashes inside
(`v2.1`, `src/app.py`, `pull-request`)."""


def text_words(doc: str) -> list[str]:
    """The lowercased words of a text (`TEXT_TOKEN`)."""
    return TEXT_TOKEN.findall(doc.lower())


def with_bigrams(words: list[str]) -> list[str]:
    """The words, then each pair of neighbours joined by a space."""
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def unigrams_and_bigrams(doc: str) -> list[str]:
    """What scikit-learn's word analyzer gives for `ngram_range=(1, 2)` and `TEXT_TOKEN`,
    built with one comprehension instead of its general n-gram loop (the tokeniser is most of
    the cost of hashing a day's pool)."""
    return with_bigrams(text_words(doc))


def hashing_vectorizer(n_features: int, analyzer: Callable[[Any], list[str]]
                       = unigrams_and_bigrams) -> Any:
    """A stateless scikit-learn HashingVectorizer, counts (not signed) normalised to unit
    length; `analyzer` turns each document into its n-grams (`with_bigrams` for documents
    already split into words)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=n_features, analyzer=analyzer, alternate_sign=False,
                             norm="l2")


def hash_texts(docs: list[str], n_features: int) -> Any:
    """Hashed unigram and bigram rows (scipy CSR) of texts. Stateless: a text's row is the same
    whatever else it is hashed with."""
    return hashing_vectorizer(n_features).transform(docs)


def embed_texts(
    texts: Sequence[str],
    dim: int = 64,
    seed: int = 0,
    fit_sample: int = 20000,
    *,
    n_features: int = 2**18,
    batch_rows: int = 50000,
    hash_block_rows: int = HASH_BLOCK_ROWS,
) -> np.ndarray:
    """Unit-length float32 text embeddings for coverage distances.

    Hashed word unigrams and bigrams, reduced by a TruncatedSVD fitted on a seeded sample of
    at most `fit_sample` texts and applied in batches of `batch_rows`. Kept behind this one
    function so a sentence-embedding model can replace it. When the sample is too small for
    `dim` components the missing columns are zero.

    Tokenising and hashing is the cost (per-text Python in scikit-learn), so every text is
    hashed once, in blocks of `hash_block_rows`, and the SVD's fitting sample is taken from
    those rows instead of hashing its texts a second time; the result is the same as hashing
    each text where it is used. The sparse rows are kept until the projection (about 12 bytes
    per distinct n-gram of a text, for a pool bounded by the round's `selection_pool_limit`),
    as the one batch of a pool up to `batch_rows` always was. In this process: worker
    processes for the hashing cost more memory (each holds scikit-learn and SciPy) than the
    time they save.
    """
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD

    if dim < 1:
        raise ValueError("dim must be at least 1")
    docs = ["" if t is None else str(t) for t in texts]
    n = len(docs)
    out = np.zeros((n, dim), dtype=np.float32)
    if n == 0:
        return out
    hashed = sparse.vstack([hash_texts(docs[lo:lo + hash_block_rows], n_features)
                            for lo in range(0, n, hash_block_rows)], format="csr")
    del docs
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, fit_sample), replace=False))
    fit_matrix = hashed[sample]
    components = min(dim, fit_matrix.shape[0] - 1, n_features - 1)
    if components >= 1 and fit_matrix.nnz > 0:
        svd = TruncatedSVD(n_components=components, random_state=seed, algorithm="randomized")
        svd.fit(fit_matrix)
        for start in range(0, n, batch_rows):
            out[start : start + batch_rows, :components] = svd.transform(
                hashed[start : start + batch_rows])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def pair_texts(pool: pd.DataFrame) -> list[str]:
    """The text a pair is embedded by: its prompt and both answers."""
    parts = [pool[c].astype("string").fillna("") for c in ("prompt", "text_a", "text_b")]
    return (parts[0] + "\n" + parts[1] + "\n" + parts[2]).tolist()
