"""The coefficients against published tables and reference implementations."""

import krippendorff
import numpy as np
import pytest

from feedback_pipeline.core.agreement import (
    PAIRWISE_LABELS,
    kappa_from_matrix,
    krippendorff_alpha,
    statistics,
)
from feedback_pipeline_tests.core.agreement.conftest import (
    PAPER_BINARY,
    SEED_MATRIX,
    simulate,
)


def test_seed_matrix_reproduces_lesson_figures():
    result = kappa_from_matrix(SEED_MATRIX, labels=["A", "B", "TIE"])
    assert result.n_items == 120
    assert round(result.observed, 3) == 0.892
    assert round(result.chance, 3) == 0.344
    assert round(result.kappa, 3) == 0.835


def test_invalid_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(np.array(PAPER_BINARY, dtype=float), "ratio-ish")


def test_item_types_group_exactly_the_items_with_identical_reviews():
    rng = np.random.default_rng(6)
    reviews, _ = simulate(rng, n_items=400, reviewers=3, noise=0.3)
    table = statistics._label_table(reviews, PAIRWISE_LABELS)
    types = statistics._label_types(table)
    signature = (reviews.sort_values("reviewer_id").groupby("trace_id")
                 .apply(lambda g: tuple(zip(g.reviewer_id, g.label, strict=True))))
    per_item = signature.loc[list(table.item_ids)].to_numpy()
    for t in range(len(types.count)):
        members = per_item[types.of_item == t]
        assert len(members) == types.count[t] and len(set(members)) == 1
    assert len(set(per_item)) == len(types.count) < table.n_items


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_vectorised_alpha_matches_package(level):
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 3, size=(40, 5))
    o = statistics._coincidences(counts).sum(axis=0).reshape(5, 5)
    mine = float(statistics._alpha_from_coincidences(o[None], level, [1, 2, 3, 4, 5])[0])
    theirs = krippendorff.alpha(value_counts=counts[counts.sum(1) >= 2], value_domain=[1, 2, 3, 4, 5],
                                level_of_measurement=level)
    assert mine == pytest.approx(theirs, abs=1e-10)
