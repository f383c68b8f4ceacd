"""The coefficients themselves: numbers in, numbers out.

Cohen's, Conger's and Fleiss' kappa, Gwet's AC1 and Krippendorff's alpha over a label table
(item x review codes), the within-item review pairs they rest on, and the item-resampling
bootstrap they share. Nothing here reads files or knows what a review row looks like; see the
package docstring for every definition.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, confusion_matrix

PAIRWISE_LABELS = ("A", "B", "TIE", "BOTH_BAD")
SCORE_VALUES = (1, 2, 3, 4, 5)
ALPHA_LEVELS = ("nominal", "ordinal", "interval", "ratio")
SCORE_LEVELS = ("ordinal", "interval", "ratio")
KAPPA_METHOD = "conger_over_review_pairs"
FLEISS_METHOD = ("per-item: P_i = sum_c n_ic(n_ic-1) / (n_i(n_i-1)) over items with n_i >= 2, "
                 "P_bar their mean, p_c pooled over those items' ratings, P_e = sum_c p_c^2")
CI_LEVEL = 0.95
NO_SLICE = "(none)"
@dataclass(frozen=True)
class KappaResult:
    observed: float
    chance: float
    kappa: float
    n_items: int
    labels: tuple[str, ...]
    matrix: list[list[int]]


def kappa_from_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str] | None = None
) -> KappaResult:
    """Cohen's kappa from a square confusion matrix (rows one reviewer, columns the other)."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"need a square matrix of at least 2x2, got shape {m.shape}")
    if (m < 0).any() or not np.allclose(m, np.round(m)):
        raise ValueError("matrix cells must be non-negative counts")
    m = np.round(m).astype(np.int64)
    if labels is None:
        labels = PAIRWISE_LABELS if m.shape[0] == len(PAIRWISE_LABELS) else range(m.shape[0])
    labels = tuple(str(v) for v in labels)
    if len(labels) != m.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {m.shape[0]}x{m.shape[0]} matrix")
    total = int(m.sum())
    if total == 0:
        raise ValueError("matrix is empty")
    observed, chance, kappa = (float(v[0]) for v in _kappa_parts(m[None].astype(float)))
    return KappaResult(observed, chance, kappa, total, labels, m.tolist())


def cohen_kappa(
    a: Sequence[str], b: Sequence[str], labels: Sequence[str] = PAIRWISE_LABELS
) -> KappaResult:
    """Cohen's kappa of two reviewers over the same items, by scikit-learn."""
    a_arr, b_arr = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1 or len(a_arr) == 0:
        raise ValueError("a and b must be non-empty label sequences of equal length")
    unknown = sorted({str(v) for v in np.concatenate([a_arr, b_arr])} - set(labels))
    if unknown:
        raise ValueError(f"labels outside {tuple(labels)}: {unknown[:5]}")
    labels = list(labels)
    matrix = confusion_matrix(a_arr, b_arr, labels=labels)
    parts = kappa_from_matrix(matrix, labels)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        kappa = float(cohen_kappa_score(a_arr, b_arr, labels=labels))
    return KappaResult(parts.observed, parts.chance, kappa, parts.n_items, parts.labels,
                       parts.matrix)


def krippendorff_alpha(reliability: np.ndarray, level: str) -> float:
    """Krippendorff's alpha (the `krippendorff` package) on reviewers x items, NaN = missing."""
    if level not in ALPHA_LEVELS:
        raise ValueError(f"level must be one of {ALPHA_LEVELS}, got {level!r}")
    data = np.asarray(reliability, dtype=float)
    if data.ndim != 2:
        raise ValueError("reliability must be a 2-D reviewers x items array")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


@dataclass(frozen=True)
class _LabelTable:
    """Duplicate-reviewed items as integer codes, and every within-item pair of reviews."""

    reviewer_ids: np.ndarray  # reviewer code -> id (sorted)
    item_ids: np.ndarray  # duplicate item index -> trace_id
    item_slice: np.ndarray  # duplicate item index -> slice name
    review_index: np.ndarray  # per kept review: row label in the input frame
    review_item: np.ndarray
    review_reviewer: np.ndarray
    review_label: np.ndarray
    value_counts: np.ndarray  # (items, labels)
    pair_item: np.ndarray  # per review pair
    pair_id: np.ndarray
    pair_a: np.ndarray  # label codes
    pair_b: np.ndarray
    pair_review_a: np.ndarray  # row labels in the input frame
    pair_review_b: np.ndarray
    pair_reviewers: np.ndarray  # (pairs, 2) reviewer codes, a < b
    n_reviewers: int

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def _latest_per_reviewer(reviews: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    unit = ["trace_id", "candidate_id"] if "candidate_id" in reviews.columns else ["trace_id"]
    frame = reviews.reset_index(drop=True)
    if "reviewed_at" in frame.columns:
        order = pd.to_datetime(frame["reviewed_at"], utc=True, errors="coerce", format="mixed")
        frame = frame.assign(_order=order).sort_values("_order", kind="stable",
                                                       na_position="first")
        frame = frame.drop(columns="_order")
    kept = frame.drop_duplicates([*unit, "reviewer_id"], keep="last").sort_index()
    return kept, int(len(frame) - len(kept))


def _label_table(rows: pd.DataFrame, labels: tuple[str, ...]) -> _LabelTable:
    codes = pd.Categorical(rows["label"].astype(str), categories=labels).codes.astype(np.int64)
    if (codes < 0).any():
        bad = sorted(set(rows["label"].astype(str)[codes < 0]))
        raise ValueError(f"labels outside {labels}: {bad[:5]}")
    item_all, trace_ids = pd.factorize(rows["trace_id"].astype(str))
    reviewer, reviewer_ids = pd.factorize(rows["reviewer_id"].astype(str), sort=True)
    per_item = np.bincount(item_all, minlength=len(trace_ids))
    keep = per_item[item_all] >= 2
    dup_items = np.flatnonzero(per_item >= 2)
    remap = np.full(len(trace_ids), -1, dtype=np.int64)
    remap[dup_items] = np.arange(len(dup_items))
    item = remap[item_all[keep]]
    reviewer, codes = reviewer[keep].astype(np.int64), codes[keep]
    index = rows.index.to_numpy()[keep]
    order = np.lexsort((reviewer, item))
    item, reviewer, codes, index = item[order], reviewer[order], codes[order], index[order]

    n_labels = len(labels)
    value_counts = np.zeros((len(dup_items), n_labels), dtype=np.int64)
    np.add.at(value_counts, (item, codes), 1)

    first, second = _within_item_pairs(item)
    n_rev = len(reviewer_ids)
    key = reviewer[first] * max(n_rev, 1) + reviewer[second]
    pair_id, pair_keys = pd.factorize(key, sort=True)
    pair_keys = np.asarray(pair_keys, dtype=np.int64)
    pair_reviewers = np.stack([pair_keys // max(n_rev, 1), pair_keys % max(n_rev, 1)], axis=1)

    slices = _item_slices(rows, keep, order, item, len(dup_items))
    return _LabelTable(
        reviewer_ids=np.asarray(reviewer_ids, dtype=object),
        item_ids=np.asarray(trace_ids, dtype=object)[dup_items],
        item_slice=slices,
        review_index=index,
        review_item=item,
        review_reviewer=reviewer,
        review_label=codes,
        value_counts=value_counts,
        pair_item=item[first],
        pair_id=pair_id.astype(np.int64),
        pair_a=codes[first],
        pair_b=codes[second],
        pair_review_a=index[first],
        pair_review_b=index[second],
        pair_reviewers=pair_reviewers.reshape(-1, 2),
        n_reviewers=int(len(np.unique(reviewer))),
    )


def _within_item_pairs(item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of positions sharing an item, for rows sorted by item."""
    if len(item) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    largest = int(np.bincount(item).max())
    firsts, seconds = [], []
    for offset in range(1, largest):
        left = np.arange(len(item) - offset)
        left = left[item[left] == item[left + offset]]
        firsts.append(left)
        seconds.append(left + offset)
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(firsts), np.concatenate(seconds)


def _item_slices(
    rows: pd.DataFrame, keep: np.ndarray, order: np.ndarray, item: np.ndarray, n_items: int
) -> np.ndarray:
    """Each item's slice: the first non-empty slice among its reviews."""
    result = np.full(n_items, NO_SLICE, dtype=object)
    if "slice" not in rows.columns or n_items == 0:
        return result
    values = rows["slice"].to_numpy(dtype=object, na_value=None)[keep][order]
    present = np.flatnonzero(pd.Series(values, dtype=object).fillna("").astype(str) != "")
    items, first = np.unique(item[present], return_index=True)
    result[items] = values[present[first]]
    return result


def _kappa_parts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed, chance, kappa) for a stack of L x L matrices; NaN where undefined."""
    total = counts.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.trace(counts, axis1=-2, axis2=-1) / total
        chance = (counts.sum(axis=-1) * counts.sum(axis=-2)).sum(axis=-1) / total**2
        denominator = 1.0 - chance
        kappa = np.where(denominator > 1e-12, (observed - chance) / denominator, np.nan)
    return observed, chance, kappa


def _conger_kappa(
    counts: np.ndarray, marginals: np.ndarray, pair_reviewers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed, chance, kappa) from per-pair matrices (..., P, L, L) and per-reviewer label
    counts (..., R, L); see the module doc. NaN where undefined."""
    n_pair = counts.sum(axis=(-2, -1))
    total = n_pair.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.nan_to_num(marginals / marginals.sum(axis=-1, keepdims=True))
        chance_pair = (share[..., pair_reviewers[:, 0], :]
                       * share[..., pair_reviewers[:, 1], :]).sum(axis=-1)
        observed = np.trace(counts, axis1=-2, axis2=-1).sum(axis=-1) / total
        chance = (n_pair * chance_pair).sum(axis=-1) / total
        denominator = 1.0 - chance
        kappa = np.where(denominator > 1e-12, (observed - chance) / denominator, np.nan)
    return observed, chance, kappa


def _reviewer_marginals(table: _LabelTable, mask: np.ndarray | None = None) -> np.ndarray:
    n_labels = table.value_counts.shape[1]
    n_rev = len(table.reviewer_ids)
    keys = table.review_reviewer * n_labels + table.review_label
    if mask is not None:
        keys = keys[mask]
    return np.bincount(keys, minlength=n_rev * n_labels).reshape(n_rev, n_labels).astype(float)


def _coincidences(value_counts: np.ndarray) -> np.ndarray:
    """Krippendorff's per-unit coincidence matrices, flattened: (units, V*V)."""
    vc = value_counts.astype(float)
    m = vc.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(m >= 2, 1.0 / (m - 1), 0.0)
    outer = vc[:, :, None] * vc[:, None, :]
    idx = np.arange(vc.shape[1])
    outer[:, idx, idx] -= vc
    return (outer * scale[:, None, None]).reshape(len(vc), -1)


def _alpha_from_coincidences(
    o: np.ndarray, level: str, domain: Sequence[float]
) -> np.ndarray:
    """Alpha for a stack of V x V coincidence matrices, with the package's distance metrics."""
    n_v = o.sum(axis=-2)
    n = n_v.sum(axis=-1)
    v = len(domain)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (n_v[..., :, None] * n_v[..., None, :] - n_v[..., None, :] * np.eye(v)) / (
            n - 1
        )[..., None, None]
    if level == "nominal":
        d = np.broadcast_to(1.0 - np.eye(v), o.shape)
    elif level == "interval":
        values = np.asarray(domain, dtype=float)
        d = np.broadcast_to((values[:, None] - values[None, :]) ** 2, o.shape)
    elif level == "ratio":
        values = np.asarray(domain, dtype=float)
        total = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total != 0, (values[:, None] - values[None, :]) / total, 0.0)
        d = np.broadcast_to(ratio**2, o.shape)
    elif level == "ordinal":
        grid = np.arange(v)
        lo, hi = np.minimum.outer(grid, grid), np.maximum.outer(grid, grid)
        cum = np.cumsum(n_v, axis=-1)
        between = cum[..., hi] - (cum - n_v)[..., lo]
        d = (between - (n_v[..., :, None] + n_v[..., None, :]) / 2.0) ** 2
    else:
        raise ValueError(f"level must be one of {ALPHA_LEVELS}, got {level!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (e * d).sum(axis=(-2, -1))
        return np.where(expected > 0, 1.0 - (o * d).sum(axis=(-2, -1)) / expected, np.nan)


def _package_alpha(value_counts: np.ndarray, level: str, domain: Sequence[float]) -> float:
    pairable = value_counts.sum(axis=1) >= 2
    if not pairable.any():
        return math.nan
    observed_values = np.flatnonzero(value_counts[pairable].sum(axis=0))
    if len(observed_values) < 2:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(krippendorff.alpha(value_counts=value_counts[pairable],
                                        value_domain=list(domain), level_of_measurement=level))


@dataclass(frozen=True)
class _ItemTypes:
    """Items with the same (reviewer, label) multiset are exchangeable in every statistic here.

    Resampling n items with replacement therefore equals drawing the type counts from
    Multinomial(n, type frequencies): the same bootstrap distribution, with one draw per type
    instead of one per item.
    """

    of_item: np.ndarray
    count: np.ndarray
    representative: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.count.sum())


def _item_types(keys: np.ndarray, item: np.ndarray, n_items: int) -> _ItemTypes:
    """Types from per-row integer keys of rows sorted by item (canonical order within item)."""
    sizes = np.bincount(item, minlength=n_items)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    of_item = np.zeros(n_items, dtype=np.int64)
    radix = int(keys.max()) + 1 if len(keys) else 1
    n_types = 0
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        block = keys[starts[members][:, None] + np.arange(size)]
        if size * math.log2(max(radix, 2)) < 62:
            packed = block @ (radix ** np.arange(size, dtype=np.int64))
            uniques, inverse = np.unique(packed, return_inverse=True)
        else:
            uniques, inverse = np.unique(block, axis=0, return_inverse=True)
        of_item[members] = n_types + inverse.reshape(-1)
        n_types += len(uniques)
    representative = np.zeros(n_types, dtype=np.int64)
    representative[of_item] = np.arange(n_items)
    return _ItemTypes(of_item, np.bincount(of_item, minlength=n_types), representative)


def _resample_weights(
    rng: np.random.Generator, types: _ItemTypes, replicates: int, width: int
) -> Iterator[np.ndarray]:
    """Per-replicate multiplicity of each item type, in chunks that bound memory."""
    n = types.n_items
    p = types.count / n
    chunk = max(1, min(replicates, 8_000_000 // max(len(p), width, 1)))
    done = 0
    while done < replicates:
        c = min(chunk, replicates - done)
        yield rng.multinomial(n, p, size=c).astype(float)
        done += c


def _percentile_ci(values: np.ndarray) -> tuple[float | None, float | None, int]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None, None, 0
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high), int(len(finite))


def _pair_counts(table: _LabelTable, n_labels: int) -> np.ndarray:
    """One confusion matrix per reviewer pair (rows reviewer_a): shape (pairs, L, L)."""
    n_pairs = len(table.pair_reviewers)
    cells = table.pair_id * n_labels * n_labels + table.pair_a * n_labels + table.pair_b
    return np.bincount(cells, minlength=n_pairs * n_labels * n_labels).reshape(
        n_pairs, n_labels, n_labels).astype(float)


def _pooled_parts(value_counts: np.ndarray, weights: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P_bar, Fleiss P_e, Fleiss kappa, Gwet p_e, Gwet AC1) from per-item label counts.

    ``weights`` (replicates x items) gives each item's multiplicity in each bootstrap replicate;
    without it every item counts once (one row). Items with fewer than two ratings are left
    out (see the module doc). NaN where undefined."""
    vc = value_counts.astype(float)
    n_i = vc.sum(axis=1)
    keep = n_i >= 2
    vc, n_i = vc[keep], n_i[keep]
    q = vc.shape[1]
    w = np.ones((1, len(vc))) if weights is None else weights[:, keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_i = ((vc * (vc - 1)).sum(axis=1) / (n_i * (n_i - 1))) if len(vc) else n_i
        share = vc / n_i[:, None]
        n_items = w.sum(axis=1)
        p_bar = (w @ p_i) / n_items
        pooled = (w @ vc) / (w @ n_i)[:, None]
        fleiss_pe = (pooled**2).sum(axis=1)
        fleiss = np.where(1 - fleiss_pe > 1e-12, (p_bar - fleiss_pe) / (1 - fleiss_pe), np.nan)
        pi = (w @ share) / n_items[:, None]
        gwet_pe = (pi * (1 - pi)).sum(axis=1) / (q - 1) if q > 1 else np.full(len(w), np.nan)
        gwet = np.where(1 - gwet_pe > 1e-12, (p_bar - gwet_pe) / (1 - gwet_pe), np.nan)
    return p_bar, fleiss_pe, fleiss, gwet_pe, gwet


def _label_types(table: _LabelTable) -> _ItemTypes:
    keys = table.review_reviewer * table.value_counts.shape[1] + table.review_label
    return _item_types(keys, table.review_item, table.n_items)


def _pair_membership(table: _LabelTable, n_labels: int) -> sparse.csr_matrix:
    """Sparse (pair x cell, item) incidence, so resampled matrices are one product."""
    n_pairs = len(table.pair_reviewers)
    cells = table.pair_id * n_labels * n_labels + table.pair_a * n_labels + table.pair_b
    return sparse.csr_matrix((np.ones(len(cells)), (cells, table.pair_item)),
                             shape=(n_pairs * n_labels * n_labels, table.n_items))


def _reviewer_membership(table: _LabelTable) -> sparse.csr_matrix:
    """Sparse (reviewer x label, item) incidence for resampled reviewer label distributions."""
    n_labels = table.value_counts.shape[1]
    keys = table.review_reviewer * n_labels + table.review_label
    return sparse.csr_matrix((np.ones(len(keys)), (keys, table.review_item)),
                             shape=(len(table.reviewer_ids) * n_labels, table.n_items))


def _label_replicates(
    weights: np.ndarray,
    membership: sparse.csr_matrix,
    reviewer_membership: sparse.csr_matrix,
    coincidences: np.ndarray,
    pair_reviewers: np.ndarray,
    n_labels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(kappa, nominal alpha) for each row of item (type) multiplicities."""
    counts = np.asarray(membership @ weights.T).T.reshape(-1, len(pair_reviewers), n_labels,
                                                          n_labels)
    marginals = np.asarray(reviewer_membership @ weights.T).T.reshape(len(weights), -1, n_labels)
    kappa = _conger_kappa(counts, marginals, pair_reviewers)[2]
    o = (weights @ coincidences).reshape(-1, n_labels, n_labels)
    return kappa, _alpha_from_coincidences(o, "nominal", range(n_labels))


def _unit_codes(rows: pd.DataFrame) -> np.ndarray:
    """Dense item codes for score rows: (trace_id, candidate_id) when candidate_id exists."""
    trace = pd.factorize(rows["trace_id"].astype(str))[0].astype(np.int64)
    if "candidate_id" not in rows.columns:
        return trace
    candidate = pd.factorize(rows["candidate_id"].astype(str))[0].astype(np.int64)
    return pd.factorize(trace * (int(candidate.max()) + 1) + candidate)[0].astype(np.int64)


