"""Shared cases for the agreement tests: published tables (Krippendorff 2011, Fleiss 1971, the
lesson's matrix) and a seeded review simulator."""

import math

import pandas as pd
import pyarrow as pa

from feedback_pipeline.core import agreement as ag
from feedback_pipeline.core.agreement import (
    PAIRWISE_LABELS,
)

SEED_MATRIX = [[42, 3, 1], [4, 38, 2], [2, 1, 27]]


# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", example C: four observers,
# twelve units, missing values (reproduced in the `krippendorff` package's own tests and in
# jucor/krippendorff data-raw/nominal.R). The paper gives nominal .743, ordinal .815,
# interval .849; the package's tests assert ordinal 0.815 on the same data.
NAN = math.nan


PAPER_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


# Krippendorff's binary two-observer, ten-unit example (alpha .095), as tabulated in
# jucor/krippendorff data-raw/news_presence_krippendorff2004_11_3_1.csv (Krippendorff 2004,
# section 11.3.1); its tests expect 0.0952.
PAPER_BINARY = [
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
]


def reviews_from_matrix(data, *, as_score=False, labels=None):
    """Long review rows from a reviewers x items array (NaN = not reviewed)."""
    rows = []
    for r, row in enumerate(data):
        for i, value in enumerate(row):
            if isinstance(value, float) and math.isnan(value):
                continue
            rows.append({
                "review_id": f"r{r}-{i}",
                "trace_id": f"t{i:03d}",
                "reviewer_id": f"rev{r}",
                "label": None if as_score else (labels[value] if labels else str(value)),
                "score": int(value) if as_score else None,
                "slice": None,
            })
    return pd.DataFrame(rows)


def expand_matrix(matrix, labels):
    a, b = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            a += [labels[i]] * count
            b += [labels[j]] * count
    return a, b


def simulate(
    rng,
    *,
    n_items=600,
    reviewers=8,
    noisy_reviewer=None,
    noisy_slice=None,
    noise=0.05,
    reviewer_noise=0.6,
    slice_noise=0.45,
    slices=("prompt-injection", "flaky-test-handoff", "accessible-language"),
):
    """Reviews of items with a known truth; noise = chance of a uniformly random label."""
    truth = rng.integers(0, 4, n_items)
    item_slice = rng.choice(slices, n_items)
    names = [f"rev{r:02d}" for r in range(reviewers)]
    rows = []
    for i in range(n_items):
        for r in rng.choice(reviewers, size=rng.integers(2, 4), replace=False):
            p = noise
            if item_slice[i] == noisy_slice:
                p = max(p, slice_noise)
            if names[r] == noisy_reviewer:
                p = max(p, reviewer_noise)
            label = rng.integers(0, 4) if rng.random() < p else truth[i]
            rows.append({
                "review_id": f"rv{len(rows)}",
                "trace_id": f"trace-{i:04d}",
                "reviewer_id": names[r],
                "label": PAIRWISE_LABELS[label],
                "slice": item_slice[i],
            })
    truth_frame = pd.DataFrame({
        "trace_id": [f"trace-{i:04d}" for i in range(n_items)],
        "label": [PAIRWISE_LABELS[t] for t in truth],
        "slice": item_slice,
    })
    return pd.DataFrame(rows), truth_frame


# Fleiss' kappa worked example of the Wikipedia article "Fleiss' kappa": 10 subjects, 14 raters
# each, 5 categories; rows are the number of raters assigning each category. Published
# P_bar = 0.378, P_e = 0.213, kappa = 0.210.
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


CATEGORIES = ("1", "2", "3", "4", "5")


def reviews_from_counts(counts, labels):
    """Long rows from an items x categories count table; the k-th rating of an item is given
    to reviewer k (Fleiss' kappa and AC1 do not depend on who gave which rating)."""
    rows = []
    for i, row in enumerate(counts):
        ratings = [label for label, n in zip(labels, row, strict=True) for _ in range(n)]
        rows += [{"review_id": f"t{i}-{k}", "trace_id": f"t{i:03d}", "reviewer_id": f"rev{k:02d}",
                  "label": label, "slice": None} for k, label in enumerate(ratings)]
    return pd.DataFrame(rows)


# Fleiss (1971), Table 1: 30 patients, each diagnosed by 6 of a pool of psychiatrists into
# 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other (one row per
# patient, the six diagnoses). Published: P_bar 0.556, P_e 0.220, kappa 0.430.
FLEISS_1971 = [
    (4, 4, 4, 4, 4, 4), (2, 2, 2, 5, 5, 5), (2, 3, 3, 3, 3, 5), (5, 5, 5, 5, 5, 5),
    (2, 2, 2, 4, 4, 4), (1, 1, 3, 3, 3, 3), (3, 3, 3, 3, 5, 5), (1, 1, 3, 3, 3, 4),
    (1, 1, 4, 4, 4, 4), (5, 5, 5, 5, 5, 5), (1, 4, 4, 4, 4, 4), (1, 2, 4, 4, 4, 4),
    (2, 2, 2, 3, 3, 3), (1, 4, 4, 4, 4, 4), (2, 2, 4, 4, 4, 5), (3, 3, 3, 3, 3, 5),
    (1, 1, 1, 4, 5, 5), (1, 1, 1, 1, 1, 2), (2, 2, 4, 4, 4, 4), (1, 3, 3, 5, 5, 5),
    (5, 5, 5, 5, 5, 5), (2, 4, 4, 4, 4, 4), (2, 2, 4, 5, 5, 5), (1, 1, 4, 4, 4, 4),
    (1, 4, 4, 4, 4, 5), (2, 2, 2, 2, 2, 4), (1, 1, 1, 1, 5, 5), (2, 2, 4, 4, 4, 4),
    (1, 3, 3, 3, 3, 3), (5, 5, 5, 5, 5, 5),
]


def reviewed_labels_table(pairwise_rows, score_matrix):
    """A reviewed_labels-like Arrow table (STAGE_COLUMNS): pairwise rows plus pointwise score
    reviews from a reviewers x items matrix, item i being candidate c{i % 2} of trace s{i // 2}."""
    rows = [dict(r, task="pairwise", status="ACCEPTED", candidate_id=None, score=None)
            for r in pairwise_rows]
    for r, row in enumerate(score_matrix):
        for i, value in enumerate(row):
            if isinstance(value, float) and math.isnan(value):
                continue
            rows.append({"review_id": f"p{r}-{i}", "trace_id": f"s{i // 2}",
                         "reviewer_id": f"rev{r}", "task": "pointwise", "outcome": None,
                         "slice": "s", "criteria_json": None, "status": "ACCEPTED",
                         "candidate_id": f"c{i % 2}", "score": int(value)})
    rows.append({"review_id": "adj", "trace_id": "s0", "reviewer_id": "lead",
                 "task": "pointwise", "outcome": None, "slice": "s", "criteria_json": None,
                 "status": ag.NOT_A_VOTE, "candidate_id": "c0", "score": 5})
    schema = pa.schema([(c, pa.int64() if c == "score" else pa.string())
                        for c in ag.STAGE_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def gold_scenario(target_misses, others_misses, *, others=3, others_items=60, target_items=6):
    """`others` reviewers answer `others_items` gold traces between them (the first
    `others_misses` wrong); reviewer `target` answers `target_items` of them."""
    rows = [{"trace_id": f"g{i:03d}", "reviewer_id": f"other{i % others}",
             "label": "B" if i < others_misses else "A"} for i in range(others_items)]
    rows += [{"trace_id": f"g{others_items - target_items + j:03d}", "reviewer_id": "target",
              "label": "B" if j < target_misses else "A"} for j in range(target_items)]
    gold = pd.DataFrame({"trace_id": [f"g{i:03d}" for i in range(others_items)], "label": "A"})
    return pd.DataFrame(rows), gold
